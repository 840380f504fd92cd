"""A1 isolated from scoring: the HTTP server on a thread of its own, policy changes through the data layer's
change stream (real redis-server, real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from ranomaly.redis_process import free_port
from ranomaly_contracts.sdl import FIELD_DATA, PolicyChange, decode_policy_change, policy_instance_field, sdl_keys
from tests.test_xapp_service import Running, model_folder, start_xapp, status_of
from tests.waiting import until
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.policies import MemoryPolicies
from xapp.datalayer.redis import RedisDataLayer
from xapp.httpthread import CpuShare
from xapp.policy.follow import PROBLEMS, PolicyFollower
from xapp.policy.store import PolicyStore
from xapp.policy.types import POLICY_TYPE_ID

PERIOD_MS = 100
INSTANCE = "ops-1"
POLICY = f"/A1-P/v2/policytypes/{POLICY_TYPE_ID}/policies/{INSTANCE}"
BODY = {"enabled": True, "scope": {"cells": ["c1"]}, "threshold": {"mode": "sigma", "value": 4}}
REPLACED = {**BODY, "threshold": {"mode": "sigma", "value": 6}}


async def start(layer: object, tmp_path: Path) -> Running:
    """An xApp scoring a trivial model, with no E2 node to reach."""
    folder = model_folder(tmp_path / uuid.uuid4().hex[:6], "t1", PERIOD_MS)
    xapp = await start_xapp(layer, [f"127.0.0.1:{free_port()}"], folder, PERIOD_MS, reconnect_min_s=1.0)
    await xapp.service.scoring.wait()
    return xapp


def held(xapp: Running, instance_id: str = INSTANCE) -> dict[str, Any] | None:
    """The body the engine's view holds."""
    record = xapp.service.store.find(POLICY_TYPE_ID, instance_id)
    return None if record is None else record.body


async def enforced(xapp: Running) -> bool:
    return '"ENFORCED"' in await status_of(xapp, POLICY)


def problems(xapp: Running) -> Counter[str]:
    metric = xapp.service.metrics.policy_change_problems
    return Counter({reason: int(metric.labels(reason)._value.get()) for reason in PROBLEMS})


