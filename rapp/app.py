"""`ranomaly rapp`: the Non-RT service: A1 policy management over HTTP (OpenAPI docs at /docs), health,
Prometheus metrics, and the loop that pushes policies again when the Near-RT RIC has lost them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import traceback
from datetime import timedelta
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from ranomaly_contracts.auth.audit import AuditMiddleware, RedisAuditStream
from ranomaly_contracts.auth.guard import AuthError
from ranomaly_contracts.auth.setup import build_guard
from ranomaly_contracts.redact import redact_all
from ranomaly_contracts.redis_client import redis_client
from ranomaly_contracts.sdl import PREFIX, sdl_keys
from ranomaly_contracts.tls import uvicorn_ssl
from rapp.a1.client import A1Client
from rapp.a1.configuration import Configuration
from rapp.a1.credentials import a1_credential
from rapp.a1.policies import PolicyError, PolicyRegistry
from rapp.a1.services import ServiceRegistry, ServiceSupervision
from rapp.api.forecasts import forecasts_router
from rapp.api.jobs import jobs_router
from rapp.api.openapi import allow_every_method, install
from rapp.api.pms import Pms, pms_more_router
from rapp.api.policies import pms_router, problem
from rapp.api.remediation import remediation_router
from rapp.api.reports import reports_router
from rapp.collector import Collector
from rapp.console.api import console_api_router, guard_reader, guard_writer
from rapp.console.pages import mount_console
from rapp.console.service import Console
from rapp.console.session import Sessions
from rapp.drift import DriftMonitor
from rapp.forecasts import ForecastService, ForecastSettings
from rapp.history import HistoryFolder
from rapp.jobrecord import JobStore
from rapp.jobs import POLICY_TYPE_ID, JobRunner, JobSettings, QueueFull
from rapp.notify import STATE_FILE, Notifier
from rapp.registry import ModelRegistry
from rapp.reports import NotifierAlerts, PredictedBreach, Reporter
from rapp.settings import RappSettings
from rapp.signing import signing_key

log = structlog.get_logger(__name__)


class RappMetrics:
    """The rApp's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.policies = Gauge("ranomaly_rapp_policies", "A1 policies managed", registry=r)
        self.repushed = Counter(
            "ranomaly_rapp_policies_repushed", "Policies pushed again after the RIC lost them", registry=r
        )
        self.near_rt_up = Gauge(
            "ranomaly_rapp_near_rt_available", "1 while the Near-RT A1-P endpoint answers", registry=r
        )
        self.a1_sync_ok = Gauge(
            "ranomaly_rapp_a1_sync_ok", "1 while the last A1 sync made every managed policy type whole", registry=r
        )
        self.a1_sync_failures = Counter("ranomaly_rapp_a1_sync_failures", "Failed A1 syncs, per policy type "
                                        "('*': the type list itself)", ["policytype_id"], registry=r)  # fmt: skip
        self.types_restored = Counter(
            "ranomaly_rapp_policy_types_restored", "Policy types restored on the Near-RT side", registry=r
        )
        self.jobs = Gauge("ranomaly_rapp_jobs", "Jobs kept, by state", ["state"], registry=r)
        self.jobs_refused = Counter("ranomaly_rapp_jobs_refused", "Job submissions refused: queue full", registry=r)
        self.history_duplicates = Counter(
            "ranomaly_rapp_history_duplicates",
            "KPM rows not stored again: their (cell, period) is in the history already",
            registry=r,
        )


