"""What the rApp's OpenAPI document says beyond FastAPI's defaults, so that a generated client is usable: the
problem+json model and the problem answers each operation gives, 401 and 403 on every guarded operation,
and a request that fails validation answered (and declared) as a 400 problem, never FastAPI's 422 list."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from rapp.api.answers import BODIES, PROBLEM, WHY, Problem
from rapp.api.policies import problem

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install(app: FastAPI) -> None:
    """Answer validation failures as 400 problems and give the app the document described above."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A parameter or body that fails its model: a 400 naming each field."""
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return problem(400, fields or "the request is not valid")

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes,
                               description=app.description)  # fmt: skip
            app.openapi_schema = _amend(spec)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _amend(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's automatic 422 becomes the 400 problem; guarded operations declare 401 and 403."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema())
    for name, model in BODIES.items():
        schemas.setdefault(name, model.model_json_schema(ref_template="#/components/schemas/{model}"))
    declared = {"content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            answers = operation.setdefault("responses", {})
            automatic = answers.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if automatic.get("$ref", "").endswith("/HTTPValidationError"):
                del answers["422"]
            if "requestBody" in operation or operation.get("parameters"):  # what FastAPI validates: a 400
                answers.setdefault("400", {"description": WHY[400], **declared})
            if operation.get("security"):
                for status in (401, 403):
                    answers.setdefault(str(status), {"description": WHY[status], **declared})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def allow_every_method(app: FastAPI) -> None:
    """A 405 names in `Allow` every method the path's resource serves (Starlette names only its first route's):
    the resource is the path template of the route that refused the method, so `/jobs/training` is not also
    `/jobs/{job_id}` with its GET."""

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        answer = problem(exc.status_code, str(exc.detail))
        answer.headers.update(exc.headers or {})
        resource = request.scope.get("route")
        if exc.status_code == 405 and isinstance(resource, Route):
            served = {
                m for route in _routes(app.router.routes) if route.path == resource.path for m in route.methods or ()
            }
            answer.headers["Allow"] = ", ".join(m for m in METHODS if m in served)
        return answer


def _routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """Every route, those of included routers too (FastAPI keeps an included router whole, as one entry)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif isinstance(router := getattr(route, "original_router", None), APIRouter):
            yield from _routes(router.routes)
