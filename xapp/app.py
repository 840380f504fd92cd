"""`ranomaly xapp`: wiring of the data layer, A1 policies, model loading, E2 streams and the HTTP server.

The HTTP server (A1-P, health, metrics) serves from the start, before E2 or a model is there, from a thread
of its own (`xapp.httpthread`): A1 writes reach the engine through the data layer's policy change stream,
which this loop follows every tick; health is a snapshot this loop takes when asked, and every tick. Policies
load from the data layer (retried until it answers); the model is the one the `ranomaly-model` policy
names, else the newest promoted in the registry (seeded from a folder when asked). Then every E2 endpoint
is followed, and periodic duties run: policy changes, model versions, quiet-stream gaps, gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import time
from typing import TYPE_CHECKING, Any

import structlog

from models.signing import REASONS
from ranomaly_contracts.auth.setup import build_guard
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.clocks import catching_up
from xapp.datalayer.base import DataLayer, DataLayerHealth, DataLayerUnavailable
from xapp.e2client import Backoff, Shard, Subscription, follow
from xapp.enforcement import StorePolicies
from xapp.engine import Engine, HotPathTuning
from xapp.errors import ModelLoadError, XappError
from xapp.http import health_app, http_app
from xapp.httpthread import A1RmrOnThread, HttpThread, call_on_loop
from xapp.intake import IntakeLimits
from xapp.looplag import watch_loop_lag
from xapp.metrics import XappMetrics
from xapp.modelswap import ModelLoader, fingerprint
from xapp.policy.follow import PROBLEMS, PolicyFollower
from xapp.policy.handler import A1Handler
from xapp.policy.known import KnownNames
from xapp.policy.store import PolicyStore
from xapp.runtime import ModelRuntime
from xapp.settings import XappSettings
from xapp.shard.replica import Replica
from xapp.trust import ModelTrust, ModelUntrusted, trusted_keys

if TYPE_CHECKING:
    from xapp.ric.adapter import RicAdapter
    from xapp.ric.rmr import RmrEndpoint
    from xapp.ric.submgr import SubscriptionNotification

log = structlog.get_logger(__name__)

_TICK_S = 0.25
_ANSWER_S = 1.0  # how long the HTTP thread waits for the scoring loop's health snapshot
_STALE_S = 10.0  # a health snapshot older than this: the scoring loop is blocked, the xApp unready


def make_datalayer(settings: XappSettings) -> DataLayer:
    """The data layer the settings name."""
    bounds: dict[str, Any] = {
        "verdict_buffer": settings.verdict_buffer,
        "incident_buffer": settings.incident_buffer,
        "kpm_buffer": settings.kpm_buffer,
        "verdict_stream_bytes": settings.verdict_stream_bytes,
        "incident_stream_bytes": settings.incident_stream_bytes,
        "kpm_stream_bytes": settings.kpm_stream_bytes,
    }
    if settings.datalayer == "redis":
        from xapp.datalayer.redis import RedisDataLayer

        return RedisDataLayer(settings.redis_url, stream_sample_s=settings.stream_sample_s,
                              tls=settings.redis_client_tls(), auth=settings.redis_auth(),
                              cluster=settings.redis_cluster, **bounds)  # fmt: skip
    from xapp.datalayer.memory import MemoryDataLayer

    return MemoryDataLayer(**bounds)


def _datalayer_problem(data: DataLayerHealth, bound_s: float) -> str:
    """Why a data layer degraded past its bound makes the xApp unready."""
    state = "disconnected" if not data.connected else "failing or dropping writes"
    dropped = sum(data.dropped.values())
    return (
        f"data layer ({data.backend}) degraded for {data.degraded_s:.0f} s (bound {bound_s:g} s): {state}; "
        f"writes buffered {data.buffered}, dropped since start {dropped}"
    )


class XappService:
    """One xApp process: everything it runs, and its health."""

    def __init__(
        self, settings: XappSettings, datalayer: DataLayer | None = None, rmr: RmrEndpoint | None = None
    ) -> None:
        self.settings = settings
        self.metrics = XappMetrics()
        self.errors = RateLimitedLog(log, settings.log_error_interval_s)
        self.datalayer = datalayer if datalayer is not None else make_datalayer(settings)
        self.store = PolicyStore(self.datalayer)  # the engine's view, on the scoring loop
        self.policies = StorePolicies(self.store)
        self.follower = PolicyFollower(self.store, self.datalayer, self._count_change_problem)
        for reason in PROBLEMS:  # every reason exported from the start, at 0
            self.metrics.policy_change_problems.labels(reason)
        keys = trusted_keys(settings.trusted_model_keys)
        self.trust = ModelTrust(self.datalayer, settings.subscriber_id, keys, settings.allow_unsigned_models)
        for untrusted in REASONS:
            self.metrics.model_untrusted.labels(untrusted)
        self.guard = build_guard(settings.auth_settings(), "xapp")
        a1_data = self.a1_data = self.datalayer.policy_data()  # the HTTP thread's handle; A1 audit goes there too
        a1_store = PolicyStore(a1_data)  # the A1 handler's, on the HTTP thread
        self.known = KnownNames()  # what A1 statuses warn of when a policy names more (xapp.policy.known)
        self._known_key: tuple[object, ...] = ()
        self.replica = Replica(self.datalayer.replica_data(), self.store, settings.replica_index,
                               settings.replica_count, settings.checkpoint_interval_s, settings.heartbeat_s,
                               settings.replica_dead_s)  # fmt: skip
        self.a1 = A1Handler(a1_store, enforcement=self.store, known=lambda: self.known,
                            peers=self.replica.peers.lagging)  # fmt: skip
        self.http = HttpThread(
            lambda: http_app(self), a1_store, a1_data, settings.http_host, settings.a1_port, settings.http_tls(),
            None if settings.health_port is None else (lambda: health_app(self), settings.health_port),
        )  # fmt: skip
        self._health: tuple[float, dict[str, Any]] = (time.monotonic(), {})
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine: Engine | None = None
        self.model_problem: str | None = "no model loaded yet"
        self.http_port: int | None = None
        self.started = asyncio.Event()  # the HTTP server listens
        self.scoring = asyncio.Event()  # a model scores and the E2 streams are being followed
        self._stop = asyncio.Event()
        self._refused: dict[str, str] = {}  # version -> why, retried once the registry's copy changes
        self._refused_marks: dict[str, str | None] = {}  # version -> fingerprint of what was refused
        self._seed_problem: str | None = None
        self._loader: ModelLoader | None = None
        self._model_revision: int | None = None  # the policy revision the model choice was last checked at
        self._rmr = rmr  # the RMR endpoint of the rmr transport; None: opened from the settings when needed
        e2_tls = settings.e2_client_tls()  # the files read now: a TLS mistake stops the start, naming the file
        self._e2_credentials = None if e2_tls is None else e2_tls.grpc_credentials()
        self.ric: RicAdapter | None = None

    def stop(self) -> None:
        """Ask run() to finish."""
        self._stop.set()

    async def run(self) -> None:
        """Run until stop() (or a fatal error: a refused subscription, a missing model file)."""
        self._warn_model_trust()
        await self.datalayer.start()
        self._loop = asyncio.get_running_loop()
        self._publish_health()
        self.http.start()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(watch_loop_lag(self.metrics), name="loop lag"),
            asyncio.create_task(self._publish_every_tick(), name="health"),
        ]
        try:
            self.http_port = await self.http.listening()
            self.started.set()
            log.info("http_listening", host=self.settings.http_host, port=self.http_port,
                     health_port=self.http.health_port)  # fmt: skip
            await self._load_policies()
            tasks.append(asyncio.create_task(self._follow_policies(), name="a1 changes"))
            if self.settings.transport == "rmr":
                self.ric = self._start_ric()
            engine = await self._first_engine()
            if engine is None:
                return
            self.replica.summarize(engine, self.settings.period_ms, self.settings.max_lateness_periods + 1)
            await self.replica.join()  # the others' heartbeats read before any node is taken
            if self.ric is None:
                tasks += self._follow_all(engine)
            else:
                tasks += await self._subscribe_all(self.ric, engine)
            tasks.append(asyncio.create_task(self.replica.run(engine, self._stop), name="replica"))
            tasks.append(asyncio.create_task(self._duties(engine), name="duties"))
            tasks.append(asyncio.create_task(self._watch_models(engine), name="model checks"))
            self.scoring.set()
            stop_task = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([*tasks, stop_task], return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            for task in done:
                if task is not stop_task and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._wind_down()
            finally:  # whatever failed above, the HTTP thread (not a daemon) and the connections end
                self.http.stop()
                await self.http.join()
                await self.datalayer.close()

    async def _wind_down(self) -> None:
        """The RIC adapter closed, the last rows scored, the last checkpoint written, the scoring thread stopped."""
        if self.ric is not None:
            await self.ric.close()
        if self.engine is not None:
            self.engine.flush()
        await self.replica.leave(self.engine)
        if self.engine is not None:
            self.engine.close()

    def _warn_model_trust(self) -> None:
        """At every start: a warning when unsigned models may load, or when no key is trusted."""
        if self.settings.allow_unsigned_models:
            log.warning("unsigned_models_allowed", detail="allow_unsigned_models is on: models without a signature "
                        "load (a signature that is there is still checked)")  # fmt: skip
        elif not self.trust.keys:
            log.warning("no_trusted_model_keys", detail="trusted_model_keys is empty: every model will be refused")
        log.info("model_trust", trusted_keys=sorted(self.trust.keys), allow_unsigned=self.trust.allow_unsigned)

    def on_subscription_notification(self, notification: SubscriptionNotification) -> None:
        """The subscription manager's answer (on the HTTP thread), handed to the RIC adapter on this loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notified, notification)

    def _notified(self, notification: SubscriptionNotification) -> None:
        if self.ric is not None:
            self.ric.on_notification(notification)

    async def _publish_every_tick(self) -> None:
        """Publish the health snapshot every tick; end the xApp (XappError) if the HTTP thread died."""
        while not self._stop.is_set():
            await self._sleep(_TICK_S)
            if not self.http.alive and not self._stop.is_set():
                raise XappError("the HTTP server thread ended")
            self._publish_health()

    def _publish_health(self) -> None:
        try:
            self._publish_known()
            self.refresh_gauges()
            self._health = (time.monotonic(), self.health())
        except Exception:  # a bug here must not stop scoring; the stale snapshot shows it
            log.exception("health_snapshot_failed")

    def _publish_known(self) -> None:
        """Publish the cells, nodes and measurements known now, when the cell table or the model changed."""
        engine = self.engine
        if engine is None:
            return
        table = engine.table
        key = (len(table), table.generation, engine.model.version)
        if key != self._known_key:
            self._known_key = key
            self.known = KnownNames(frozenset(table.slot_of), frozenset(n for n, s in table.by_node.items() if s),
                                    frozenset(engine.model.measurements))  # fmt: skip

    async def current_health(self) -> dict[str, Any]:
        """What /healthz and /readyz answer (called on the HTTP thread): a snapshot the scoring loop takes now,
        or, when it does not answer within _ANSWER_S, its last one (unready once older than _STALE_S)."""
        await call_on_loop(self._loop, self._publish_health, _ANSWER_S)
        published_at, body = self._health
        age = time.monotonic() - published_at
        if age <= _STALE_S:
            return body
        problem = f"the scoring loop has not published its health for {age:.0f} s (blocked)"
        return {**body, "status": "degraded", "ready": False, "problems": [*body.get("problems", []), problem]}

    async def _follow_policies(self) -> None:
        """Apply the policy change stream to the engine's view every tick, from the first policy load on (the
        model choice needs it before an engine exists); bounded work per tick (`PolicyFollower`)."""
        while not self._stop.is_set():
            try:
                self.metrics.policy_changes.inc(await self.follower.poll())
            except DataLayerUnavailable as exc:
                self.errors.warning("a1_changes", "a1_changes_unavailable", problem=str(exc))
            await self._sleep(_TICK_S)

    def _count_change_problem(self, reason: str, count: int) -> None:
        self.metrics.policy_change_problems.labels(reason).inc(count)

    async def _load_policies(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                await self.store.load()
                return
            except DataLayerUnavailable as exc:
                log.warning("policies_unavailable", problem=str(exc), retry_s=delay)
                await self._sleep(delay)
                delay = min(2 * delay, 5.0)

    async def _first_engine(self) -> Engine | None:
        """Seed the registry if asked, then wait for a loadable model and build the engine around it.

        A seed folder that cannot be read leaves the xApp serving A1, unready, with the reason in health;
        it is read again at every poll.
        """
        settings = self.settings
        loader = ModelLoader(self.datalayer, self.trust, settings.measurements, settings.period_ms,
                             settings.intra_op_threads)  # fmt: skip
        self._loader = loader
        seeded = settings.seed_model_dir is None
        while not self._stop.is_set():
            if not seeded:
                seeded = await self._seed(loader)
            runtime = await self._try_load()
            if runtime is not None:
                loader.subscribed = tuple(settings.measurements or runtime.measurements)
                self.engine = Engine(
                    loader.subscribed, runtime, self.policies, self.datalayer, self.metrics,
                    self._tuning(), self.errors,
                )  # fmt: skip
                self.engine.refresh_policies()
                self.model_problem = None
                log.info("model_scoring", version=runtime.version)
                gc.collect()
                gc.freeze()  # what exists now lives as long as the process: keep it out of every collection
                return self.engine
            if self._seed_problem is not None:
                self.model_problem = f"{self._seed_problem}; {self.model_problem}"
            await self._sleep(settings.model_poll_s)
        return None

    def _tuning(self) -> HotPathTuning:
        settings = self.settings
        limits = IntakeLimits(
            max_cells=settings.max_cells, max_cells_per_node=settings.max_cells_per_node,
            max_cells_per_message=settings.max_cells_per_message, max_gap_periods=settings.max_gap_periods,
            max_clock_jump_periods=settings.max_clock_jump_periods,
            clock_slack_ms=round(settings.clock_slack_s * 1000), clock_reanchor_after=settings.clock_restart_after,
            quality_incident_periods=settings.quality_incident_periods,
        )  # fmt: skip
        return HotPathTuning(
            period_ms=settings.period_ms, batch_window_ms=settings.batch_window_ms,
            batch_max_cells=settings.batch_max_cells, max_lateness_periods=settings.max_lateness_periods,
            release_after_periods=settings.release_after_periods, forward_kpm=settings.forward_kpm, limits=limits,
            overlap_scoring=settings.overlap_scoring,
        )  # fmt: skip

    async def _seed(self, loader: ModelLoader) -> bool:
        """Publish the seed folder; False (the reason kept for health) if it cannot be, now."""
        folder = self.settings.seed_model_dir
        assert folder is not None
        try:
            await loader.seed(folder)
        except (ModelLoadError, DataLayerUnavailable) as exc:
            problem = f"seed model {folder}: {exc}"
            if problem != self._seed_problem:
                reason = exc.reason if isinstance(exc, ModelUntrusted) else None
                if reason is not None:
                    self.metrics.model_untrusted.labels(reason).inc()
                log.error("seed_model_refused", folder=str(folder), problem=str(exc), reason=reason)
            self._seed_problem = problem
            return False
        self._seed_problem = None
        return True

    async def _try_load(self) -> ModelRuntime | None:
        """The wanted version loaded, or None (the reason is kept for health and the policy status)."""
        assert self._loader is not None
        try:
            version = await self._loader.wanted(self.policies.model_version())
        except DataLayerUnavailable as exc:
            self.model_problem = f"model registry unavailable: {exc}"
            return None
        if version is None:
            self.model_problem = "the model registry holds no promoted version"
            return None
        runtime = await self._load(version)
        if runtime is None:
            self.model_problem = self._refused.get(version, f"model {version}: registry unavailable")
        return runtime

    async def _load(self, version: str) -> ModelRuntime | None:
        """The version loaded; None if the registry cannot be asked or it is refused.

        A refused version is tried again only once its registry entry changes (it appears, or is replaced).
        """
        assert self._loader is not None
        try:
            stored = await self._loader.fetch(version)
        except DataLayerUnavailable:
            return None
        mark = fingerprint(stored)
        if version in self._refused and self._refused_marks.get(version) == mark:
            return None
        try:
            runtime = await self._loader.load(version, stored)
        except DataLayerUnavailable:
            return None
        except ModelLoadError as exc:
            self._refused[version], self._refused_marks[version] = str(exc), mark
            self.metrics.model_refused.inc()
            reason = exc.reason if isinstance(exc, ModelUntrusted) else None
            if reason is not None:
                self.metrics.model_untrusted.labels(reason).inc()
            log.error("model_refused", version=version, problem=str(exc), reason=reason)
            return None
        if self._refused.pop(version, None) is not None:
            self._refused_marks.pop(version, None)
            log.info("model_accepted_after_refusal", version=version)
        return runtime

    def _follow_all(self, engine: Engine) -> list[asyncio.Task[Any]]:
        settings = self.settings
        subscription = Subscription(
            subscriber_id=settings.subscriber_id, node_ids=settings.nodes, cell_ids=settings.cells,
            measurements=engine.measurements, period_ms=settings.period_ms,
            max_indications_per_message=settings.max_indications_per_message,
            max_cells_per_message=settings.message_cells, raw_e2sm_kpm=settings.raw_e2sm_kpm,
        )  # fmt: skip
        backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)

        async def select(listed: list[str]) -> list[str]:
            return await self.replica.share(engine, listed)

        tasks = []
        for target in settings.e2_targets:
            shard = Shard(select, self.replica.subscription_event())
            follower = follow(target, subscription, engine, backoff, self._stop, self._e2_credentials, shard)
            tasks.append(asyncio.create_task(follower, name=f"e2 {target}"))
        return tasks

    def _start_ric(self) -> RicAdapter:
        """The RMR endpoint (opened now: the library loads only for this transport), listening for A1 at once."""
        from xapp.ric.adapter import RicAdapter
        from xapp.ric.rmr import open_rmr

        settings = self.settings
        endpoint = self._rmr
        if endpoint is None:
            endpoint = open_rmr(settings.rmr_port, library=settings.rmr_library, max_size=settings.rmr_max_size)
        a1 = A1RmrOnThread(self.a1, settings.handler_id, self.http)
        adapter = RicAdapter(endpoint, a1, self.metrics, self.errors)
        adapter.start()
        return adapter

    async def _subscribe_all(self, ric: RicAdapter, engine: Engine) -> list[asyncio.Task[Any]]:
        """Score what the RIC delivers; keep one E2SM-KPM subscription per configured cell of this replica's
        share of the E2 nodes (MEIDs), their checkpoints restored first."""
        from xapp.ric.cells import parse_ric_cells
        from xapp.ric.submgr import ClientEndpoint, SubmgrClient
        from xapp.ric.subscriptions import kpm_keeper

        settings = self.settings
        assert self.http_port is not None
        cells = parse_ric_cells(settings.ric_cells)
        mine = set(await self.replica.share(engine, sorted({cell.meid for cell in cells})))
        cells = [cell for cell in cells if cell.meid in mine]
        intake = ric.attach(engine, cells, settings.kpm_version)
        advertised = ClientEndpoint(settings.advertise_host, self.http_port, settings.rmr_port)
        client = SubmgrClient(settings.submgr_url, advertised)
        keeper = kpm_keeper(client, cells, engine.measurements, settings, intake)
        ric.keep(keeper, client)
        return [asyncio.create_task(keeper.run(self._stop), name="e2 subscriptions")]

    async def _duties(self, engine: Engine) -> None:
        """Policy changes, silent nodes' gaps and quiet-stream gaps every tick. Nothing here awaits the data
        layer (model checks run in `_watch_models`), so a frozen store cannot hold back gaps or scoring."""
        period = self.settings.period_ms
        seen_watermark, seen_at = engine.intake.watermark_ms, time.monotonic()
        while not self._stop.is_set():
            await self._sleep(_TICK_S)
            engine.tick()
            now = time.monotonic()
            if engine.intake.watermark_ms != seen_watermark:
                seen_watermark, seen_at = engine.intake.watermark_ms, now
            elif seen_watermark > 0 and now - seen_at > period / 1000 and not self._catching_up(engine, seen_watermark):
                steps = int((now - seen_at) * 1000 // period)
                engine.advance_clock(seen_watermark + steps * period)
                seen_watermark, seen_at = engine.intake.watermark_ms, now

    def _catching_up(self, engine: Engine, watermark_ms: int) -> bool:
        received_ago_ms = (time.perf_counter_ns() - engine.last_received_ns) / 1e6
        return catching_up(engine.intake.newest_ms, watermark_ms, received_ago_ms, self.settings.period_ms)

    async def _watch_models(self, engine: Engine) -> None:
        """The registry every model_poll_s, and the model choice at the next tick after a policy change; in a
        task of its own, so a data layer that does not answer delays only these checks."""
        next_poll = 0.0
        while not self._stop.is_set():
            await self._sleep(_TICK_S)
            now = time.monotonic()
            if now >= next_poll or engine.policies.revision != self._model_revision:
                self._model_revision = engine.policies.revision
                next_poll = now + self.settings.model_poll_s
                await self._check_model(engine)

    async def _check_model(self, engine: Engine) -> None:
        """Stage the wanted version unless it scores or is staged already; keep why it cannot be loaded."""
        assert self._loader is not None
        try:
            wanted = await self._loader.wanted(self.policies.model_version())
        except DataLayerUnavailable:
            return
        staged = engine.shadow.version if engine.shadow is not None else None
        if wanted is None or wanted in (engine.model.version, staged):
            self.model_problem = None
            return
        runtime = await self._load(wanted)
        if runtime is None:
            if wanted in self._refused:
                self.model_problem = f"model {wanted} named by policy cannot be loaded: {self._refused[wanted]}"
                engine.policies.applied(engine.policies.revision, engine.model.version)
            return
        self.model_problem = None
        engine.stage(runtime, self.settings.model_shadow_periods)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def refresh_gauges(self) -> None:
        """Copy the data layer's health into the metrics."""
        health = self.datalayer.health()
        self.metrics.datalayer_errors.set(health.errors)
        self.metrics.datalayer_buffered.set(health.buffered)
        self.metrics.kpm_trimmed_unread.set(health.trimmed_unread)
        for kind, count in health.dropped.items():
            self.metrics.datalayer_dropped.labels(kind).set(count)
        for kind, stream in health.streams.items():
            self.metrics.stream_memory.labels(kind).set(stream.memory_bytes)
            self.metrics.stream_entry_limit.labels(kind).set(stream.entry_limit)
            self.metrics.stream_entry_bytes.labels(kind).set(stream.entry_bytes)

    def problems(self) -> list[str]:
        """Why the xApp is not ready (empty: ready)."""
        engine, settings = self.engine, self.settings
        problems = [] if self.store.loaded else ["A1 policies not loaded yet"]
        if self.model_problem:
            problems.append(self.model_problem)
        data = self.datalayer.health()
        if data.degraded_s > settings.datalayer_degraded_s:
            problems.append(_datalayer_problem(data, settings.datalayer_degraded_s))
        if engine is None:
            return problems or ["no model scoring yet"]
        stall_ns = settings.stall_periods * settings.period_ms * 1_000_000
        if engine.last_received_ns - engine.last_scored_ns > stall_ns:
            problems.append(f"indications arrive but nothing was scored for {settings.stall_periods} periods")
        return problems

    def health(self) -> dict[str, Any]:
        """What /healthz and /readyz answer."""
        data = self.datalayer.health()
        engine = self.engine
        problems = self.problems()
        return {
            "status": "degraded" if data.degraded or problems else "ok",
            "ready": not problems,
            "problems": problems,
            "model_version": engine.model.version if engine is not None else None,
            "staged_model_version": engine.shadow.version if engine is not None and engine.shadow else None,
            "model_problem": self.model_problem,
            "refused_models": dict(self._refused),
            "policies_loaded": self.store.loaded,
            "cells": len(engine.table) if engine is not None else 0,
            "open_incidents": engine.incidents.open_count if engine is not None else 0,
            "data_quality_incidents": len(engine.intake.ranges.incidents) if engine is not None else 0,
            "e2_streams": int(self.metrics.e2_connected._value.get()),
            "datalayer": {
                "backend": data.backend, "connected": data.connected, "degraded": data.degraded,
                "degraded_s": round(data.degraded_s, 1), "buffered": data.buffered, "dropped": data.dropped,
                "errors": data.errors, "trimmed_unread": data.trimmed_unread,
                "streams": {kind: dataclasses.asdict(stream) for kind, stream in data.streams.items()},
            },
            "ric": self.ric.health() if self.ric is not None else None,
        }  # fmt: skip
