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


def pms_router(registry: PolicyRegistry, guard: Guard) -> APIRouter:
    """The policy management routes over one registry: reads need READ, writes POLICIES."""
    router = APIRouter(prefix=PREFIX, tags=["A1 Policy Management"])

    async def guarded(work: Any) -> Response:
        try:
            result: Response = await work
        except PolicyError as exc:
            return problem(exc.status, exc.detail)
        return result

    read, write = [guard.require(READ)], [guard.require(POLICIES)]

    @router.get("/policy-types", dependencies=read)
    async def policy_types(ric_id: str | None = None) -> Response:
        """A1 policy type ids of the Near-RT RIC."""

        async def work() -> Response:
            if ric_id is not None and ric_id != registry.ric_id:
                return problem(404, f"ric_id {ric_id!r}: unknown Near-RT RIC")
            return JSONResponse({"policytype_ids": await registry.type_ids()})

        return await guarded(work())

    @router.get("/policy-types/{policytype_id}", dependencies=read)
    async def policy_type(policytype_id: str) -> Response:
        """A policy type's schema."""

        async def work() -> Response:
            return JSONResponse({"policy_schema": await registry.type_schema(policytype_id)})

        return await guarded(work())

    @router.get("/policies", dependencies=read)
    async def policy_ids(
        policytype_id: str | None = None, ric_id: str | None = None, service_id: str | None = None
    ) -> Response:
        """Ids of the policies matching every filter given."""
        return JSONResponse({"policy_ids": registry.ids(policytype_id, ric_id, service_id)})

    @router.put("/policies", dependencies=write)
    async def put_policy(request: Request) -> Response:
        """Create (201) or update (200) a policy: validated against its type's schema, pushed, stored."""
        raw = await bounded_body(request, BODY_MAX, "a policy_info body")
        info = raw if isinstance(raw, JSONResponse) else _policy_info(raw)
        if isinstance(info, JSONResponse):
            return info

        async def work() -> Response:
            created = await registry.put(info)
            return JSONResponse({}, status_code=201 if created else 200)

        return await guarded(work())

    @router.get("/policies/{policy_id}", dependencies=read)
    async def get_policy(policy_id: str) -> Response:
        """One policy."""

        async def work() -> Response:
            record = registry.get(policy_id)
            return JSONResponse({k: v for k, v in record.items() if k not in ("last_modified", "expires_ms")})

        return await guarded(work())

    @router.delete("/policies/{policy_id}", dependencies=write)
    async def delete_policy(policy_id: str) -> Response:
        """Delete a policy from the Near-RT RIC and the store."""

        async def work() -> Response:
            await registry.delete(policy_id)
            return JSONResponse({})

        return await guarded(work())

    @router.get("/policies/{policy_id}/status", dependencies=read)
    async def policy_status(policy_id: str) -> Response:
        """The Near-RT RIC's status of a policy."""

        async def work() -> Response:
            return JSONResponse(await registry.status(policy_id))

        return await guarded(work())

    return router
