"""The rest of the policy management API v2 beside the policies (`rapp.api.policies`): the Near-RT RIC
(`/rics`, `/rics/ric`), service registration and keep-alive (`/services`), the application configuration,
and `/status` (also at the root, as the O-RAN SC service has it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import ADMIN, POLICIES, READ
from rapp.a1.configuration import Configuration
from rapp.a1.policies import PolicyError, PolicyRegistry
from rapp.a1.services import ServiceRegistration, ServiceRegistry, remove_service
from rapp.api.answers import body, problems
from rapp.api.pms_models import (
    ApplicationConfiguration,
    Empty,
    RicInfo,
    RicInfoList,
    ServiceStatusList,
    StatusInfo,
)
from rapp.api.policies import PREFIX, bounded_body, problem

BODY_MAX = 1024 * 1024  # bytes of a configuration or registration body
REMOVE_AT_ONCE = 10_000  # policies a DELETE /services/{id} removes in its own request


class Pms:
    """What the routes need: the policies, the services, the configuration, and the RIC's state (a callable
    answering one of `RicInfo.state`)."""

    def __init__(self, policies: PolicyRegistry, services: ServiceRegistry, configuration: Configuration,
                 state: Callable[[], str]) -> None:  # fmt: skip
        self.policies, self.services, self.configuration, self.state = policies, services, configuration, state

    async def ric(self) -> dict[str, Any]:
        """`ric_info` of the Near-RT RIC: its types as it lists them now (unreachable: the types kept)."""
        try:
            types = await self.policies.type_ids()
        except PolicyError:
            types = self.policies.kept_type_ids()
        return {"ric_id": self.policies.ric_id, "managed_element_ids": self.configuration.managed_element_ids,
                "state": self.state(), "policytype_ids": types}  # fmt: skip


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(400, f"body: not JSON: {exc}") from None


def pms_more_router(pms: Pms, guard: Guard) -> tuple[APIRouter, APIRouter]:
    """The routes under PREFIX, and `/status` at the root."""
    router = APIRouter(prefix=PREFIX)
    read, write, admin = [guard.require(READ)], [guard.require(POLICIES)], [guard.require(ADMIN)]

    async def answer(work: Any) -> Response:
        try:
            result: Response = await work
        except PolicyError as exc:
            return problem(exc.status, exc.detail)
        return result

    @router.get("/status", tags=["Health Check"], dependencies=read, responses={200: {"model": StatusInfo}})
    async def status() -> Response:
        """The service is up."""
        return JSONResponse({"status": "success"})

    @router.get("/rics", tags=["NearRT-RIC Repository"], dependencies=read,
                responses={200: {"model": RicInfoList}, **problems(404)})  # fmt: skip
    async def rics(policytype_id: str | None = None) -> Response:
        """The Near-RT RICs (this rApp manages one), with their policy types and state; with `policytype_id`
        those supporting it (a type no RIC knows: 404)."""
        ric = await pms.ric()
        if policytype_id is not None and policytype_id not in ric["policytype_ids"]:
            return problem(404, f"policytype_id {policytype_id[:16]!r}: policy type not found")
        return JSONResponse({"rics": [ric]})

    @router.get("/rics/ric", tags=["NearRT-RIC Repository"], dependencies=read,
                responses={200: {"model": RicInfo}, **problems(404)})  # fmt: skip
    async def ric(managed_element_id: str | None = None, ric_id: str | None = None) -> Response:
        """The Near-RT RIC named by `ric_id`, or managing `managed_element_id` (neither given: 404)."""
        if managed_element_id is not None:
            if managed_element_id not in pms.configuration.managed_element_ids:
                return problem(404, f"managed_element_id {managed_element_id[:256]!r}: no Near-RT RIC manages it")
        elif ric_id is None:
            return problem(404, "give ric_id or managed_element_id")
        if ric_id is not None and ric_id != pms.policies.ric_id:
            return problem(404, f"ric_id {ric_id[:256]!r}: Near-RT RIC not found")
        return JSONResponse(await pms.ric())

    @router.get("/services", tags=["Service Registry and Supervision"], dependencies=read,
                responses={200: {"model": ServiceStatusList}, **problems(404)})  # fmt: skip
    async def services(service_id: str | None = None) -> Response:
        """The registered services (with `service_id`: that one; not registered: 404)."""
        try:
            return JSONResponse({"service_list": pms.services.status(service_id)})
        except PolicyError as exc:
            return problem(exc.status, exc.detail)

    @router.put("/services", tags=["Service Registry and Supervision"], dependencies=write,
                openapi_extra=body(ServiceRegistration),
                responses={200: {"model": Empty, "description": "updated"},
                           201: {"model": Empty, "description": "registered"}, **problems(400, 413, 503)})  # fmt: skip
    async def register(request: Request) -> Response:
        """Register a service, or update its registration (its keep-alive timer restarts). With
        `keep_alive_interval_seconds` > 0, a service silent that long is deregistered and its policies deleted."""

        async def work() -> Response:
            raw = await bounded_body(request, BODY_MAX, "a registration")
            if isinstance(raw, JSONResponse):
                return raw
            registration = _model(ServiceRegistration, _json(raw))
            created = await pms.services.put(registration)
            return JSONResponse({}, status_code=201 if created else 200)

        return await answer(work())

    @router.put("/services/{service_id}/keepalive", tags=["Service Registry and Supervision"], dependencies=write,
                responses={200: {"model": Empty}, **problems(404, 503)})  # fmt: skip
    async def keepalive(service_id: str) -> Response:
        """A registered service is alive: its timer restarts."""

        async def work() -> Response:
            await pms.services.keepalive(service_id)
            return JSONResponse({})

        return await answer(work())

    @router.delete("/services/{service_id}", tags=["Service Registry and Supervision"], dependencies=write,
                   status_code=204, responses={204: {"description": "deregistered"}, **problems(404, 503)})  # fmt: skip
    async def deregister(service_id: str) -> Response:
        """Deregister a service and delete its policies, as the O-RAN SC service does."""

        async def work() -> Response:
            pms.services.status(service_id)  # 404 when not registered
            if not await remove_service(pms.services, pms.policies, service_id, REMOVE_AT_ONCE):
                return problem(503, f"service {service_id[:256]!r}: more than {REMOVE_AT_ONCE} policies; "
                                    "delete again to remove the rest")  # fmt: skip
            return Response(status_code=204)

        return await answer(work())

    @router.get("/configuration", tags=["Configuration"], dependencies=read,
                responses={200: {"model": ApplicationConfiguration}})  # fmt: skip
    async def configuration() -> Response:
        """The application configuration: the Near-RT RIC, its A1 endpoint and managed element ids."""
        return JSONResponse(pms.configuration.document())

    @router.put("/configuration", tags=["Configuration"], dependencies=admin,
                openapi_extra=body(ApplicationConfiguration),
                responses={200: {"model": Empty}, **problems(400, 413)})  # fmt: skip
    async def replace_configuration(request: Request) -> Response:
        """Replace the configuration: the RIC's name and A1 endpoint stay as the settings give them; its managed
        element ids and other entries of `config` are adopted."""

        async def work() -> Response:
            raw = await bounded_body(request, BODY_MAX, "a configuration")
            if isinstance(raw, JSONResponse):
                return raw
            pms.configuration.replace(_json(raw))
            return JSONResponse({})

        return await answer(work())

    root = APIRouter()

    @root.get("/status", tags=["Health Check"], dependencies=read, response_class=PlainTextResponse,
              responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})  # fmt: skip
    async def status_v1() -> Response:
        """The service is up: a line of text, as the O-RAN SC service's root status answers."""
        return PlainTextResponse("success")

    return router, root


def _model(model: type[ServiceRegistration], data: Any) -> ServiceRegistration:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise PolicyError(400, fields) from None
