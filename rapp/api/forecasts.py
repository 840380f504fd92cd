"""Forecasts and predicted breaches over HTTP: per-cell forecasts of every measurement for the next H
periods, the cells forecast, and the predicted-breach events with the limits in force."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import READ
from rapp.api.advice_models import Breaches, CellForecast, ForecastRound
from rapp.api.answers import problems
from rapp.api.policies import problem
from rapp.forecasts import ForecastService

PREFIX = "/api/v1"


def forecasts_router(service: ForecastService, guard: Guard) -> APIRouter:
    """Routes over one forecast service (READ)."""
    router = APIRouter(prefix=PREFIX, tags=["Forecasts"])
    read = [guard.require(READ)]

    @router.get("/forecasts", dependencies=read, responses={200: {"model": ForecastRound}, **problems(503)})
    async def forecast_cells() -> Response:
        """The latest round: model version, period, horizon, forecast times and the cells forecast
        (503 naming why when there are no forecasts)."""
        forecasts = service.latest.forecasts
        if forecasts is None:
            return problem(503, f"no forecasts: {service.latest.problem}")
        return JSONResponse(forecasts.summary())

    @router.get("/forecasts/{cell_id}", dependencies=read,
                responses={200: {"model": CellForecast}, **problems(404, 503)})  # fmt: skip
    async def cell_forecast(cell_id: str) -> Response:
        """One cell's forecast of every measurement for the next H periods (404 when the cell has none, 503
        naming why when there are no forecasts at all)."""
        forecasts = service.latest.forecasts
        if forecasts is None:
            return problem(503, f"no forecasts: {service.latest.problem}")
        found = forecasts.cell(cell_id)
        return problem(404, service.missing(cell_id)) if found is None else JSONResponse(found)

    @router.get("/breaches", dependencies=read, responses={200: {"model": Breaches}})
    async def breaches() -> Response:
        """Predicted breaches: the limits in force, the breaches still forecast, the newest events first."""
        limits = [
            {"measurement": limit.measurement, "direction": limit.direction, "threshold": limit.threshold}
            for limit in service.settings.limits
        ]
        return JSONResponse(
            {
                "limits": limits,
                "active": [event.public() for event in service.active()],
                "events": [event.public() for event in reversed(service.events)],
            }
        )

    return router
