"""The console's JSON routes under /api/v1: the network view, incidents (list with filters, one, its plot data),
operators' acknowledgements, notes and verdicts, the verdicts as labels.csv, and maintenance silences."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import POLICIES, READ, Principal
from ranomaly_contracts.kinds import LABEL_KINDS
from rapp.a1.policies import PolicyError
from rapp.api.answers import problems
from rapp.api.policies import problem
from rapp.console.incident_models import IncidentOut, IncidentPage
from rapp.console.incidents import SORTS, Filters, Incident
from rapp.console.labels import labels_csv
from rapp.console.notes import NOTE_MAX, IncidentNotes, NoteError, notes_json
from rapp.console.paging import LIMIT_MAX, CursorError, in_range, page
from rapp.console.service import Console
from rapp.console.silences import SilenceBody

PREFIX = "/api/v1"
CSV = "text/csv; charset=utf-8"


class Actor(BaseModel):
    """Optionally, on whose behalf an API client acts (recorded as "<by> via <the credential's subject>")."""

    by: str | None = Field(None, min_length=1, max_length=80)

    def who(self, actor: str) -> str:
        """The name recorded with the change."""
        return actor if self.by is None else f"{self.by} via {actor}"


class NoteBody(Actor):
    """A note on an incident."""

    text: str = Field(min_length=1, max_length=NOTE_MAX)


class FalseAlarm(Actor):
    """A verdict: the incident was a false alarm."""

    verdict: Literal["false_alarm"]


class Confirmed(Actor):
    """A verdict: the incident was confirmed, caused by this anomaly kind."""

    verdict: Literal["confirmed"]
    cause: str = Field(json_schema_extra={"enum": list(LABEL_KINDS)})


VerdictBody = Annotated[FalseAlarm | Confirmed, Field(discriminator="verdict")]


class IncidentIdConvertor(Convertor[str]):
    """An incident id in a path: any characters, slashes too, but not ending as a sub-resource does, so that
    `/incidents/{id}` does not also match `/incidents/{id}/notes` (nor claim its methods in a 405's Allow)."""

    regex = r".+(?<!/plot)(?<!/acknowledge)(?<!/notes)(?<!/verdict)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("incident", IncidentIdConvertor())


def filters_of(
    state: str | None = None,
    kind: str | None = None,
    cell: str | None = None,
    node: str | None = None,
    review: str | None = None,
    sort: str = "opened",
    order: str = "desc",
) -> Filters:
    """Filters from query parameters (empty means any)."""
    return Filters(state or None, kind or None, cell or None, node or None, review or None,
                   sort if sort in SORTS else "opened", order != "asc")  # fmt: skip


def guard_reader(guard: Guard) -> Any:
    """The dependency of an API read: the scope READ."""
    return guard.require(READ)


def guard_writer(guard: Guard) -> Any:
    """The dependency of an API change: the scope POLICIES; the credential's subject."""

    policies = guard.require(POLICIES)

    def subject(principal: Principal = policies) -> str:
        return principal.subject

    return Depends(subject)


def console_api_router(console: Console, read: Any, write: Any, prefix: str = PREFIX) -> APIRouter:
    """The routes over one console: `read` guards every route, `write` (which gives the actor's name) every
    change."""
    router = APIRouter(prefix=prefix, tags=["Console"], dependencies=[read])

    async def found(incident_id: str) -> Incident | JSONResponse:
        incident = await console.incident(incident_id)
        return problem(404, f"incident {incident_id[:120]!r} is not in the history") if incident is None else incident

    @router.get("/network")
    async def network() -> Response:
        """Every cell's state by node, open incidents by kind, incidents opened per hour, the model scoring and
        its age, the Near-RT side's health."""
        return JSONResponse(await console.network_view())

    @router.get("/silences")
    async def silences() -> Response:
        """The maintenance silences in place, soonest to expire first."""
        return JSONResponse({"silences": console.silences.all()})

    @router.post("/silences", status_code=201, responses=problems(400, 404, 503))
    async def silence(body: SilenceBody, actor: str = write) -> Response:
        """Silence a node or a cell for `minutes`: an A1 policy (enabled false) the rApp deletes when it expires;
        silencing it again sets a new expiry."""
        try:
            return JSONResponse(await console.silences.silence(body, actor), status_code=201)
        except PolicyError as exc:
            return problem(exc.status, exc.detail)

    @router.delete("/silences/{policy_id}", responses=problems(404, 503))
    async def lift(policy_id: str, actor: str = write) -> Response:
        """End a silence now."""
        try:
            await console.silences.lift(policy_id)
        except PolicyError as exc:
            return problem(exc.status, exc.detail)
        return JSONResponse({"lifted": policy_id, "by": actor})

    @router.get("/incidents", responses={200: {"model": IncidentPage}, **problems(400)})
    async def incidents(
        state: str | None = None,
        kind: str | None = None,
        cell: str | None = None,
        node: str | None = None,
        review: str | None = None,
        sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}")] = "opened",
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
        since_ms: Annotated[int | None, Query(description="anomalous at or after (ms since the epoch)")] = None,
        until_ms: Annotated[int | None, Query(description="anomalous before (ms since the epoch)")] = None,
        limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = 100,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    ) -> Response:
        """The recorded incidents: filter by state (open, closed), kind, cell, node, review (new, acknowledged,
        false_alarm, confirmed) and time range; sorted by opened, peak_score, duration or cell; `limit` a page,
        the next one from `next_cursor` (null: the last page)."""
        chosen = filters_of(state, kind, cell, node, review, sort, order)
        listed = [i for i in await console.incidents(chosen) if in_range(i, since_ms, until_ms)]
        try:
            found, after = page(listed, cursor, limit)
        except CursorError as exc:
            return problem(400, str(exc))
        return JSONResponse({"incidents": [i.to_json() for i in found], "next_cursor": after})

    @router.get("/events")
    async def events(
        state: str | None = None, kind: str | None = None, node: str | None = None, review: str | None = None
    ) -> Response:
        """Related incidents grouped: each network event is incidents of one node that opened together with the
        same measurements involved (DBSCAN over opening time and measurements, per node), oldest first."""
        chosen = filters_of(state, kind, None, node, review)
        return JSONResponse({"events": [e.to_json() for e in await console.events(chosen)]})

    @router.get("/cells/{cell_id}")
    async def cell(cell_id: str, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0) -> Response:
        """One cell's measurements over the `hours` up to its newest period, its incidents in that span, and its
        latest forecast with the breach limits (or why it has none)."""
        return JSONResponse(await console.cell(cell_id, hours))

    @router.get("/labels.csv", response_class=Response, responses={200: {"content": {CSV: {}}}})
    async def labels(false_alarms: bool = False) -> Response:
        """Operators' verdicts in the dataset's labels.csv format: confirmed incidents (with `false_alarms=true`
        the false alarms too, to be told apart by the `verdict` column)."""
        return Response(labels_csv(await console.incidents(), false_alarms), media_type=CSV,
                        headers={"content-disposition": 'attachment; filename="labels.csv"'})  # fmt: skip

    @router.get("/incidents/{incident_id:path}/plot", responses=problems(404))
    async def plot(incident_id: str) -> Response:
        """Each attributed measurement before and during the incident, with the cell's normal level and band."""
        incident = await found(incident_id)
        return incident if isinstance(incident, JSONResponse) else JSONResponse(await console.plot(incident))

    @router.post("/incidents/{incident_id:path}/acknowledge", responses=problems(404, 422))
    async def acknowledge(incident_id: str, body: Actor, actor: str = write) -> Response:
        """Acknowledge an incident (the first acknowledgement stays)."""
        return await act(incident_id, lambda: console.notes.acknowledge(incident_id, body.who(actor)))

    @router.post("/incidents/{incident_id:path}/notes", responses=problems(404, 422))
    async def annotate(incident_id: str, body: NoteBody, actor: str = write) -> Response:
        """Add a note to an incident."""
        return await act(incident_id, lambda: console.notes.annotate(incident_id, body.who(actor), body.text))

    @router.post("/incidents/{incident_id:path}/verdict", responses=problems(404, 422))
    async def judge(incident_id: str, body: VerdictBody, actor: str = write) -> Response:
        """Mark an incident a false alarm, or confirmed with its cause (an anomaly kind)."""
        who, cause = body.who(actor), body.cause if isinstance(body, Confirmed) else None
        return await act(incident_id, lambda: console.notes.judge(incident_id, who, body.verdict, cause))

    @router.get("/incidents/{incident_id:incident}", responses={200: {"model": IncidentOut}, **problems(404)})
    async def incident(incident_id: str) -> Response:
        """One incident with the operators' notes."""
        found_ = await found(incident_id)
        return found_ if isinstance(found_, JSONResponse) else JSONResponse(found_.to_json())

    async def act(incident_id: str, change: Callable[[], Awaitable[IncidentNotes]]) -> Response:
        incident = await found(incident_id)
        if isinstance(incident, JSONResponse):
            return incident
        try:
            return JSONResponse(notes_json(await change()))
        except NoteError as exc:
            return problem(422, str(exc))

    return router
