"""A1-P over HTTP: the O-RAN SC A1 mediator's paths under /A1-P/v2 and its `POST /data-delivery`, served by a
FastAPI router.

Path ids are taken as text and checked by the handler (not FastAPI's 422): a type id that is not one names no
type (404), an illegal one on create is a 400 that names it. Bodies are read as JSON text; errors are JSON
`{"detail": "..."}`. The query parameter `notificationDestination` is accepted and ignored. A method a path
does not serve is a 405 whose `Allow` lists those it does (`ranomaly_contracts.methods`). Reads need the READ
scope and writes POLICIES (`ranomaly_contracts.auth`: 401 without a valid credential, 403 without the scope,
both declared in the OpenAPI); the healthcheck is open, as /healthz is. docs/conformance.md lists where the
answers differ from the mediator's swagger, and why.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import POLICIES, READ
from ranomaly_contracts.methods import answer_unserved_methods
from xapp.policy.handler import A1Handler, A1Result, parse_json
from xapp.policy.store import InvalidPolicy

PREFIX = "/A1-P/v2"
DATA_DELIVERY = "/data-delivery"
_AUTH_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid credential (an API key or a bearer token)"},
    403: {"description": "the credential lacks the scope this operation needs"},
}
_TYPE = "/policytypes/{policy_type_id}"
_INSTANCE = _TYPE + "/policies/{policy_instance_id}"


def _response(result: A1Result) -> Response:
    if result.body is None:
        return Response(status_code=result.status)
    return JSONResponse(result.body, status_code=result.status)


async def _body(request: Request, absent: object = None) -> object | A1Result:
    """The request's JSON body (`absent` when there is none; None: a 400), or a 400 result naming what is wrong."""
    raw = await request.body()
    if not raw.strip():
        return A1Result(400, {"detail": "body: missing; a JSON object is required"}) if absent is None else absent
    try:
        return parse_json(raw, "body")
    except InvalidPolicy as exc:
        return A1Result(400, {"detail": str(exc)})


def a1_router(handler: A1Handler, guard: Guard, prefix: str = PREFIX) -> APIRouter:
    """A router serving A1-P (the mediator's swagger, O-RAN SC 2.1.0) through `handler`, under /A1-P/v2
    (the A1 simulator serves the same API under /a1-p), and /data-delivery."""
    router = APIRouter(tags=["A1-P"])
    type_path, instance_path = prefix + _TYPE, prefix + _INSTANCE
    read, write = [guard.require(READ)], [guard.require(POLICIES)]

    @router.post(DATA_DELIVERY, dependencies=write, responses=_AUTH_ANSWERS, tags=["A1 EI Data Delivery"])
    async def data_delivery(request: Request) -> Response:
        body = await _body(request, absent={})
        if isinstance(body, A1Result):
            return _response(body)
        return _response(await handler.data_delivery(body))

    @router.get(prefix + "/healthcheck")
    async def healthcheck() -> Response:
        return _response(await handler.healthcheck())

    @router.get(prefix + "/policytypes", dependencies=read, responses=_AUTH_ANSWERS)
    async def list_types() -> Response:
        return _response(await handler.list_types())

    @router.get(type_path, dependencies=read, responses=_AUTH_ANSWERS)
    async def get_type(policy_type_id: str) -> Response:
        return _response(await handler.get_type(policy_type_id))

    @router.put(type_path, dependencies=write, responses=_AUTH_ANSWERS)
    async def create_type(policy_type_id: str, request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, A1Result):
            return _response(body)
        return _response(await handler.create_type(policy_type_id, body))

    @router.delete(type_path, dependencies=write, responses=_AUTH_ANSWERS)
    async def delete_type(policy_type_id: str) -> Response:
        return _response(await handler.delete_type(policy_type_id))

    @router.get(type_path + "/policies", dependencies=read, responses=_AUTH_ANSWERS)
    async def list_instances(policy_type_id: str) -> Response:
        return _response(await handler.list_instances(policy_type_id))

    @router.get(instance_path, dependencies=read, responses=_AUTH_ANSWERS)
    async def get_instance(policy_type_id: str, policy_instance_id: str) -> Response:
        return _response(await handler.get_instance(policy_type_id, policy_instance_id))

    @router.put(instance_path, dependencies=write, responses=_AUTH_ANSWERS)
    async def put_instance(policy_type_id: str, policy_instance_id: str, request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, A1Result):
            return _response(body)
        return _response(await handler.put_instance(policy_type_id, policy_instance_id, body))

    @router.delete(instance_path, dependencies=write, responses=_AUTH_ANSWERS)
    async def delete_instance(policy_type_id: str, policy_instance_id: str) -> Response:
        return _response(await handler.delete_instance(policy_type_id, policy_instance_id))

    @router.get(instance_path + "/status", dependencies=read, responses=_AUTH_ANSWERS)
    async def get_status(policy_type_id: str, policy_instance_id: str) -> Response:
        return _response(await handler.get_status(policy_type_id, policy_instance_id))

    return answer_unserved_methods(router)
