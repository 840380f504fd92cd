"""The console's pages under /console: server-rendered (Jinja2, autoescaped) with a little script each, the
sign-in form, their JSON under /console/api (session and CSRF checks, `rapp.console.session`), and their
assets (the console's own, and plotly.js from the installed `plotly` package: nothing from a CDN)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ranomaly_contracts.auth.scopes import ADMIN, READ
from ranomaly_contracts.auth.tokens import InvalidToken
from ranomaly_contracts.kinds import LABEL_KINDS
from ranomaly_contracts.redact import redact_all
from rapp.a1.policies import PolicyError
from rapp.api.policies import problem
from rapp.console.api import console_api_router, filters_of
from rapp.console.cellview import SPANS_H
from rapp.console.events import NetworkEvent, folded, network_events
from rapp.console.models import console_models_router
from rapp.console.network import STATUSES
from rapp.console.notes import NOTE_MAX, VERDICTS
from rapp.console.oauth import PENDING_S, PRE_COOKIE, OAuthRefused, oauth_sign_in
from rapp.console.policies import console_policies_router
from rapp.console.service import Console
from rapp.console.session import COOKIE, Session, Sessions, form_fields, reader, same_origin, writer
from rapp.jobs import POLICY_TYPE_ID
from rapp.reports import ReportNotFound

PREFIX = "/console"
API = f"{PREFIX}/api"
HERE = files("rapp.console")
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"  # the pinned plotly package's plotly.js
COLUMNS = (("cell", "Cell"), ("", "Node"), ("", "State"), ("", "Kind"), ("opened", "Opened"),
           ("duration", "Duration"), ("peak_score", "Peak score"), ("", "Review"))  # fmt: skip
ASSET_CACHE = "public, max-age=3600"


def when(ms: int) -> str:
    """A time as operators read it: UTC to the second."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """A duration in hours and minutes."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def templates() -> Jinja2Templates:
    """The console's templates, every value escaped."""
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(default=True))
    env.filters.update(when=when, duration=duration)
    env.tests["event"] = lambda row: isinstance(row, NetworkEvent)
    return Jinja2Templates(env=env)


