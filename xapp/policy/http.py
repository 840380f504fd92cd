"""A1-P over HTTP: the O-RAN SC A1 mediator's paths under /A1-P/v2, served by a FastAPI router.

Path ids are taken as text and checked by the handler, so a bad `policy_type_id` is a 400 that names it
(not FastAPI's 422). Bodies are read as JSON text; errors are JSON `{"detail": "..."}`. The query
parameter `notificationDestination` is accepted and ignored. Reads need the READ scope and writes POLICIES
(`ranomaly_contracts.auth`); the healthcheck is open, as /healthz is.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import POLICIES, READ
from xapp.policy.handler import A1Handler, A1Result, parse_json
from xapp.policy.store import InvalidPolicy

PREFIX = "/A1-P/v2"
_TYPE = "/policytypes/{policy_type_id}"
_INSTANCE = _TYPE + "/policies/{policy_instance_id}"


def _response(result: A1Result) -> Response:
    if result.body is None:
        return Response(status_code=result.status)
    return JSONResponse(result.body, status_code=result.status)


async def _body(request: Request) -> object | A1Result:
    """The request's JSON body, or a 400 result naming what is wrong with it."""
    raw = await request.body()
    if not raw.strip():
        return A1Result(400, {"detail": "body: missing; a JSON object is required"})
    try:
        return parse_json(raw, "body")
    except InvalidPolicy as exc:
        return A1Result(400, {"detail": str(exc)})


def a1_router(handler: A1Handler, guard: Guard, prefix: str = PREFIX) -> APIRouter:
    """A router serving A1-P (the mediator's swagger, O-RAN SC 2.1.0) through `handler`, under /A1-P/v2
    (the A1 simulator serves the same API under /a1-p)."""
    router = APIRouter(prefix=prefix, tags=["A1-P"])
    read, write = [guard.require(READ)], [guard.require(POLICIES)]

    @router.get("/healthcheck")
    async def healthcheck() -> Response:
        return _response(await handler.healthcheck())

    @router.get("/policytypes", dependencies=read)
    async def list_types() -> Response:
        return _response(await handler.list_types())

    @router.get(_TYPE, dependencies=read)
    async def get_type(policy_type_id: str) -> Response:
        return _response(await handler.get_type(policy_type_id))

    @router.put(_TYPE, dependencies=write)
    async def create_type(policy_type_id: str, request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, A1Result):
            return _response(body)
        return _response(await handler.create_type(policy_type_id, body))

    @router.delete(_TYPE, dependencies=write)
    async def delete_type(policy_type_id: str) -> Response:
        return _response(await handler.delete_type(policy_type_id))

    @router.get(_TYPE + "/policies", dependencies=read)
    async def list_instances(policy_type_id: str) -> Response:
        return _response(await handler.list_instances(policy_type_id))

    @router.get(_INSTANCE, dependencies=read)
    async def get_instance(policy_type_id: str, policy_instance_id: str) -> Response:
        return _response(await handler.get_instance(policy_type_id, policy_instance_id))

    @router.put(_INSTANCE, dependencies=write)
    async def put_instance(policy_type_id: str, policy_instance_id: str, request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, A1Result):
            return _response(body)
        return _response(await handler.put_instance(policy_type_id, policy_instance_id, body))

    @router.delete(_INSTANCE, dependencies=write)
    async def delete_instance(policy_type_id: str, policy_instance_id: str) -> Response:
        return _response(await handler.delete_instance(policy_type_id, policy_instance_id))

    @router.get(_INSTANCE + "/status", dependencies=read)
    async def get_status(policy_type_id: str, policy_instance_id: str) -> Response:
        return _response(await handler.get_status(policy_type_id, policy_instance_id))

    return router
