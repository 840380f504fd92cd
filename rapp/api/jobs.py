"""Training jobs and model versions over HTTP: start a retraining, follow jobs (paginated), read a job's log,
list versions, roll back. A submission beyond the queue's bound is refused with 429 and `Retry-After`."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import ADMIN, READ
from rapp.api.advice_models import DriftCheck
from rapp.api.answers import body, problems
from rapp.api.job_models import JobLog, JobOut, JobPage, PromotedModels, query
from rapp.api.policies import bounded_body, problem
from rapp.drift import DriftMonitor
from rapp.jobrecord import REASON_MAX, Job
from rapp.jobs import JobRunner, QueueFull

PREFIX = "/api/v1"
PAGE_DEFAULT, PAGE_MAX = 20, 100  # jobs per listing page
BODY_MAX = 4096  # bytes of a job request's body
LISTED_LOG_LINES = 5  # a listing shows the tail of each job's log; /jobs/{id} and /jobs/{id}/log show all


class JobRequest(BaseModel):
    """The optional body of a job request."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field("on demand", max_length=REASON_MAX)


async def _reason(request: Request) -> str | JSONResponse:
    """The optional `reason` of a request body (a JSON object, or nothing)."""
    raw = await bounded_body(request, BODY_MAX, "a job request")
    if isinstance(raw, JSONResponse):
        return raw
    if not raw.strip():
        return "on demand"
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(400, f"body: not JSON: {exc}")
    try:
        return JobRequest.model_validate(body).reason or "on demand"
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        return problem(400, f'body: expected {{"reason": "<text>"}} or nothing: {fields}')


REASON_BODY = body(JobRequest, required=False)  # read from the request itself (bounded): declared here


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int | JSONResponse:
    """A query parameter as an integer within [low, high]."""
    given = request.query_params.get(name)
    if given is None:
        return default
    if not given.isdigit() or not low <= int(given) <= high:
        return problem(400, f"{name}: {given[:40]!r} is not an integer from {low} to {high}")
    return int(given)


def _submitted(submit: Callable[[], Job]) -> Response:
    try:
        return JSONResponse(submit().public(), status_code=202)
    except QueueFull as exc:
        refused = problem(429, str(exc))
        refused.headers["Retry-After"] = str(exc.retry_after_s)
        return refused


def jobs_router(runner: JobRunner, drift: DriftMonitor, guard: Guard) -> APIRouter:
    """Routes over one job runner and the drift monitor that can start it: reads need READ, jobs ADMIN."""
    router = APIRouter(prefix=PREFIX, tags=["Models and training"])
    read, admin = [guard.require(READ)], [guard.require(ADMIN)]

    @router.get("/drift", dependencies=read, responses={200: {"model": DriftCheck}, **problems(404)})
    async def last_drift_check() -> Response:
        """The last drift check: cells whose inputs moved, and whether it started a retraining."""
        if drift.last is None:
            return problem(404, "no drift check has run yet (drift_check_every_h = 0, or too little history)")
        return JSONResponse(drift.last.public())

    @router.post("/jobs/training", status_code=202, dependencies=admin, openapi_extra=REASON_BODY,
                 responses={202: {"model": JobOut}, **problems(400, 413, 429)})  # fmt: skip
    async def start_training(request: Request) -> Response:
        """Queue a retraining on the collected history; follow it at /jobs/{id}. 429 when the queue is full."""
        reason = await _reason(request)
        if isinstance(reason, JSONResponse):
            return reason
        return _submitted(lambda: runner.submit_training(reason))

    @router.get("/jobs", dependencies=read, responses={200: {"model": JobPage}, **problems(400)},
                openapi_extra={"parameters": [query("limit", "jobs a page", 1, PAGE_MAX),
                                              query("offset", "jobs skipped, newest first", 0, 10**9)]})  # fmt: skip
    async def jobs(request: Request) -> Response:
        """Jobs, newest first, a page at a time (`limit`, default 20, at most 100; `offset`); each with the
        tail of its log."""
        limit = _integer(request, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
        offset = _integer(request, "offset", 0, 0, 10**9)
        if isinstance(limit, JSONResponse):
            return limit
        if isinstance(offset, JSONResponse):
            return offset
        page = [{**job.public(), "log": job.log[-LISTED_LOG_LINES:]} for job in runner.newest(offset, limit)]
        total = len(runner.jobs)
        after = offset + len(page)
        return JSONResponse({"jobs": page, "total": total, "offset": offset, "limit": limit,
                             "next_offset": after if after < total else None})  # fmt: skip

    @router.get("/jobs/{job_id}", dependencies=read, responses={200: {"model": JobOut}, **problems(404)})
    async def job(job_id: str) -> Response:
        """One job: state, progress log, outcome."""
        found = runner.jobs.get(job_id)
        return problem(404, f"job {job_id[:80]!r} not found") if found is None else JSONResponse(found.public())

    @router.get("/jobs/{job_id}/log", dependencies=read, responses={200: {"model": JobLog}, **problems(400, 404)},
                openapi_extra={"parameters": [query("tail", "the newest lines", 1, 10**6)]})  # fmt: skip
    async def job_log(job_id: str, request: Request) -> Response:
        """The newest lines of a job's log (`tail`, default and at most every line kept)."""
        found = runner.jobs.get(job_id)
        if found is None:
            return problem(404, f"job {job_id[:80]!r} not found")
        tail = _integer(request, "tail", len(found.log), 1, 10**6)
        if isinstance(tail, JSONResponse):
            return tail
        return JSONResponse({"id": found.id, "state": found.state, "lines": found.log[-tail:],
                             "dropped": found.log_dropped})  # fmt: skip

    @router.get("/models", dependencies=read, responses={200: {"model": PromotedModels}})
    async def models() -> Response:
        """Promoted model versions, oldest first."""
        return JSONResponse({"promoted": await runner.registry.promoted()})

    @router.post("/models/{version}/rollback", status_code=202, dependencies=admin, openapi_extra=REASON_BODY,
                 responses={202: {"model": JobOut}, **problems(400, 404, 413, 429)})  # fmt: skip
    async def rollback(version: str, request: Request) -> Response:
        """Make an earlier promoted version score again (through the model's A1 policy)."""
        reason = await _reason(request)
        if isinstance(reason, JSONResponse):
            return reason
        if version not in await runner.registry.promoted():
            return problem(404, f"model version {version[:80]!r} is not a promoted version in the registry")
        return _submitted(lambda: runner.submit_rollback(version, reason))

    return router
