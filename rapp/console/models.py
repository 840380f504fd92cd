"""The models and jobs page's JSON under /console/api: the promoted model versions with their evaluation figures
(the manifest's, and the judgement of the job that trained each), which one the model policy names and which
one the cells are scored with; the training and rollback jobs with their progress and log. Making a version
score (a rollback to an older one, or forward again to a newer one) and starting a training are the rApp's
jobs (`rapp.jobs`), and need the admin scope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rapp.a1.client import A1Error
from rapp.api.policies import problem
from rapp.console.network import NetworkView
from rapp.jobrecord import REASON_MAX
from rapp.jobs import JobRunner, QueueFull

JOBS_SHOWN = 20  # the newest jobs the page lists


class JobBody(BaseModel):
    """Why a job is asked for."""

    reason: str = Field("from the console", min_length=1, max_length=REASON_MAX)


async def models_view(runner: JobRunner, network: NetworkView) -> dict[str, Any]:
    """The promoted versions, newest first, with their figures; the version named and the versions scoring."""
    try:
        named = await runner.current_version()
    except A1Error:
        named = None  # the Near-RT side does not answer: the network view says so
    cells = await network.cells()
    scoring: dict[str, int] = {}
    for state in cells:
        scoring[state.model_version] = scoring.get(state.model_version, 0) + 1
    judged = {str(j.outcome.get("candidate")): j.outcome.get("judgement") for j in runner.jobs.values()}
    versions = []
    for version in reversed(await runner.registry.promoted()):
        artifact = await runner.registry.get(version)
        manifest = None if artifact is None else artifact.manifest
        versions.append({
            "version": version, "created": None if manifest is None else manifest.created,
            "evaluation": {} if manifest is None else manifest.evaluation, "judgement": judged.get(version),
            "named": version == named, "cells_scoring": scoring.get(version, 0)})  # fmt: skip
    return {"named": named, "scoring": scoring, "versions": versions}


def console_models_router(runner: JobRunner, network: NetworkView, read: Any, admin: Any, prefix: str) -> APIRouter:
    """The routes over one job runner: `read` guards every route, `admin` the jobs."""
    router = APIRouter(prefix=prefix, dependencies=[read])

    def submitted(submit: Any) -> Response:
        try:
            return JSONResponse(submit().public(), status_code=202)
        except QueueFull as exc:
            refused = problem(429, str(exc))
            refused.headers["Retry-After"] = str(exc.retry_after_s)
            return refused

    @router.get("/models")
    async def models() -> Response:
        """The promoted versions with their figures, the one named and those scoring."""
        return JSONResponse(await models_view(runner, network))

    @router.post("/models/{version}/score")
    async def score(version: str, body: JobBody, actor: str = admin) -> Response:
        """Make a promoted version score: a rollback job (signed anew, named in the model policy, enforced)."""
        if version not in await runner.registry.promoted():
            return problem(404, f"model version {version[:80]!r} is not a promoted version in the registry")
        return submitted(lambda: runner.submit_rollback(version, f"{body.reason} ({actor})"))

    @router.get("/jobs")
    async def jobs() -> Response:
        """The newest jobs with their progress and log."""
        return JSONResponse({"jobs": [j.public() for j in runner.newest(0, JOBS_SHOWN)], "counts": runner.counts()})

    @router.post("/jobs/training")
    async def train(body: JobBody, actor: str = admin) -> Response:
        """Queue a retraining on the collected history."""
        return submitted(lambda: runner.submit_training(f"{body.reason} ({actor})"))

    return router
