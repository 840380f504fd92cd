"""The rApp's A1 policy management against a real Near-RT A1-P endpoint (the xApp's) on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI

from ranomaly.redis_process import free_port
from ranomaly_contracts.auth.apikey import ApiKey, provision_api_key
from ranomaly_contracts.auth.guard import Guard
from rapp.a1.client import A1Client
from rapp.a1.credentials import ApiKeyFile
from rapp.a1.policies import PolicyInfo, PolicyRegistry
from rapp.app import RappService
from rapp.settings import RappSettings
from tests.auth_helpers import app_key
from tests.test_xapp_service import Running, until
from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.policy.handler import A1Handler
from xapp.policy.http import a1_router
from xapp.policy.store import PolicyStore
from xapp.settings import XappSettings

GOOD = {"enabled": True, "scope": {"nodes": ["gnb-001"]}, "threshold": {"mode": "sigma", "value": 4.0}}


def policy(policy_id: str = "p1", data: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """A policy_info body for type 20100 on ric-1."""
    return {"ric_id": "ric-1", "policy_id": policy_id, "policytype_id": "20100",
            "policy_data": GOOD if data is None else data, **more}  # fmt: skip


def xapp_on(port: int) -> Running:
    """An xApp (in-memory data layer, no E2 needed for A1) serving A1-P on port."""
    settings = XappSettings(e2_targets=[f"127.0.0.1:{free_port()}"], http_host="127.0.0.1", a1_port=port,
                            model_poll_s=5.0)  # fmt: skip
    return Running(XappService(settings, MemoryDataLayer()))


class Rapp:
    """An rApp service running in this event loop, with an HTTP client."""

    def __init__(self, settings: RappSettings, prefix: str) -> None:
        self.service = RappService(settings, prefix=prefix)
        self.task = asyncio.create_task(self.service.run())

    async def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> httpx.Response:
        await self.service.started.wait()
        base, headers = f"http://127.0.0.1:{self.service.http_port}", app_key(self.service.settings)
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            if raw is not None:
                return await client.request(method, path, content=raw, headers={"content-type": "application/json"})
            return await client.request(method, path, json=body)

    async def stop(self) -> None:
        self.service.stop()
        await asyncio.wait_for(self.task, 20)


@pytest.fixture
def key() -> str:
    """A key prefix of this test in the shared Redis."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def near_rt() -> AsyncIterator[tuple[Running, int]]:
    port = free_port()
    xapp = xapp_on(port)
    await xapp.service.started.wait()
    yield xapp, port
    await xapp.stop()


def rapp_settings(redis_url: str, port: int, **more: Any) -> RappSettings:
    return RappSettings(redis_url=redis_url, http_host="127.0.0.1", port=0, a1_base_url=f"http://127.0.0.1:{port}",
                        a1_sync_interval_s=0.2, a1_retries=1, collect_block_ms=100, **more)  # fmt: skip


