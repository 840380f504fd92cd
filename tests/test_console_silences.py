"""Maintenance silences through the console's API on a real rApp, a real xApp's A1-P endpoint and a real Redis:
a silence is an A1 policy on the xApp whose expiry is stored with it, so an rApp started after the expiry
passed still deletes it; a refused policy's problems are named by field."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import redis

from ranomaly.redis_process import free_port
from ranomaly_contracts.sdl import sdl_keys
from rapp.console.policies import field_errors
from tests.auth_helpers import key_header
from tests.console_seed import Running, running_rapp
from tests.test_rapp_policies import xapp_on
from tests.test_xapp_service import Running as XappRunning
from tests.waiting import until

PATH = "/A1-P/v2/policytypes/20100/policies/silence.cell.n1-c3"


def rapp_api(console: Running) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=console.base, timeout=30, headers=key_header(console.api_key))


async def test_a_silence_outlives_an_rapp_restart_and_is_deleted_once_expired(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    xapp: XappRunning = xapp_on(port)
    await xapp.service.started.wait()

    async def held() -> httpx.Response:
        return await xapp.http("GET", PATH)

    async def gone() -> bool:
        return (await held()).status_code == 404

    try:
        a1 = {"a1_base_url": f"http://127.0.0.1:{port}", "a1_sync_interval_s": 0.2, "console_silence_check_s": 0.1}
        with running_rapp(redis_url, tmp_path / "one", **a1) as console:  # type: ignore[arg-type]
            await until(lambda: console.service.loaded, "the rApp loaded its policies")
            async with rapp_api(console) as api:
                refused = await api.post("/api/v1/silences", json={"scope": "cell", "target": "n1 c3", "minutes": 5})
                assert refused.status_code == 400 and "target" in refused.json()["detail"]
                made = await api.post("/api/v1/silences", json={"scope": "cell", "target": "n1-c3", "minutes": 60,
                                                                 "by": "erin"})  # fmt: skip
                assert made.status_code == 201, made.text
                assert made.json()["by"] == "erin via api-key"
                listed = (await api.get("/api/v1/silences")).json()["silences"]
                assert [s["target"] for s in listed] == ["n1-c3"]
                assert (await api.get("/api/v1/network")).json()["silences"] == listed
                cell = (await api.get("/api/v1/cells/n1-c3", params={"hours": 1})).json()
                assert cell["silences"] == listed and cell["status"] == "silenced"
                assert (await api.get("/api/v1/cells/n1-c2", params={"hours": 1})).json()["silences"] == []
            assert (await held()).json() == {"enabled": False, "scope": {"cells": ["n1-c3"]}}
            prefix = console.prefix
        # the rApp is down when the silence's hour is over (its stored expiry set back to say so)
        client = redis.Redis.from_url(redis_url)
        key = sdl_keys(prefix).rapp_policies
        record = json.loads(client.hget(key, "silence.cell.n1-c3"))  # type: ignore[arg-type]
        client.hset(key, "silence.cell.n1-c3", json.dumps({**record, "expires_ms": 1}))
        client.close()
        assert (await held()).status_code == 200, "nothing removed it while the rApp was down"
        with running_rapp(redis_url, tmp_path / "two", prefix=prefix, **a1) as console:
            await until(gone, "the restarted rApp deleted the expired silence")
            async with rapp_api(console) as api:
                await until(_empty(api), "the silence gone from the rApp's list")
    finally:
        await xapp.stop()


def _empty(api: httpx.AsyncClient) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await api.get("/api/v1/silences")).json()["silences"] == []

    return check


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("policy_data.threshold.value: -1 is less than or equal to the minimum of 0",
         [("threshold.value", "-1 is less than or equal to the minimum of 0")]),
        ("policy_data.threshold: 'value' is a required property; policy_data.scope.nodes: [] is too short",
         [("threshold.value", "'value' is a required property"), ("scope.nodes", "[] is too short")]),
        ("policy_data: 'enabled' is a required property", [("enabled", "'enabled' is a required property")]),
        ("model_version: allowed only in instance 'ranomaly-model', not in 'p1'",
         [("model_version", "allowed only in instance 'ranomaly-model', not in 'p1'")]),
        ("the Near-RT RIC is down", [("", "the Near-RT RIC is down")]),
    ],
)  # fmt: skip
def test_a_refusals_problems_are_named_by_their_field(detail: str, expected: list[tuple[str, str]]) -> None:
    assert [(e["field"], e["message"]) for e in field_errors(detail)] == expected
