"""The rApp's A1 sync against a Near-RT side that restarts empty, as the O-RAN SC A1 simulator does: lost policy
types are restored before their instances (operators' and the model policy as a job last named it), each type
is synced on its own, and a failing sync shows in /healthz and /metrics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ranomaly.redis_process import free_port
from ranomaly_contracts.sdl import sdl_keys
from rapp.app import RappService
from rapp.settings import RappSettings
from tests.auth_helpers import app_key
from tests.waiting import until


def type_document(type_id: int) -> dict[str, Any]:
    return {"name": f"type-{type_id}", "description": "test", "policy_type_id": type_id,
            "create_schema": {"type": "object", "properties": {"enabled": {"type": "boolean"}}}}  # fmt: skip


class NearRt:
    """A minimal A1-P endpoint (O-RAN SC simulator flavour, /a1-p) that can lose everything and fail a type."""

    def __init__(self) -> None:
        self.types: dict[int, dict[str, Any]] = {}
        self.instances: dict[int, dict[str, Any]] = {}
        self.broken: set[int] = set()  # types whose instance listing answers 500
        self.app = FastAPI()
        app = self.app

        @app.get("/a1-p/healthcheck")
        async def health() -> Response:
            return Response(status_code=200)

        @app.get("/a1-p/policytypes")
        async def types() -> Response:
            return JSONResponse(sorted(self.types))

        @app.get("/a1-p/policytypes/{type_id}")
        async def get_type(type_id: int) -> Response:
            if type_id not in self.types:
                return JSONResponse({"detail": "no such type"}, status_code=404)
            return JSONResponse(self.types[type_id])

        @app.put("/a1-p/policytypes/{type_id}")
        async def put_type(type_id: int, request: Request) -> Response:
            self.types[type_id] = await request.json()
            self.instances.setdefault(type_id, {})
            return Response(status_code=201)

        @app.get("/a1-p/policytypes/{type_id}/policies")
        async def list_instances(type_id: int) -> Response:
            if type_id in self.broken:
                return JSONResponse({"detail": "broken"}, status_code=500)
            if type_id not in self.types:
                return JSONResponse({"detail": "no such type"}, status_code=404)
            return JSONResponse(sorted(self.instances[type_id]))

        @app.get("/a1-p/policytypes/{type_id}/policies/{policy_id}")
        async def get_instance(type_id: int, policy_id: str) -> Response:
            found = self.instances.get(type_id, {}).get(policy_id)
            return JSONResponse({"detail": "no such policy"}, status_code=404) if found is None else JSONResponse(found)

        @app.put("/a1-p/policytypes/{type_id}/policies/{policy_id}")
        async def put_instance(type_id: int, policy_id: str, request: Request) -> Response:
            if type_id not in self.types:
                return JSONResponse({"detail": "no such type"}, status_code=404)
            self.instances[type_id][policy_id] = await request.json()
            return Response(status_code=202)

    def put(self, type_id: int) -> None:
        self.types[type_id] = type_document(type_id)
        self.instances[type_id] = {}

    def held(self) -> dict[int, set[str]]:
        return {type_id: set(self.instances.get(type_id, {})) for type_id in self.types}

    def wipe(self) -> None:
        self.types.clear()
        self.instances.clear()


@pytest.fixture
async def near_rt() -> AsyncIterator[tuple[NearRt, int]]:
    fake = NearRt()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield fake, port
    server.should_exit = True
    await task


class Rapp:
    def __init__(self, settings: RappSettings, prefix: str) -> None:
        self.service = RappService(settings, prefix=prefix)
        self.task = asyncio.create_task(self.service.run())

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        await self.service.started.wait()
        base, headers = f"http://127.0.0.1:{self.service.http_port}", app_key(self.service.settings)
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            return await client.request(method, path, json=body)

    async def stop(self) -> None:
        self.service.stop()
        await asyncio.wait_for(self.task, 30)


def policy(policy_id: str, type_id: int) -> dict[str, Any]:
    return {"ric_id": "ric-1", "policy_id": policy_id, "policytype_id": str(type_id), "policy_data": {"enabled": True}}


async def test_lost_types_are_restored_before_instances_each_type_on_its_own_and_failures_show(
    near_rt: tuple[NearRt, int], redis_url: str, tmp_path: Path
) -> None:
    fake, port = near_rt
    for type_id in (20100, 20101):
        fake.put(type_id)
    settings = RappSettings(redis_url=redis_url, http_host="127.0.0.1", port=0, a1_base_url=f"http://127.0.0.1:{port}",
                            a1_api_root="/a1-p", a1_retries=0, a1_sync_interval_s=0.05, history_dir=tmp_path / "h",
                            work_dir=tmp_path / "w", collect_block_ms=100)  # fmt: skip
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    named = {
        "id": "job-1",
        "kind": "rollback",
        "reason": "r",
        "state": "succeeded",
        "created": time.time(),
        "log": [],
        "outcome": {"version": "v1", "named": True, "enforced": True},
    }  # a job named v1 before
    redis = aioredis.Redis.from_url(redis_url)
    await redis.hset(sdl_keys(prefix).rapp_jobs, "job-1", json.dumps(named))
    await redis.aclose()
    everything = {20100: {"p1", "ranomaly-model"}, 20101: {"p2"}}
    rapp = Rapp(settings, prefix)
    try:
        await until(lambda: rapp.service.loaded, "the policies loaded")
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy("p1", 20100))).status_code == 201
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy("p2", 20101))).status_code == 201

        huge = policy("p9", 20100) | {"policy_data": {"enabled": True, "note": "x" * 70_000}}
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", huge)).status_code == 413
        long_service = policy("p9", 20100) | {"service_id": "s" * 257}
        refused = await rapp.call("PUT", "/a1-policy/v2/policies", long_service)
        assert refused.status_code == 400 and "service_id" in refused.json()["detail"]

        fake.wipe()  # the Near-RT side restarts empty: types and instances gone
        await until(lambda: fake.held() == everything, "types restored, then their instances")
        assert fake.types[20101] == type_document(20101), "the type is restored as the rApp read it"
        assert fake.instances[20100]["ranomaly-model"] == {"enabled": True, "model_version": "v1"}
        metrics = (await rapp.call("GET", "/metrics")).text
        assert "ranomaly_rapp_policy_types_restored_total 2.0" in metrics
        assert "ranomaly_rapp_a1_sync_ok 1.0" in metrics

        fake.broken.add(20101)
        fake.wipe()
        await until(lambda: fake.held().get(20100) == everything[20100], "type 20100 synced while 20101 fails")

        async def degraded() -> bool:
            return bool((await rapp.call("GET", "/healthz")).json()["a1_sync"]["failing"])

        await until(degraded, "the failing sync in /healthz")
        health = (await rapp.call("GET", "/healthz")).json()
        assert health["status"] == "degraded" and list(health["a1_sync"]["failing"]) == ["20101"]
        assert any("policy type 20101" in why and "broken" in why for why in health["problems"]), health["problems"]
        metrics = (await rapp.call("GET", "/metrics")).text
        assert "ranomaly_rapp_a1_sync_ok 0.0" in metrics
        assert 'ranomaly_rapp_a1_sync_failures_total{policytype_id="20101"}' in metrics

        fake.broken.clear()
        await until(lambda: fake.held() == everything, "20101 whole again")

        async def healthy() -> bool:
            return bool((await rapp.call("GET", "/healthz")).json()["status"] == "ok")

        await until(healthy, "/healthz ok again")
    finally:
        await rapp.stop()

    fake.wipe()  # lost while the rApp was down: a new rApp restores the types it kept in the data layer
    again = Rapp(settings, prefix)
    try:
        await until(lambda: fake.held() == everything, "types and instances restored after an rApp restart")
    finally:
        await again.stop()