class RappService:
    """One rApp process."""

    def __init__(self, settings: RappSettings, prefix: str = PREFIX) -> None:
        self.settings = settings
        self._ssl = uvicorn_ssl(settings.http_tls())  # TLS files are read now (so are the clients' below)
        self.metrics = RappMetrics()
        keys = sdl_keys(prefix)
        redis_tls, redis_auth = settings.redis_client_tls(), settings.redis_auth()
        self.redis = redis_client(settings.redis_url, cluster=settings.redis_cluster, tls=redis_tls, auth=redis_auth,
                                  socket_connect_timeout=1.0, socket_timeout=5.0)  # fmt: skip
        self.a1 = A1Client(settings.a1_base_url, settings.a1_api_root, settings.a1_timeout_s, settings.a1_retries,
                           settings.a1_client_tls(), a1_credential(settings))  # fmt: skip
        self.guard = build_guard(settings.auth_settings(), "rapp")
        self.audit = RedisAuditStream(self.redis, keys.audit)
        self.policies = PolicyRegistry(self.a1, self.redis, keys.rapp_policies, settings.ric_id,
                                       types_key=keys.rapp_policy_types, own_types=(POLICY_TYPE_ID,),
                                       own_instances=lambda: self.jobs.own_instances())  # fmt: skip
        self.services = ServiceRegistry(self.redis, keys.rapp_services)
        self.supervision = ServiceSupervision(self.services, self.policies, settings.service_check_interval_s,
                                              settings.service_expiry_batch)  # fmt: skip
        configuration = Configuration(settings.work_dir, settings.ric_id, settings.a1_base_url,
                                      settings.managed_element_ids)  # fmt: skip
        self.pms = Pms(self.policies, self.services, configuration, self._ric_state)
        self.notifier: Notifier | None = None  # NOC notifications, when a webhook is set
        if settings.noc_webhook_url is not None:
            scheme = "http" if settings.tls_cert_file is None else "https"
            self.notifier = Notifier(settings.noc_webhook_url, settings.work_dir / STATE_FILE,
                                     receiver=settings.noc_receiver, timeout_s=settings.noc_timeout_s,
                                     retry_max_s=settings.noc_retry_max_s,
                                     external_url=f"{scheme}://{socket.gethostname()}:{settings.port}")  # fmt: skip
        on_incidents = None if self.notifier is None else self.notifier.on_incidents
        self.collector = Collector.from_settings(settings, prefix, on_incidents)
        self.registry = ModelRegistry(self.redis, keys, signing_key(settings.model_signing_key_file, settings.work_dir))
        job_settings = JobSettings(settings.work_dir, settings.eval_share, settings.promote_tolerance,
                                   settings.enforce_timeout_s, settings.train_forecaster,
                                   waiting_max=settings.jobs_waiting_max, jobs_kept=settings.jobs_kept,
                                   log_lines=settings.job_log_lines,
                                   stop_grace_s=settings.job_stop_grace_s)  # fmt: skip
        self.jobs = JobRunner(HistoryFolder(settings.history_dir), self.registry, self.a1, job_settings,
                              JobStore(self.redis, keys.rapp_jobs))  # fmt: skip
        on_breaches = None if self.notifier is None else self.notifier.on_breaches
        self.forecasts = ForecastService(ForecastSettings.from_settings(settings), self.jobs.current_version,
                                         on_breaches)  # fmt: skip
        alerts = NotifierAlerts(settings.work_dir) if self.notifier is not None else None
        self.reporter = Reporter.from_settings(settings, alerts=alerts, forecasts=self._breaches_of)
        self.console = Console(settings, self.redis, keys, self.reporter, self.registry, self._near_rt,
                               self.policies, self.jobs, self.forecasts)  # fmt: skip
        secure = settings.http_tls() is not None or settings.console_secure_cookie  # the session cookie's flag
        self.sessions = Sessions(self.guard, settings.console_session_h * 3600, secure)
        window, retrain = timedelta(hours=settings.drift_window_h), self._retrain
        self.drift = DriftMonitor(
            settings.history_dir, window, settings.drift_threshold, settings.drift_cells_share, retrain
        )
        self.loaded = False
        self.near_rt_available = False
        self._counted: dict[Counter, int] = {}  # what counters fed from running totals hold
        self.http_port: int | None = None
        self.health_port: int | None = None  # with settings.health_port: where health and metrics listen
        self.started = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask run() to finish."""
        self._stop.set()

    def app(self) -> FastAPI:
        """The FastAPI application."""
        app = FastAPI(title="RANomaly rApp", version="0.1.0")

        @app.exception_handler(Exception)
        async def unexpected(request: Request, exc: Exception) -> JSONResponse:
            """A failure the routes did not expect: logged here (the innermost frames as text: a rendered
            traceback with locals can hold the event loop for seconds), named by its kind there, no details."""
            frames = "".join(traceback.format_exception(exc, limit=-4))
            log.error("rapp_request_failed", method=request.method, path=request.url.path, traceback=frames)
            return problem(500, f"internal error ({type(exc).__name__}); the rApp's log has the details")

        @app.exception_handler(AuthError)
        async def refused(request: Request, exc: AuthError) -> JSONResponse:
            """A missing or refused credential (401) or a missing scope (403), as a problem document."""
            answer = problem(exc.status_code, exc.detail)
            answer.headers.update(exc.headers or {})
            return answer

        install(app)
        allow_every_method(app)
        app.add_middleware(AuditMiddleware, app_name="rapp", sink=self.audit)
        app.include_router(pms_router(self.policies, self.guard, self.services))
        for router in pms_more_router(self.pms, self.guard):
            app.include_router(router)
        app.include_router(jobs_router(self.jobs, self.drift, self.guard))
        app.include_router(remediation_router(self.guard))
        app.include_router(forecasts_router(self.forecasts, self.guard))
        app.include_router(reports_router(self.reporter, self.guard))
        app.include_router(console_api_router(self.console, guard_reader(self.guard), guard_writer(self.guard)))
        mount_console(app, self.console, self.sessions)
        if self.settings.health_port is None:
            self._health_routes(app)
        return app

    def health_app(self) -> FastAPI:
        """/healthz, /readyz and /metrics alone, for their own port (open: no credential)."""
        app = FastAPI(title="RANomaly rApp health", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
        self._health_routes(app)
        return app

    def _health_routes(self, app: FastAPI) -> None:
        """/healthz, /readyz and /metrics on `app`."""

        @app.get("/healthz", tags=["health"])
        async def healthz() -> JSONResponse:
            """Liveness, with what is degraded."""
            return JSONResponse(self.health())

        @app.get("/readyz", tags=["health"])
        async def readyz() -> JSONResponse:
            """Ready once the stored policies are loaded."""
            return JSONResponse(self.health(), status_code=200 if self.loaded else 503)

        @app.get("/metrics", tags=["health"], response_class=Response,
                 responses={200: {"content": {"text/plain; version=0.0.4": {}}}})  # fmt: skip
        async def metrics() -> Response:
            """Prometheus metrics."""
            self.metrics.policies.set(len(self.policies.ids()))
            self.metrics.near_rt_up.set(1 if self.near_rt_available else 0)
            self.metrics.a1_sync_ok.set(0 if self.policies.sync_failures else 1)
            self._advance(self.metrics.history_duplicates, self.collector.stats.totals.duplicates)
            self._advance(self.metrics.jobs_refused, self.jobs.refused)
            counts = self.jobs.counts()
            for state in ("queued", "running", "succeeded", "rejected", "failed"):
                self.metrics.jobs.labels(state=state).set(counts.get(state, 0))
            return Response(generate_latest(self.metrics.registry), media_type="text/plain; version=0.0.4")

    def _advance(self, counter: Counter, total: int) -> None:
        """Bring a counter fed from a running total up to it."""
        counter.inc(total - self._counted.get(counter, 0))
        self._counted[counter] = total

    def _ric_state(self) -> str:
        """The Near-RT RIC's state as the policy management API names it."""
        if not self.near_rt_available:
            return "UNAVAILABLE"
        return "AVAILABLE" if self.loaded and not self.policies.sync_failures else "SYNCHRONIZING"

    def _near_rt(self) -> dict[str, Any]:
        """The Near-RT side as the console shows it: its A1 endpoint and whether the last sync made it whole."""
        return {"ric_id": self.settings.ric_id, "a1": redact_all(self.a1.where), "available": self.near_rt_available,
                "sync_ok": not self.policies.sync_failures}  # fmt: skip

    def health(self) -> dict[str, Any]:
        """What /healthz and /readyz answer."""
        failing = self.policies.sync_failures
        why = [f"A1 sync: {problem}" for _, problem in sorted(failing.items())]
        if not self.near_rt_available:
            why.insert(0, f"the Near-RT RIC's A1-P endpoint {self.a1.where} does not answer")
        if not self.loaded:
            why.insert(0, "the stored policies are not loaded yet")
        health = {
            "status": "degraded" if why else "ok",
            "problems": why,
            "policies_loaded": self.loaded,
            "near_rt_ric": {"ric_id": self.settings.ric_id, "a1": self.a1.where, "available": self.near_rt_available},
            "policies": len(self.policies.ids()),
            "policies_repushed": self.policies.repushed,
            "a1_sync": {"ok": not failing, "failing": dict(failing), "types_restored": self.policies.types_restored},
            "jobs": self.jobs.counts(),
            "forecasts": self.forecasts.health(),
            "reports": self.reporter.health(),
            "collector": {"connected": self.collector.stats.connected, **vars(self.collector.stats.totals)},
            "noc_notifications": self.notifier.health() if self.notifier else {"enabled": False},
        }
        result: dict[str, Any] = redact_all(health)
        return result

    async def run(self) -> None:
        """Serve until stop()."""
        config = uvicorn.Config(self.app(), host=self.settings.http_host, port=self.settings.port,
                                log_level="warning", lifespan="off", access_log=False, **self._ssl)  # fmt: skip
        server = uvicorn.Server(config)
        servers = [(server, asyncio.create_task(server.serve(), name="http"))]
        try:
            self.http_port = await _listening(*servers[0])
            if self.settings.health_port is not None:
                health = uvicorn.Server(uvicorn.Config(self.health_app(), host=self.settings.http_host,
                                                       port=self.settings.health_port, log_level="warning",
                                                       lifespan="off", access_log=False))  # fmt: skip
                servers.append((health, asyncio.create_task(health.serve(), name="health")))
                self.health_port = await _listening(*servers[1])
            self.started.set()
            log.info("rapp_listening", port=self.http_port, health_port=self.health_port)
            workers = [
                asyncio.create_task(self.collector.run(self._stop), name="collector"),
                asyncio.create_task(self.jobs.run(), name="jobs"),
                asyncio.create_task(self._schedule(), name="schedule"),
                asyncio.create_task(self.forecasts.run(self._stop), name="forecasts"),
                asyncio.create_task(self.supervision.run(self._stop, lambda: self.loaded), name="services"),
                asyncio.create_task(self.console.silences.run(self._stop), name="silences"),
                *self._drift_watch(),
            ]
            if self.notifier is not None:
                workers.append(asyncio.create_task(self.notifier.run(self._stop), name="notifier"))
            try:
                await self._supervise()
            finally:
                self._stop.set()
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                await self.collector.close()
                if self.notifier is not None:
                    await self.notifier.close()
        finally:
            for running, serving in servers:
                running.should_exit = True
                with contextlib.suppress(Exception):
                    await serving
            await self.a1.close()
            await self.redis.aclose()

    async def _schedule(self) -> None:
        """Queue a retraining every `retrain_every_h` hours (never when 0)."""
        hours = self.settings.retrain_every_h
        if hours <= 0:
            return
        while True:
            await asyncio.sleep(hours * 3600)
            self._retrain("schedule")

    def _retrain(self, reason: str) -> None:
        """Queue a retraining the rApp itself decided on; a full queue skips it (logged)."""
        try:
            self.jobs.submit_training(reason)
        except QueueFull as exc:
            log.warning("retraining_skipped", reason=reason, problem=str(exc))

    def _breaches_of(self, cell_id: str) -> list[PredictedBreach]:
        """The breaches forecast for a cell now, as reports show them."""
        return [
            PredictedBreach(b.measurement, b.direction, b.threshold, b.predicted, b.breach_ms)
            for b in self.forecasts.active()
            if b.cell_id == cell_id
        ]

    def _drift_watch(self) -> list[asyncio.Task[None]]:
        hours = self.settings.drift_check_every_h
        return [asyncio.create_task(self.drift.run(hours * 3600), name="drift")] if hours > 0 else []

    async def _supervise(self) -> None:
        """Load the stored policies (retried), then keep the Near-RT RIC's copy complete."""
        while not self._stop.is_set():
            if not self.loaded:
                try:
                    await self.policies.load()
                    await self.services.load()
                    self.loaded = True
                except PolicyError as exc:
                    log.warning("rapp_policies_unavailable", problem=exc.detail)
            self.near_rt_available = await self.a1.healthy()
            if self.loaded and self.near_rt_available:
                restored = self.policies.types_restored
                self.metrics.repushed.inc(await self.policies.sync())
                self.metrics.types_restored.inc(self.policies.types_restored - restored)
                for policytype_id in self.policies.sync_failures:
                    self.metrics.a1_sync_failures.labels(policytype_id=policytype_id).inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.a1_sync_interval_s)


async def _listening(server: uvicorn.Server, serving: asyncio.Task[None]) -> int:
    """Wait until a server listens (a failed start raised); its port."""
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    return int(server.servers[0].sockets[0].getsockname()[1])