async def test_policy_crud_goes_through_to_the_xapp_and_back(
    redis_url: str, key: str, near_rt: tuple[Running, int]
) -> None:
    xapp, port = near_rt
    rapp = Rapp(rapp_settings(redis_url, port), key)
    try:
        assert (await rapp.call("GET", "/a1-policy/v2/policy-types")).json() == {"policytype_ids": ["20100"]}
        schema = (await rapp.call("GET", "/a1-policy/v2/policy-types/20100")).json()["policy_schema"]
        assert schema["required"] == ["enabled"]
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy())).status_code == 201
        held = await xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/p1")
        assert held.status_code == 200 and held.json() == GOOD, "pushed to the Near-RT side as sent"
        changed = {**GOOD, "enabled": False}
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy(data=changed))).status_code == 200
        assert (await xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/p1")).json() == changed
        assert (await rapp.call("GET", "/a1-policy/v2/policies?policytype_id=20100")).json() == {"policy_ids": ["p1"]}
        assert (await rapp.call("GET", "/a1-policy/v2/policies/p1")).json()["policy_data"] == changed
        status = (await rapp.call("GET", "/a1-policy/v2/policies/p1/status")).json()
        assert status["status"]["enforceStatus"] in ("ENFORCED", "NOT_ENFORCED") and status["last_modified"]
        assert (await rapp.call("DELETE", "/a1-policy/v2/policies/p1")).status_code == 200
        assert (await xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/p1")).status_code == 404
        assert (await rapp.call("GET", "/a1-policy/v2/policies/p1")).status_code == 404
    finally:
        await rapp.stop()


async def test_bad_input_gets_a_4xx_that_names_what_is_wrong(
    redis_url: str, key: str, near_rt: tuple[Running, int]
) -> None:
    _, port = near_rt
    rapp = Rapp(rapp_settings(redis_url, port), key)
    try:
        cases = [
            (policy(data={"enabled": True, "threshold": {"mode": "bogus"}}), 400, "policy_data.threshold.mode"),
            (policy(data={"scope": {}}), 400, "'enabled' is a required property"),
            ({k: v for k, v in policy().items() if k != "policy_data"}, 400, "policy_data"),
            (policy(colour="red"), 400, "colour"),
            (policy(ric_id="ric-9"), 404, "ric-9"),
            (policy(policytype_id="99999"), 404, "99999"),
            (policy(policytype_id="abc"), 404, "integers"),
            (policy(policy_id="ranomaly-model", data={"enabled": True}), 400, "model API"),
            (policy(data={"enabled": True, "model_version": "v9"}), 400, "model_version"),
        ]
        for body, status, named in cases:
            response = await rapp.call("PUT", "/a1-policy/v2/policies", body)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert named in response.json()["detail"], (named, response.json())
        not_json = await rapp.call("PUT", "/a1-policy/v2/policies", raw=b"{nope")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
        assert (await rapp.call("GET", "/a1-policy/v2/policies")).json() == {"policy_ids": []}, "nothing stored"
        assert (await rapp.call("DELETE", "/a1-policy/v2/policies/none")).status_code == 404
    finally:
        await rapp.stop()


async def test_policies_a_restarted_near_rt_ric_lost_are_pushed_again_and_survive_an_rapp_restart(
    redis_url: str, key: str
) -> None:
    port = free_port()
    xapp = xapp_on(port)
    rapp = Rapp(rapp_settings(redis_url, port), key)
    try:
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy("keep"))).status_code == 201
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy("brief", transient=True))).status_code == 201
        await xapp.stop()  # its in-memory data layer forgets every policy
        xapp = xapp_on(port)
        await until(lambda: rapp.service.policies.repushed >= 1, what="the re-push")
        assert (await xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/keep")).json() == GOOD
        assert (await xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/brief")).status_code == 404
        assert (await rapp.call("GET", "/a1-policy/v2/policies")).json() == {"policy_ids": ["keep"]}, (
            "transient dropped"
        )
        await rapp.stop()
        rapp = Rapp(rapp_settings(redis_url, port), key)
        await until(lambda: rapp.service.loaded, what="the policies loaded again")
        assert (await rapp.call("GET", "/a1-policy/v2/policies/keep")).json()["policy_data"] == GOOD
    finally:
        await rapp.stop()
        await xapp.stop()


class HeldDelete(A1Client):
    """An A1 client whose deletes, once done on the Near-RT side, wait for the test to let them return."""

    def __init__(self, base_url: str, key_file: Path) -> None:
        super().__init__(base_url, retries=1, auth=ApiKeyFile(key_file))
        self.deleted = asyncio.Event()
        self.release = asyncio.Event()

    async def delete(self, type_id: int, instance_id: str) -> None:
        await super().delete(type_id, instance_id)
        self.deleted.set()
        await self.release.wait()


async def test_a_sync_during_a_delete_does_not_push_the_policy_back(
    redis_url: str, key: str, near_rt: tuple[Running, int], xapp_state_dir: Path
) -> None:
    xapp, port = near_rt
    client = HeldDelete(f"http://127.0.0.1:{port}", xapp_state_dir / "api-key")
    redis = aioredis.Redis.from_url(redis_url)
    registry = PolicyRegistry(client, redis, f"{key}:policies", "ric-1")
    try:
        await registry.put(PolicyInfo(**policy()))
        deleting = asyncio.create_task(registry.delete("p1"))
        await client.deleted.wait()  # gone from the Near-RT side, still in the rApp's records
        syncing = asyncio.create_task(registry.sync())
        await asyncio.sleep(0.2)
        client.release.set()
        await asyncio.gather(deleting, syncing)
        assert registry.ids() == [] and registry.repushed == 0
        assert (await xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/p1")).status_code == 404, (
            "the deleted policy stays deleted on the Near-RT side"
        )
    finally:
        await client.close()
        await redis.aclose()


async def test_an_unreachable_near_rt_ric_is_a_503_and_nothing_is_stored(redis_url: str, key: str) -> None:
    rapp = Rapp(rapp_settings(redis_url, free_port()), key)
    try:
        response = await rapp.call("PUT", "/a1-policy/v2/policies", policy())
        assert response.status_code == 503 and "unavailable" in response.json()["detail"]
        assert (await rapp.call("GET", "/a1-policy/v2/policies")).json() == {"policy_ids": []}
        assert (await rapp.call("GET", "/healthz")).json()["status"] == "degraded"
    finally:
        await rapp.stop()


async def test_the_a1_client_speaks_the_a1_simulator_api_root(redis_url: str, key: str, xapp_state_dir: Path) -> None:
    store = PolicyStore(MemoryDataLayer())
    await store.load()
    app = FastAPI()
    a1_key = ApiKey(provision_api_key(xapp_state_dir / "api-key"))  # the rApp's credential there (conftest)
    app.include_router(a1_router(A1Handler(store), Guard(None, a1_key), prefix="/a1-p"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    rapp = Rapp(rapp_settings(redis_url, port, a1_api_root="/a1-p"), key)
    try:
        await until(lambda: server.started, what="the simulator")
        assert (await rapp.call("PUT", "/a1-policy/v2/policies", policy())).status_code == 201
        assert store.instance(20100, "p1").body == GOOD
    finally:
        await rapp.stop()
        server.should_exit = True
        await serving
