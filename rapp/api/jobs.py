"""Training jobs and model versions over HTTP: start a retraining, follow jobs, list versions, roll back."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from rapp.api.policies import problem
from rapp.drift import DriftMonitor
from rapp.jobs import JobRunner

PREFIX = "/api/v1"


async def _reason(request: Request) -> str | JSONResponse:
    """The optional `reason` of a request body (a JSON object, or nothing)."""
    raw = await request.body()
    if not raw.strip():
        return "on demand"
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(400, f"body: not JSON: {exc}")
    if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str) or set(body) - {"reason"}:
        return problem(400, 'body: expected {"reason": "<text>"} or nothing')
    return str(body.get("reason") or "on demand")


def jobs_router(runner: JobRunner, drift: DriftMonitor) -> APIRouter:
    """Routes over one job runner and the drift monitor that can start it."""
    router = APIRouter(prefix=PREFIX, tags=["Models and training"])

    @router.get("/drift")
    async def last_drift_check() -> Response:
        """The last drift check: cells whose inputs moved, and whether it started a retraining."""
        if drift.last is None:
            return problem(404, "no drift check has run yet (drift_check_every_h = 0, or too little history)")
        return JSONResponse(drift.last.public())

    @router.post("/jobs/training", status_code=202)
    async def start_training(request: Request) -> Response:
        """Queue a retraining on the collected history; follow it at /jobs/{id}."""
        reason = await _reason(request)
        if isinstance(reason, JSONResponse):
            return reason
        return JSONResponse(runner.submit_training(reason).public(), status_code=202)

    @router.get("/jobs")
    async def jobs() -> Response:
        """Every job, newest first."""
        return JSONResponse({"jobs": [job.public() for job in reversed(runner.jobs.values())]})

    @router.get("/jobs/{job_id}")
    async def job(job_id: str) -> Response:
        """One job: state, progress log, outcome."""
        found = runner.jobs.get(job_id)
        return problem(404, f"job {job_id!r} not found") if found is None else JSONResponse(found.public())

    @router.get("/models")
    async def models() -> Response:
        """Promoted model versions, oldest first."""
        return JSONResponse({"promoted": await runner.registry.promoted()})

    @router.post("/models/{version}/rollback", status_code=202)
    async def rollback(version: str, request: Request) -> Response:
        """Make an earlier promoted version score again (through the model's A1 policy)."""
        reason = await _reason(request)
        if isinstance(reason, JSONResponse):
            return reason
        if version not in await runner.registry.promoted():
            return problem(404, f"model version {version!r} is not a promoted version in the registry")
        return JSONResponse(runner.submit_rollback(version, reason).public(), status_code=202)

    return router
