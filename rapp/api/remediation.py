"""Remediation advice over HTTP: the ranked actions for each root-cause kind. Advice only: nothing is
executed automatically; an operator applies an action through the O-RAN control it names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.scopes import READ
from rapp.api.advice_models import AllAdvice, KindAdvice
from rapp.api.answers import problems
from rapp.api.policies import problem
from rapp.remediation import CONTROL_MAPPING, REMEDIATION, Action

PREFIX = "/api/v1"


def _public(rank: int, action: Action) -> dict[str, Any]:
    return {"rank": rank, "id": action.id, "title": action.title, "control": str(action.control),
            "oran_control": CONTROL_MAPPING[action.control], "confidence": action.confidence,
            "rationale": action.rationale}  # fmt: skip


def _actions(kind: str) -> list[dict[str, Any]]:
    return [_public(rank, action) for rank, action in enumerate(REMEDIATION[kind], 1)]


def remediation_router(guard: Guard) -> APIRouter:
    """Routes over the remediation table (READ)."""
    router = APIRouter(prefix=PREFIX, tags=["Remediation advice"])
    read = [guard.require(READ)]

    @router.get("/remediation", dependencies=read, responses={200: {"model": AllAdvice}})
    async def all_advice() -> Response:
        """Every anomaly kind's ranked actions. Advice only: nothing is executed automatically."""
        return JSONResponse({"automatic": False, "kinds": {str(kind): _actions(kind) for kind in REMEDIATION}})

    @router.get("/remediation/{kind}", dependencies=read, responses={200: {"model": KindAdvice}, **problems(404)})
    async def kind_advice(kind: str) -> Response:
        """One anomaly kind's ranked actions (404 for another word). Advice only: nothing is executed automatically."""
        if kind not in REMEDIATION:
            return problem(404, f"unknown anomaly kind {kind!r}; known kinds: {', '.join(REMEDIATION)}")
        return JSONResponse({"automatic": False, "kind": kind, "actions": _actions(kind)})

    return router