def mount_console(app: FastAPI, console: Console, sessions: Sessions) -> None:
    """The pages, their JSON and their assets on the app."""
    app.include_router(console_router(console, sessions))
    api = console_api_router(console, reader(sessions), writer(sessions), prefix=API)
    app.include_router(api, include_in_schema=False)
    policies = console_policies_router(console.policies, reader(sessions), writer(sessions), prefix=API)
    app.include_router(policies, include_in_schema=False)
    models = console_models_router(console.jobs, console.network, reader(sessions), writer(sessions, ADMIN), API)
    app.include_router(models, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console_static")


def console_router(console: Console, sessions: Sessions) -> APIRouter:
    """The pages over one console, the sign-in, the report for the incident page, and plotly.js."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages = templates()

    def page(request: Request, name: str, session: Session, context: dict[str, Any]) -> Response:
        return pages.TemplateResponse(request, name, {"session": session, "open": sessions.open, "api": API,
                                                      **context})  # fmt: skip

    def sign_in_first(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", status_code=303)

    @router.get("/vendor/plotly.min.js", name="plotly_js")
    async def plotly_js() -> Response:
        return FileResponse(str(PLOTLY_JS), media_type="text/javascript", headers={"cache-control": ASSET_CACHE})

    oauth = oauth_sign_in(console.settings)
    issuer_name = console.settings.console_oauth_issuer_name if oauth is not None else None

    def sign_in_form(request: Request, target: str, error: str | None, status: int = 200) -> Response:
        return pages.TemplateResponse(request, "sign_in.html", {"next": target, "error": error,
                                                                "oauth": issuer_name}, status_code=status)  # fmt: skip

    def signed_in(answer: Response, cookie: str) -> Response:
        answer.set_cookie(COOKIE, cookie, max_age=int(sessions.lifetime_s), path=PREFIX, httponly=True,
                          samesite="strict", secure=sessions.secure)  # fmt: skip
        return answer

    @router.get("/sign-in", response_class=HTMLResponse, name="sign_in_page")
    async def sign_in_page(request: Request, next: str = PREFIX) -> Response:
        return sign_in_form(request, _local(next), None)

    @router.get("/oauth/start", name="oauth_start")
    async def oauth_start(request: Request, next: str = PREFIX) -> Response:
        """To the issuer's authorize endpoint, the PKCE verifier and state kept under a pre-session cookie."""
        if oauth is None:
            return PlainTextResponse("no OAuth issuer is configured for the console", status_code=404)
        external = console.settings.console_external_url
        callback = str(request.url_for("oauth_callback"))
        if external is not None:
            callback = f"{external.rstrip('/')}{PREFIX}/oauth/callback"
        cookie, url = oauth.begin(callback, _local(next))
        answer = RedirectResponse(url, status_code=303)
        # Lax, not Strict: the issuer's redirect back is a cross-site navigation, which must carry it
        answer.set_cookie(PRE_COOKIE, cookie, max_age=PENDING_S, path=f"{PREFIX}/oauth", httponly=True,
                          samesite="lax", secure=sessions.secure)  # fmt: skip
        return answer

    @router.get("/oauth/callback", name="oauth_callback")
    async def oauth_callback(request: Request) -> Response:
        """The issuer's answer: state checked, the code exchanged with the verifier, the token verified."""
        pending = None if oauth is None else oauth.take(request.cookies.get(PRE_COOKIE))
        target = PREFIX if pending is None else pending.next
        try:
            if oauth is None or sessions.guard.tokens is None:
                raise OAuthRefused("No OAuth issuer is configured for the console.")
            token = await oauth.finish(pending, dict(request.query_params))
            principal = await sessions.guard.tokens.verify(token)
            if not principal.holds([READ]):
                raise OAuthRefused(f"The issuer's token does not grant {READ}: ask for console access.")
        except (OAuthRefused, InvalidToken) as exc:
            reason = str(exc) if isinstance(exc, OAuthRefused) else f"The issuer's token was not accepted ({exc})."
            request.state.credential, request.state.auth_problem = "console oauth", f"sign-in refused: {reason}"
            answer = sign_in_form(request, target, reason, 401)
            answer.delete_cookie(PRE_COOKIE, path=f"{PREFIX}/oauth")
            return answer
        request.state.principal, request.state.audited = principal, True  # a sign-in: in the audit stream
        cookie, _ = sessions.start(principal, principal.subject)
        # a page of our own that moves on: a redirect chain begun at the issuer would not carry the Strict cookie
        answer = pages.TemplateResponse(request, "signed_in.html", {"next": target})
        answer.delete_cookie(PRE_COOKIE, path=f"{PREFIX}/oauth")
        return signed_in(answer, cookie)

    @router.post("/sign-in", name="sign_in")
    async def sign_in(request: Request) -> Response:
        form = await form_fields(request)
        target = _local(form.get("next", PREFIX))
        signed = await sessions.sign_in(form.get("key", ""), form.get("name", "")) if same_origin(request) else None
        if signed is None:
            request.state.credential, request.state.auth_problem = "console sign-in", "sign-in refused"
            error = "That key is not accepted." if same_origin(request) else "Sign in from the console's own page."
            return sign_in_form(request, target, error, 401)
        cookie, _ = signed
        return signed_in(RedirectResponse(target, status_code=303), cookie)

    @router.post("/sign-out", name="sign_out")
    async def sign_out(request: Request) -> Response:
        form = await form_fields(request)
        session = sessions.current(request)
        if session is not None and same_origin(request) and form.get("csrf") == session.csrf:
            sessions.sign_out(request.cookies.get(COOKIE))
        answer = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        answer.delete_cookie(COOKIE, path=PREFIX)
        return answer

    @router.get("", response_class=HTMLResponse, name="network_page")
    async def network_page(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        return page(request, "network.html", session, {
            "page": "network", "statuses": STATUSES,
            "refresh_ms": int(console.settings.console_refresh_s * 1000)})  # fmt: skip

    @router.get("/incidents", response_class=HTMLResponse, name="incidents_page")
    async def incidents_page(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        query = dict(request.query_params)
        chosen = filters_of(**{k: query.get(k) or None for k in ("state", "kind", "cell", "node", "review")},
                            sort=query.get("sort", "opened"), order=query.get("order", "desc"))  # fmt: skip
        everything = await console.incidents()
        order = "desc" if chosen.descending else "asc"
        grouped = query.get("grouped", "1") != "0"
        current = {"state": chosen.state, "kind": chosen.kind, "cell": chosen.cell, "node": chosen.node,
                   "review": chosen.review, "sort": chosen.sort, "order": order,
                   "grouped": "1" if grouped else "0"}  # fmt: skip
        links = {}
        for key, _ in COLUMNS:
            flip = "asc" if chosen.sort == key and chosen.descending else "desc"
            links[key] = "?" + urlencode({k: v for k, v in {**current, "sort": key, "order": flip}.items() if v})
        choices = {
            "state": ["open", "closed"],
            "kind": sorted({i.kind for i in everything}),
            "cell": sorted({i.cell_id for i in everything}),
            "node": sorted({i.node_id for i in everything}),
            "review": ["new", "acknowledged", *VERDICTS],
        }
        shown = chosen.order([i for i in everything if chosen.keep(i)])
        rows = folded(shown, network_events(shown, console.grouping)) if grouped else shown
        return page(request, "incidents.html", session, {
            "page": "incidents", "rows": rows, "filters": current, "choices": choices, "columns": COLUMNS,
            "sort_links": links, "grouped": grouped,
            "grouping_link": "?" + urlencode({k: v for k, v in {**current, "grouped": "0" if grouped else "1"}.items()
                                              if v})})  # fmt: skip

    @router.get("/cells/{cell_id}", response_class=HTMLResponse, name="cell_page")
    async def cell_page(request: Request, cell_id: str, hours: float = 24.0) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        span = hours if hours in SPANS_H else 24.0
        return page(request, "cell.html", session, {"page": "network", "cell": await console.cell(cell_id, span),
                                                    "spans": SPANS_H, "hours": span})  # fmt: skip

    @router.get("/models", response_class=HTMLResponse, name="models_page")
    async def models_page(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        return page(request, "models.html", session, {
            "page": "models", "refresh_ms": int(console.settings.console_refresh_s * 1000)})  # fmt: skip

    @router.get("/policies", response_class=HTMLResponse, name="policies_page")
    async def policies_page(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        return page(request, "policies.html", session, {
            "page": "policies", "refresh_ms": int(console.settings.console_refresh_s * 1000)})  # fmt: skip

    @router.get("/policies/edit", response_class=HTMLResponse, name="policy_page")
    async def policy_page(request: Request, id: str = "", type: str = str(POLICY_TYPE_ID)) -> Response:
        """The form of a new policy (no id) or of a stored one (its type and data filled in)."""
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        registry, record = console.policies, None
        try:
            record = registry.get(id) if id else None
            types = await registry.type_ids()
        except PolicyError as exc:  # a stored policy's type is its own: only a new one needs the list
            if record is None and id:
                return PlainTextResponse(exc.detail, status_code=exc.status)
            types = []
        chosen = record["policytype_id"] if record else type
        listed = sorted({*types, chosen}, key=lambda t: (len(t), t))
        return page(request, "policy.html", session, {"page": "policies", "record": record, "policytype_id": chosen,
                                                      "types": listed})  # fmt: skip

    @router.get("/api/reports/{incident_id:path}", dependencies=[reader(sessions)])
    async def incident_report(incident_id: str) -> Response:
        try:
            report = await console.reporter.incident(incident_id)
        except ReportNotFound as exc:
            return problem(404, str(exc))
        return JSONResponse(redact_all(report.to_json()))  # a model's failure may name its folder

    @router.get("/incidents/{incident_id:path}", response_class=HTMLResponse, name="incident_page")
    async def incident_page(request: Request, incident_id: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_first(request)
        incident = await console.incident(incident_id)
        if incident is None:
            return PlainTextResponse(f"incident {incident_id[:120]!r} is not in the history", status_code=404)
        return page(request, "incident.html", session, {
            "page": "incidents", "incident": incident, "plot": await console.plot(incident), "kinds": LABEL_KINDS,
            "note_max": NOTE_MAX, "truth": None if console.truth is None else console.truth.of(incident)})  # fmt: skip

    return router


def _local(target: str) -> str:
    """A redirect target inside the console (anything else: the console's first page)."""
    return target if target.startswith(PREFIX) and not target.startswith("//") else PREFIX
