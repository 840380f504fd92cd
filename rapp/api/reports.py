"""Reports over HTTP: one incident's report and a day's summary, as Markdown or JSON."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import READ
from ranomaly_contracts.redact import redact_all
from rapp.api.answers import problems
from rapp.api.policies import problem
from rapp.reports import DailyReport, IncidentReport, Reporter, ReportNotFound

PREFIX = "/api/v1/reports"
MARKDOWN = "text/markdown; charset=utf-8"
_FORMATS = {"json": "json", "markdown": "markdown", "md": "markdown"}
Format = Literal["json", "markdown", "md"]
DayQuery = Annotated[dt.date, Query(description="a UTC day, YYYY-MM-DD")]
ANSWERS = {200: {"description": "the report", "content": {"application/json": {}, "text/markdown": {}}},
           **problems(400, 404)}  # fmt: skip
FormatQuery = Annotated[Format | None, Query(description="json or markdown (md); else the Accept header says")]


def _format(request: Request, given: Format | None) -> str:
    """The `format` query parameter, else markdown when Accept asks for text/markdown, else JSON."""
    if given is not None:
        return _FORMATS[given]
    accept = request.headers.get("accept", "")
    return "markdown" if "text/markdown" in accept and "application/json" not in accept else "json"


def _answer(report: IncidentReport | DailyReport, fmt: str) -> Response:
    written_by = report.summary.written_by if isinstance(report, IncidentReport) else "template"
    headers = {"x-summary-written-by": written_by}
    if fmt == "markdown":
        return Response(report.markdown(), media_type=MARKDOWN, headers=headers)
    return JSONResponse(redact_all(report.to_json()), headers=headers)  # a model's failure may name its folder


def reports_router(reporter: Reporter, guard: Guard) -> APIRouter:
    """Routes over one reporter (READ)."""
    router = APIRouter(prefix=PREFIX, tags=["Reports"])
    read = [guard.require(READ)]

    @router.get("/incidents/{incident_id:path}", dependencies=read, responses=ANSWERS)
    async def incident_report(incident_id: str, request: Request, format: FormatQuery = None) -> Response:
        """One incident's report: executive summary (the model's, kept only when it passes the fact check, else
        the template's; `written_by` says which), technical details, likely cause, recommended actions, alerts.
        Markdown with `format=markdown` or `Accept: text/markdown`, else JSON with the fact sheet."""
        fmt = _format(request, format)
        try:
            report = await reporter.incident(incident_id)
        except ReportNotFound as exc:
            return problem(404, str(exc))
        return _answer(report, fmt)

    @router.get("/daily", dependencies=read, responses=ANSWERS)
    async def daily_report(request: Request, date: DayQuery, format: FormatQuery = None) -> Response:
        """One UTC day's summary (`date=YYYY-MM-DD`): incidents per kind and cell, the longest, those still open,
        the most attributed measurements."""
        fmt = _format(request, format)
        try:
            report = await reporter.daily(date)
        except ReportNotFound as exc:
            return problem(404, str(exc))
        return _answer(report, fmt)

    return router
