"""405 Method Not Allowed with the `Allow` header that RFC 9110 asks for, on FastAPI routers.

Starlette answers a method a path does not serve from the first route whose path matches, so a path served
by three routes (GET, PUT, DELETE) says `Allow: GET`. `answer_unserved_methods(router)` adds, for every path,
one route (left out of the OpenAPI) that takes every other method: OPTIONS gets 204 and any other 405, both
with `Allow` listing what the path serves (HEAD with GET, and OPTIONS). Call it after the last route is added,
on a router whose routes are its own (FastAPI keeps an included router's routes inside it, unseen here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


def answer_unserved_methods(router: APIRouter) -> APIRouter:
    """`router`, with a 405 route (OPTIONS: 204) for the methods each of its paths does not serve."""
    served: dict[str, set[str]] = defaultdict(set)
    for route in router.routes:
        if isinstance(route, APIRoute):
            served[route.path_format].update(route.methods or ())
    for path, methods in served.items():
        if "GET" in methods:
            methods.add("HEAD")
        allow = ", ".join(m for m in METHODS if m in methods | {"OPTIONS"})
        router.add_api_route(path, _refuse(allow), methods=[m for m in METHODS if m not in methods],
                             include_in_schema=False)  # fmt: skip
    return router


def _refuse(allow: str) -> Callable[[Request], Awaitable[Response]]:
    async def refuse(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        detail = f"{request.method} is not served here; allowed: {allow}"
        return JSONResponse({"detail": detail}, status_code=405, headers={"Allow": allow})

    return refuse
