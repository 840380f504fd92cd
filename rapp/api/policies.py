"""A1 policy management for operators, after the Non-RT RIC policy management service API v2
(`/a1-policy/v2/...`): policy types, policies (PUT creates or updates), status. Errors are RFC 7807
problem documents whose `detail` names what is wrong; a body that fails validation is a 400, never a 422.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import POLICIES, READ
from ranomaly_contracts.redact import redact_paths
from rapp.a1.policies import PolicyError, PolicyInfo, PolicyRegistry
from rapp.a1.services import ServiceRegistry
from rapp.api.answers import body, problems
from rapp.api.pms_models import Empty, PolicyIds, PolicyInfoList, PolicyStatus, PolicyTypeDefinition, PolicyTypeIds

PREFIX = "/a1-policy/v2"
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 413: "Content Too Large",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip
BODY_MAX = 64 * 1024  # bytes of a policy_info body; a larger one is refused with 413 before it is parsed


def problem(status: int, detail: str) -> JSONResponse:
    """An RFC 7807 problem response; its detail names no server file path (`ranomaly_contracts.redact`)."""
    body = {"status": status, "title": _TITLES.get(status, "Error"), "detail": redact_paths(detail)}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


async def bounded_body(request: Request, limit: int, what: str) -> bytes | JSONResponse:
    """The request's body, read no further than limit bytes: beyond, a 413 problem."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return problem(413, f"body: more than {limit} bytes; {what} holds at most {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def _policy_info(raw: bytes) -> PolicyInfo | JSONResponse:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(400, f"body: not JSON: {exc}")
    try:
        return PolicyInfo.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        return problem(400, fields)


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as `policy_info`: the rApp's own fields and unset optional ones left out."""
    return {k: v for k, v in record.items() if k not in ("last_modified", "expires_ms") and v is not None}


def pms_router(registry: PolicyRegistry, guard: Guard, services: ServiceRegistry | None = None) -> APIRouter:
    """The policy management routes over one registry: reads need READ, writes POLICIES; a put or delete by a
    registered service (`services`) counts as its activity."""
    router = APIRouter(prefix=PREFIX, tags=["A1 Policy Management"])

    async def guarded(work: Any) -> Response:
        try:
            result: Response = await work
        except PolicyError as exc:
            return problem(exc.status, exc.detail)
        return result

    async def acted(service_id: str) -> None:
        if services is not None and service_id:
            await services.touch(service_id)

    read, write = [guard.require(READ)], [guard.require(POLICIES)]

    @router.get("/policy-types", dependencies=read, responses={200: {"model": PolicyTypeIds}, **problems(404, 503)})
    async def policy_types(ric_id: str | None = None, type_name: str | None = None) -> Response:
        """A1 policy type ids of the Near-RT RIC (with `type_name`: those whose document has that name)."""

        async def work() -> Response:
            if ric_id is not None and ric_id != registry.ric_id:
                return problem(404, f"ric_id {ric_id[:256]!r}: unknown Near-RT RIC")
            ids = await registry.type_ids()
            if type_name is not None:
                ids = [t for t in ids if registry.type_name(t) == type_name]
            return JSONResponse({"policytype_ids": ids})

        return await guarded(work())

    @router.get("/policy-types/{policytype_id}", dependencies=read,
                responses={200: {"model": PolicyTypeDefinition}, **problems(404, 503)})  # fmt: skip
    async def policy_type(policytype_id: str) -> Response:
        """A policy type's schema."""

        async def work() -> Response:
            return JSONResponse({"policy_schema": await registry.type_schema(policytype_id)})

        return await guarded(work())

    def matching(policytype_id: str | None, ric_id: str | None, service_id: str | None,
                 type_name: str | None) -> list[str]:  # fmt: skip
        """Ids of the policies matching every filter; an unknown RIC or type is a 404, as the O-RAN SC service
        answers."""
        if ric_id is not None and ric_id != registry.ric_id:
            raise PolicyError(404, f"ric_id {ric_id[:256]!r}: Near-RT RIC not found")
        if policytype_id is not None and policytype_id not in registry.kept_type_ids():
            raise PolicyError(404, f"policytype_id {policytype_id[:16]!r}: policy type not found")
        ids = registry.ids(policytype_id, ric_id, service_id)
        if type_name is not None:
            ids = [p for p in ids if registry.type_name(registry.get(p)["policytype_id"]) == type_name]
        return ids

    @router.get("/policies", dependencies=read, responses={200: {"model": PolicyIds}, **problems(404)})
    async def policy_ids(policytype_id: str | None = None, ric_id: str | None = None, service_id: str | None = None,
                         type_name: str | None = None) -> Response:  # fmt: skip
        """Ids of the policies matching every filter given."""
        try:
            return JSONResponse({"policy_ids": matching(policytype_id, ric_id, service_id, type_name)})
        except PolicyError as exc:
            return problem(exc.status, exc.detail)

    @router.get("/policy-instances", dependencies=read, responses={200: {"model": PolicyInfoList}, **problems(404)})
    async def policy_instances(policytype_id: str | None = None, ric_id: str | None = None,
                               service_id: str | None = None, type_name: str | None = None) -> Response:  # fmt: skip
        """The policies matching every filter given, whole."""
        try:
            ids = matching(policytype_id, ric_id, service_id, type_name)
        except PolicyError as exc:
            return problem(exc.status, exc.detail)
        return JSONResponse({"policies": [public(registry.get(p)) for p in ids]})

    @router.put("/policies", dependencies=write, openapi_extra=body(PolicyInfo),
                responses={200: {"model": Empty, "description": "updated"}, 201: {"model": Empty, "description":
                           "created"}, **problems(400, 404, 409, 413, 503)})  # fmt: skip
    async def put_policy(request: Request) -> Response:
        """Create (201) or update (200) a policy: validated against its type's schema, pushed, stored. Cells,
        nodes or measurements the Near-RT side does not know yet are accepted; its status names them."""
        raw = await bounded_body(request, BODY_MAX, "a policy_info body")
        info = raw if isinstance(raw, JSONResponse) else _policy_info(raw)
        if isinstance(info, JSONResponse):
            return info

        async def work() -> Response:
            created = await registry.put(info)
            await acted(info.service_id)
            return JSONResponse({}, status_code=201 if created else 200)

        return await guarded(work())

    @router.get("/policies/{policy_id}", dependencies=read, responses={200: {"model": PolicyInfo}, **problems(404)})
    async def get_policy(policy_id: str) -> Response:
        """One policy."""

        async def work() -> Response:
            return JSONResponse(public(registry.get(policy_id)))

        return await guarded(work())

    @router.delete("/policies/{policy_id}", dependencies=write,
                   responses={200: {"model": Empty}, **problems(404, 503)})  # fmt: skip
    async def delete_policy(policy_id: str) -> Response:
        """Delete a policy from the Near-RT RIC and the store (unknown: 404, as the O-RAN SC service answers)."""

        async def work() -> Response:
            owner = registry.get(policy_id)["service_id"]
            await registry.delete(policy_id)
            await acted(owner)
            return JSONResponse({})

        return await guarded(work())

    @router.get("/policies/{policy_id}/status", dependencies=read,
                responses={200: {"model": PolicyStatus}, **problems(404, 503)})  # fmt: skip
    async def policy_status(policy_id: str) -> Response:
        """The Near-RT RIC's status of a policy, with what it does not know yet (`warnings`, where it says)."""

        async def work() -> Response:
            return JSONResponse(await registry.status(policy_id))

        return await guarded(work())

    return router
