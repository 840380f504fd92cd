"""The policies page's JSON under /console/api/policies: every stored A1 policy with its status on the Near-RT
side, a type's schema (the form is generated from it), create or edit, delete; through the rApp's policy
registry (`rapp.a1.policies`), so what the page does is what the policy management API does. A refused policy's
answer lists each problem with the field it names (`field_errors`), for the form to show next to that field."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ranomaly_contracts.redact import redact_paths
from rapp.a1.policies import PolicyError, PolicyInfo, PolicyRegistry
from rapp.api.policies import problem

STATUS_TIMEOUT_S = 5.0  # a Near-RT side slower than this shows the policy's status as unknown
_PROBLEM = re.compile(r"; (?=[\w.\[\]()-]+: )")  # where one problem of a joined detail ends
_FIELD = re.compile(r"^(?:policy_data\.?)?([\w.-]*): (.*)$", re.S)
_REQUIRED = re.compile(r"^'([^']+)' is a required property")


class PolicyBody(BaseModel):
    """A policy as the form sends it (the policy id is the route's)."""

    policytype_id: str = Field(min_length=1, max_length=16)
    policy_data: dict[str, Any]


def field_errors(detail: str) -> list[dict[str, str]]:
    """The problems of a refusal's detail (`"policy_data.threshold.value: ...; ..."`), each with the dotted field
    it names inside the policy ("" for the policy as a whole); a missing required property names that property."""
    errors = []
    for part in _PROBLEM.split(detail):
        matched = _FIELD.match(part)
        field, message = (matched.group(1), matched.group(2)) if matched else ("", part)
        if field.startswith("(") or field in ("body", "policy_data"):
            field = ""
        required = _REQUIRED.match(message)
        if required:
            field = f"{field}.{required.group(1)}" if field else required.group(1)
        errors.append({"field": field, "message": message})
    return errors


async def policy_rows(registry: PolicyRegistry) -> list[dict[str, Any]]:
    """Every stored policy with its Near-RT status (asked of the Near-RT side, all at once)."""

    async def status(policy_id: str) -> dict[str, Any]:
        try:
            answer = await asyncio.wait_for(registry.status(policy_id), STATUS_TIMEOUT_S)
        except PolicyError as exc:
            return {"enforceStatus": "UNKNOWN", "enforceReason": exc.detail}
        except TimeoutError:
            return {"enforceStatus": "UNKNOWN", "enforceReason": f"no answer within {STATUS_TIMEOUT_S:.0f} s"}
        near: dict[str, Any] = answer["status"] if isinstance(answer["status"], dict) else {}
        return near

    records = [registry.get(pid) for pid in registry.ids()]
    statuses = await asyncio.gather(*(status(r["policy_id"]) for r in records))
    return [{**record, "near_rt_status": near} for record, near in zip(records, statuses, strict=True)]


def console_policies_router(registry: PolicyRegistry, read: Any, write: Any, prefix: str) -> APIRouter:
    """The routes over one registry: `read` guards every route, `write` every change."""
    router = APIRouter(prefix=f"{prefix}/policies", dependencies=[read])

    @router.get("")
    async def policies() -> Response:
        """Every policy with its status on the Near-RT side."""
        return JSONResponse({"policies": await policy_rows(registry)})

    @router.get("/types/{policytype_id}")
    async def policy_type(policytype_id: str) -> Response:
        """A policy type's create schema."""
        try:
            return JSONResponse({"policy_schema": await registry.type_schema(policytype_id)})
        except PolicyError as exc:
            return problem(exc.status, exc.detail)

    @router.put("/{policy_id}")
    async def put(policy_id: str, body: PolicyBody, actor: str = write) -> Response:
        """Create (201) or edit (200) a policy; a refusal lists its problems by field."""
        try:
            info = PolicyInfo(ric_id=registry.ric_id, policy_id=policy_id, policytype_id=body.policytype_id,
                              service_id=f"ranomaly-console:{actor}"[:256], policy_data=body.policy_data)  # fmt: skip
        except ValueError as exc:
            return problem(400, f"policy_id: {policy_id[:80]!r} is not a valid policy id ({type(exc).__name__})")
        try:
            created = await registry.put(info)
        except PolicyError as exc:
            answer = problem(exc.status, exc.detail)
            if exc.status == 400:  # the problem document, with its problems by field
                errors = field_errors(redact_paths(exc.detail))
                answer = JSONResponse({"status": 400, "title": "Bad Request", "detail": redact_paths(exc.detail),
                                       "errors": errors}, status_code=400, media_type=answer.media_type)  # fmt: skip
            return answer
        return JSONResponse(registry.get(policy_id), status_code=201 if created else 200)

    @router.delete("/{policy_id}")
    async def delete(policy_id: str, actor: str = write) -> Response:
        """Delete a policy from the Near-RT side and the store."""
        try:
            await registry.delete(policy_id)
        except PolicyError as exc:
            return problem(exc.status, exc.detail)
        return JSONResponse({"deleted": policy_id, "by": actor})

    return router
