"""The xApp's HTTP server: A1-P (O-RAN SC flavour) under /A1-P/v2, /healthz, /readyz and /metrics (on a port of
their own, `health_app`, when `health_port` is set).

It runs on its own thread (`xapp.httpthread`): health and the gauges are snapshots the scoring loop takes
when asked (or its last one, when it does not answer within a bound); nothing here touches the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from ranomaly_contracts.auth.audit import AuditMiddleware
from ranomaly_contracts.redact import redact_all
from xapp.policy.http import a1_router

if TYPE_CHECKING:
    from xapp.app import XappService

_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def http_app(service: XappService) -> FastAPI:
    """The FastAPI application of one xApp service."""
    app = FastAPI(title="RANomaly xApp", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.add_middleware(AuditMiddleware, app_name="xapp", sink=service.a1_data)
    app.include_router(a1_router(service.a1, service.guard))
    if service.settings.transport == "rmr":
        from xapp.ric.submgr import notification_router

        app.include_router(notification_router(service.on_subscription_notification))
    if service.settings.health_port is None:
        _health_routes(app, service)
    return app


def health_app(service: XappService) -> FastAPI:
    """/healthz, /readyz and /metrics alone, for their own port (open: no credential)."""
    app = FastAPI(title="RANomaly xApp health", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    _health_routes(app, service)
    return app


def _health_routes(app: FastAPI, service: XappService) -> None:
    """/healthz, /readyz and /metrics on `app`."""

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Liveness: the process serves; the body says what is degraded."""
        return JSONResponse(redact_all(await service.current_health()))

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Readiness: policies loaded and a model scoring."""
        body: dict[str, Any] = await service.current_health()
        return JSONResponse(redact_all(body), status_code=200 if body["ready"] else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        """Prometheus metrics."""
        await service.current_health()  # the gauges are refreshed with it
        return Response(service.metrics.render(), media_type=_PROMETHEUS)
