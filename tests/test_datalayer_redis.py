"""The Redis data layer against a real redis-server of its own: outages, restarts, and what goes on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts import sdl
from tests.test_datalayer_contract import indication
from tests.test_sdl_encoding import MEASUREMENTS, assert_same_batch, make_batch, make_incident
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.bounds import CALIBRATE_MIN_ENTRIES
from xapp.datalayer.cellstates import CELL_STATE_PART
from xapp.datalayer.redis import RedisDataLayer


def fast_layer(url: str, **bounds: Any) -> RedisDataLayer:
    """A Redis data layer that notices an outage and retries within tens of milliseconds."""
    return RedisDataLayer(url, connect_timeout_s=0.2, timeout_s=1.0, retry_initial_s=0.01, retry_max_s=0.05, **bounds)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, not started yet."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def until(condition: object, timeout_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_outage_buffers_up_to_the_bound_and_delivers_in_order_after_restart(server: RedisServer) -> None:
    server.start()
    layer = fast_layer(server.url, verdict_buffer=20, incident_buffer=3, kpm_buffer=4)
    await layer.start()
    layer.write_verdicts(make_batch(2, seed=100))
    assert await layer.flush(5)
    in_flight = make_batch(2, seed=200)
    layer.write_verdicts(in_flight)  # buffered, not yet written when Redis goes

    server.stop()  # no persistence: what Redis held goes with it; what is buffered must not
    batches = [make_batch(2, seed=i) for i in range(12)]  # 2 + 24 cell-periods for a bound of 20
    events = [make_incident(incident_id=f"inc-{i}") for i in range(5)]
    forwards = [[indication(node, sequence) for node in range(2)] for sequence in range(3)]
    for i, batch in enumerate(batches):
        layer.write_verdicts(batch)
        if i < len(events):
            layer.write_incident(events[i])
        if i < len(forwards):
            layer.forward_kpm(MEASUREMENTS, forwards[i])
        await asyncio.sleep(0.005)  # the writer keeps trying meanwhile
    await until(lambda: not layer.health().connected)
    health = layer.health()
    assert health.degraded and health.buffered == 10 + 3 + 2
    assert health.dropped == {"verdicts": 6, "incidents": 2, "kpm": 2}
    with pytest.raises(DataLayerUnavailable, match=f"Redis at redis://127.0.0.1:{server.port}/0: HGETALL"):
        await layer.policy_types()

    server.start()  # same port
    assert await layer.flush(5)
    for (_, got), sent in zip(await layer.read_verdicts(), [in_flight, *batches[:9]], strict=True):
        assert_same_batch(got, sent)
    assert [event for _, event in await layer.read_incidents()] == events[:3]
    kpm = [ind for _, forward in await layer.read_kpm() for ind in forward.indications]
    assert kpm == forwards[0] + forwards[1]
    health = layer.health()
    assert (health.connected, health.degraded, health.buffered) == (True, False, 0)
    assert health.dropped == {"verdicts": 6, "incidents": 2, "kpm": 2} and health.errors > 0
    await layer.close()


async def test_start_with_redis_down_then_writes_arrive_when_it_comes_up(server: RedisServer) -> None:
    layer = fast_layer(server.url)
    await layer.start()  # must not fail
    assert not layer.health().connected and layer.health().degraded
    layer.write_incident(make_incident())
    server.start()
    assert await layer.flush(5)
    assert [event for _, event in await layer.read_incidents()] == [make_incident()]
    assert not layer.health().degraded
    await layer.close()


async def test_calls_to_an_unreachable_redis_name_the_url_but_not_the_password() -> None:
    port = free_port()
    layer = fast_layer(f"redis://:hunter2@127.0.0.1:{port}/0")
    for call in (layer.promoted_models(), layer.put_policy_instance(20100, "a", b"{}"), layer.get_model("v1")):
        with pytest.raises(DataLayerUnavailable, match=rf"Redis at redis://:\*\*\*@127.0.0.1:{port}/0: .+ failed") as e:
            await call
        assert "hunter2" not in str(e.value)
    assert layer.health().errors == 3
    await layer.close()


async def test_one_drain_is_one_xadd_per_write_and_one_hset_of_documented_payloads(server: RedisServer) -> None:
    server.start()
    layer = fast_layer(server.url)
    await layer.start()
    client: Any = aioredis.Redis.from_url(server.url)  # raw replies: bytes
    await client.config_resetstat()
    for seed in range(3):
        layer.write_verdicts(make_batch(4, seed=seed))  # the same 4 cells each time: one state each
    layer.write_incident(make_incident())
    layer.write_incident(make_incident("close", closed_ms=1, reason="recovered"))
    layer.forward_kpm(MEASUREMENTS, [indication(0, 1)])
    layer.forward_kpm(MEASUREMENTS, [indication(1, 1)])
    assert await layer.flush(5)
    stats = await client.info("commandstats")
    assert stats["cmdstat_xadd"]["calls"] == 3 + 2 + 1
    assert stats["cmdstat_hset"]["calls"] == 1

    keys = sdl.sdl_keys()
    (_, fields), *_ = await client.xrange(keys.verdicts, count=1)
    assert_same_batch(sdl.decode_verdicts(fields[sdl.FIELD_DATA.encode()]), make_batch(4, seed=0))
    (_, fields), *_ = await client.xrange(keys.incidents, count=1)
    assert json.loads(fields[b"data"])["event"] == "open"
    (_, fields), *_ = await client.xrange(keys.kpm, count=1)
    assert sdl.decode_kpm(fields[b"data"]).indications == [indication(0, 1), indication(1, 1)]
    state = json.loads(await client.hget(keys.cells, "gnb-000-c1"))
    assert state["score"] == pytest.approx(float(make_batch(4, seed=2).scores[1]), rel=1e-6)
    assert state["incident_id"] is None  # the incident was closed in the same drain
    await client.aclose()
    await layer.close()


async def test_a_round_of_cell_states_goes_out_a_part_at_a_time_and_finishes_without_more_writes(
    server: RedisServer,
) -> None:
    server.start()
    layer = fast_layer(server.url, cell_state_interval_s=0.0)
    await layer.start()
    client: Any = aioredis.Redis.from_url(server.url)
    await client.config_resetstat()
    keys = sdl.sdl_keys()
    cells = 2 * CELL_STATE_PART + 100
    first = make_batch(cells, seed=1)
    layer.write_verdicts(first)  # one write, no flush: the writer alone must finish the round
    await until(lambda: layer.health().buffered == 0)
    deadline = asyncio.get_running_loop().time() + 30
    while await client.hlen(keys.cells) < cells:
        assert asyncio.get_running_loop().time() < deadline, "the round of cell states did not finish in 30 s"
        await asyncio.sleep(0.01)
    stats = await client.info("commandstats")
    assert stats["cmdstat_hset"]["calls"] == 3, "three parts, none of more than CELL_STATE_PART cells"
    newer = dataclasses.replace(make_batch(cells, seed=2), period_start_ms=first.period_start_ms + 86_400_000)
    layer.write_verdicts(newer)
    assert await layer.flush(5)
    for row in (0, CELL_STATE_PART, cells - 1):
        state = sdl.decode_cell_state(await client.hget(keys.cells, newer.cell_ids[row]))
        assert state.period_start_ms == newer.period_start_ms[row], "each cell's newest state"
    await client.aclose()
    await layer.close()


async def test_the_per_entry_overhead_is_what_memory_usage_shows_once_the_stream_holds_enough(
    server: RedisServer,
) -> None:
    server.start()
    payload = sdl.encode_incident(make_incident())
    layer = fast_layer(server.url, incident_stream_bytes=1 << 20, stream_sample_s=0.0)
    await layer.start()
    for _ in range(150):
        layer.write_incident(make_incident())
    assert await layer.flush(5)  # one drain: written, trimmed and sampled in one round trip
    await layer.close()
    stream = layer.health().streams["incidents"]
    assert stream.entries >= CALIBRATE_MIN_ENTRIES and stream.memory_bytes > 0
    assert stream.entry_bytes == pytest.approx(stream.memory_bytes / stream.entries), "measured, not the prior"
    assert stream.entry_bytes > len(payload) and stream.entry_limit == int((1 << 20) // stream.entry_bytes)