async def test_a_policy_put_over_http_reaches_the_engine_through_the_change_stream(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    xapp = await start(RedisDataLayer(redis_url, prefix=prefix), tmp_path)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        assert (await xapp.http("PUT", POLICY, BODY)).status_code == 202
        newest = await raw.xrevrange(sdl_keys(prefix).policy_changes, count=1)
        fields = newest[0][1] if newest else None
        assert fields is not None
        assert decode_policy_change(fields[FIELD_DATA.encode()]) == PolicyChange("put", POLICY_TYPE_ID, INSTANCE)
        await until(lambda: held(xapp) == BODY, "the engine's view holds the policy")
        await until(lambda: enforced(xapp), "the engine enforces it")
        assert xapp.service.metrics.policy_changes._value.get() >= 1
        exported = (await xapp.http("GET", "/metrics")).text
        assert 'ranomaly_xapp_a1_change_problems_total{reason="entry_corrupt"} 0.0' in exported
        assert (await xapp.http("DELETE", POLICY)).status_code == 202
        await until(lambda: held(xapp) is None, "the engine's view drops it")
        assert sum(problems(xapp).values()) == 0
    finally:
        await raw.aclose()
        await xapp.stop()


async def test_two_xapps_on_one_redis_both_apply_a_change_made_through_one(redis_url: str, tmp_path: Path) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    first = await start(RedisDataLayer(redis_url, prefix=prefix), tmp_path)
    second = await start(RedisDataLayer(redis_url, prefix=prefix), tmp_path)
    try:
        assert (await first.http("PUT", POLICY, BODY)).status_code == 202
        for xapp in (first, second):
            await until(lambda: held(xapp) == BODY, "both engines' views hold it")  # noqa: B023
            await until(lambda: enforced(xapp), "both engines enforce it")  # noqa: B023

        async def served_by_second() -> bool:  # the other replica's A1 server follows the stream too
            return (await second.http("GET", POLICY)).json() == BODY

        await until(served_by_second, "the second xApp's A1 server serves it")
        assert (await second.http("PUT", POLICY, REPLACED)).status_code == 202
        await until(lambda: held(first) == REPLACED, "a change through the second reaches the first")
    finally:
        await first.stop()
        await second.stop()


async def test_corrupt_change_entries_and_records_are_counted_and_nothing_accepted_is_lost(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    keys = sdl_keys(prefix)
    xapp = await start(RedisDataLayer(redis_url, prefix=prefix), tmp_path)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.xadd(keys.policy_changes, {FIELD_DATA: b"{not json"})
        assert (await xapp.http("PUT", POLICY, BODY)).status_code == 202
        await until(lambda: problems(xapp)["entry_corrupt"] == 1, "the corrupt entry counted")
        await until(lambda: held(xapp) == BODY, "the accepted change applied all the same")
        # a record garbled behind the xApp's back: the accepted version is kept
        await raw.hset(keys.policy_instances, policy_instance_field(POLICY_TYPE_ID, INSTANCE), b"garbage")
        await raw.xadd(keys.policy_changes, {FIELD_DATA: b'{"op": "put", "type_id": 20100, "instance_id": "ops-1"}'})
        await until(lambda: problems(xapp)["record_corrupt"] == 1, "the corrupt record counted")
        assert held(xapp) == BODY
        assert problems(xapp)["entry_corrupt"] == 1
    finally:
        await raw.aclose()
        await xapp.stop()


async def test_the_http_server_answers_while_the_scoring_loop_is_blocked(tmp_path: Path) -> None:
    xapp = await start(MemoryDataLayer(), tmp_path)
    try:

        async def scoring_in_health() -> bool:
            return (await xapp.http("GET", "/healthz")).json()["model_version"] == "t1"

        await until(scoring_in_health, "a health snapshot taken while scoring")
        base = f"http://127.0.0.1:{xapp.service.http_port}"
        # the scoring loop (this test's loop) is blocked for as long as this synchronous block runs
        with httpx.Client(base_url=base, timeout=30, headers=xapp.headers()) as client:
            put = client.put(POLICY, json=BODY)
            health = client.get("/healthz")
            got = client.get(POLICY)
            status = client.get(POLICY + "/status")
            view_meanwhile = held(xapp)
        assert (put.status_code, health.status_code, got.json()) == (202, 200, BODY)
        assert health.json()["model_version"] == "t1"  # the scoring loop's last snapshot
        assert status.json() == {
            "enforceStatus": "NOT_ENFORCED",
            "enforceReason": "OTHER_REASON",
            "warnings": ["scope.cells: cells this xApp does not know now (applied once they appear): 'c1'"],
        }  # no node has reported c1
        assert view_meanwhile is None, "the engine's view changes only on the scoring loop"
        await until(lambda: held(xapp) == BODY, "the change applied once the loop runs again")
        await until(lambda: enforced(xapp), "and enforced")
    finally:
        await xapp.stop()


async def test_a_reader_behind_a_trimmed_stream_rereads_every_record() -> None:
    data = MemoryPolicies(policy_changes_max=2)
    writer, view = PolicyStore(data), PolicyStore(data)
    await writer.load()
    await view.load()
    counted: Counter[str] = Counter()
    follower = PolicyFollower(view, data, lambda reason, count: counted.update({reason: count}))
    for n in range(5):
        await writer.put_instance(POLICY_TYPE_ID, f"i{n}", BODY)
    await follower.poll()
    assert counted == Counter({"entries_trimmed": 1})
    assert sorted(view.instances(POLICY_TYPE_ID)) == [f"i{n}" for n in range(5)]
    await writer.delete_instance(POLICY_TYPE_ID, "i0")
    assert await follower.poll() == 1
    assert sorted(view.instances(POLICY_TYPE_ID)) == [f"i{n}" for n in range(1, 5)]
    assert counted == Counter({"entries_trimmed": 1})


async def test_a1_requests_take_turns_and_health_skips_their_queue() -> None:
    inside = most = 0
    release = asyncio.Event()

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        nonlocal inside, most
        if scope["path"].startswith("/A1-P/"):
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=CpuShare(app, share=0.5))
    async with httpx.AsyncClient(transport=transport, base_url="http://xapp") as client:
        puts = [asyncio.create_task(client.put(POLICY, json=BODY)) for _ in range(5)]
        await until(lambda: inside == 1, "an A1 request holding the turn")
        assert (await client.get("/healthz")).status_code == 200, "health does not wait behind A1"
        release.set()
        assert [response.status_code for response in await asyncio.gather(*puts)] == [200] * 5
    assert most == 1
