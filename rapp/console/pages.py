"""The console's pages under /console: server-rendered (Jinja2, autoescaped) with a little script each, and
their assets (the console's own, and plotly.js from the installed `plotly` package: nothing from a CDN)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ranomaly_contracts.kinds import LABEL_KINDS
from rapp.console.api import filters_of
from rapp.console.network import STATUSES
from rapp.console.notes import NOTE_MAX, VERDICTS
from rapp.console.service import Console

PREFIX = "/console"
HERE = Path(__file__).parent
PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))  # the pinned plotly package's plotly.js
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
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(when=when, duration=duration)
    return Jinja2Templates(env=env)


def mount_console(app: FastAPI, console: Console) -> None:
    """The pages and their assets on the app."""
    app.include_router(console_router(console))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console_static")


def console_router(console: Console) -> APIRouter:
    """The pages over one console, and plotly.js."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages = templates()

    @router.get("/vendor/plotly.min.js", name="plotly_js")
    async def plotly_js() -> Response:
        return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"cache-control": ASSET_CACHE})

    @router.get("", response_class=HTMLResponse, name="network_page")
    async def network_page(request: Request) -> Response:
        return pages.TemplateResponse(request, "network.html", {
            "page": "network", "network": await console.network.build(), "statuses": STATUSES,
            "refresh_ms": int(console.settings.console_refresh_s * 1000)})  # fmt: skip

    @router.get("/incidents", response_class=HTMLResponse, name="incidents_page")
    async def incidents_page(request: Request) -> Response:
        query = dict(request.query_params)
        chosen = filters_of(**{k: query.get(k) or None for k in ("state", "kind", "cell", "node", "review")},
                            sort=query.get("sort", "opened"), order=query.get("order", "desc"))  # fmt: skip
        everything = await console.incidents()
        shown = [i for i in everything if chosen.keep(i)]
        order = "desc" if chosen.descending else "asc"
        current = {"state": chosen.state, "kind": chosen.kind, "cell": chosen.cell, "node": chosen.node,
                   "review": chosen.review, "sort": chosen.sort, "order": order}  # fmt: skip
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
        return pages.TemplateResponse(request, "incidents.html", {
            "page": "incidents", "incidents": chosen.order(shown), "filters": current, "choices": choices,
            "columns": COLUMNS, "sort_links": links})  # fmt: skip

    @router.get("/incidents/{incident_id:path}", response_class=HTMLResponse, name="incident_page")
    async def incident_page(request: Request, incident_id: str) -> Response:
        incident = await console.incident(incident_id)
        if incident is None:
            return PlainTextResponse(f"incident {incident_id[:120]!r} is not in the history", status_code=404)
        return pages.TemplateResponse(request, "incident.html", {
            "page": "incidents", "incident": incident, "plot": await console.plot(incident), "kinds": LABEL_KINDS,
            "note_max": NOTE_MAX})  # fmt: skip

    return router
