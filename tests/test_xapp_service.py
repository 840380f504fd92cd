"""The xApp as a whole: simulator -> xApp -> Redis on loopback, A1 over HTTP, outages, swaps, no torch."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from models.artifact import write_artifact
from models.trivial import trivial_artifact
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.sdl import CellStatus
from tests.auth_helpers import app_key
from tests.signed import record, signed
from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import DEFAULT_INDICATIONS_PER_MESSAGE, XappSettings

FAST_MS = 100  # real-time tests run 100 ms periods
MEASUREMENTS = World(WorldConfig(seed=1, n_cells=1)).measurements


def model_folder(root: Path, version: str, period_ms: int, warmup: int = 3) -> Path:
    """A trivial model artifact folder for the simulator's measurements."""
    fields, onnx = trivial_artifact([m.name for m in MEASUREMENTS], period_ms / 1000, version=version,
                                    threshold=1e9, warmup_periods=warmup)  # fmt: skip
    write_artifact(root / version, onnx, fields)
    return signed(root / version)


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 20.0, what: str = "") -> None:
    """Wait until condition() holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.05)


async def _contains(text: Awaitable[str], part: str) -> bool:
    return part in await text


async def status_of(xapp: Running, instance_path: str) -> str:
    """The A1 status body of an instance, as text."""
    return (await xapp.http("GET", instance_path + "/status")).text


class Running:
    """An xApp service running in this event loop."""

    def __init__(self, service: XappService) -> None:
        self.service = service
        self.task = asyncio.create_task(service.run())

    def headers(self) -> dict[str, str]:
        """The API key the xApp generated at start."""
        return app_key(self.service.settings)

    async def http(self, method: str, path: str, body: object = None) -> httpx.Response:
        await self.service.started.wait()
        base = f"http://127.0.0.1:{self.service.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=5, headers=self.headers()) as client:
            return await client.request(method, path, json=body)

    async def stop(self) -> None:
        self.service.stop()
        await asyncio.wait_for(self.task, 20)


async def start_xapp(datalayer: object, targets: list[str], model: Path, period_ms: int, **more: object) -> Running:
    fields: dict[str, object] = {
        "e2_targets": targets, "http_host": "127.0.0.1", "a1_port": 0, "period_ms": period_ms,
        "seed_model_dir": model, "model_poll_s": 0.2, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
    }  # fmt: skip
    settings = XappSettings(**(fields | more))  # type: ignore[arg-type]
    return Running(XappService(settings, datalayer))  # type: ignore[arg-type]


@pytest.fixture
def prefix() -> str:
    """A key namespace of this test in the shared Redis."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def sim() -> AsyncIterator[Callable[..., Awaitable[tuple[SimServer, str]]]]:
    servers: list[SimServer] = []

    async def start(options: StreamOptions, port: int = 0, cells: int = 9) -> tuple[SimServer, str]:
        server = SimServer(World(WorldConfig(seed=5, n_cells=cells)), options)
        bound = await server.start("127.0.0.1", port)
        servers.append(server)
        return server, f"127.0.0.1:{bound}"

    yield start
    for server in servers:
        await server.stop(0)


async def cell_periods(reader: RedisDataLayer) -> Counter[tuple[str, int]]:
    """How often each (cell, period start) has a verdict record in Redis."""
    seen: Counter[tuple[str, int]] = Counter()
    for _, batch in await reader.read_verdicts():
        seen.update(zip(batch.cell_ids, batch.period_start_ms.tolist(), strict=True))
    return seen


@pytest.mark.parametrize("periods", [40, 400])  # 400: a message holds more periods than one part (messageparts)
async def test_every_cell_period_the_simulator_sends_is_scored_exactly_once_in_redis(
    redis_url: str, prefix: str, sim: Callable[..., Awaitable[tuple[SimServer, str]]], tmp_path: Path, periods: int
) -> None:
    server, target = await sim(StreamOptions(realtime=False, periods=periods), cells=9)
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = await start_xapp(layer, [target], model_folder(tmp_path, "t1", 60_000), 60_000, max_lateness_periods=0)
    engine_ready = xapp.service.scoring
    await engine_ready.wait()
    engine = xapp.service.engine
    assert engine is not None
    await until(lambda: engine.scored_rows >= 9 * periods, what="every row scored")
    await xapp.stop()
    reader = RedisDataLayer(redis_url, prefix=prefix)
    await reader.start()
    seen = await cell_periods(reader)
    await reader.close()
    world = World(WorldConfig(seed=5, n_cells=9))
    first = world.stream_start(60_000, 0, realtime=False).first_period * 60_000
    expected = {(cell, first + p * 60_000) for cell in world.cell_ids for p in range(periods)}
    assert set(seen) == expected, "a verdict for every cell-period sent, and for nothing else"
    assert max(seen.values()) == 1, "none scored twice (the resubscribed stream's repeats are dropped as late)"
    assert engine.metrics.sequence_gaps._value.get() == 0


async def test_the_xapp_asks_for_messages_of_one_scoring_batch(
    sim: Callable[..., Awaitable[tuple[SimServer, str]]], tmp_path: Path
) -> None:
    server, target = await sim(StreamOptions(realtime=False), cells=9)  # streams until the xApp leaves
    xapp = await start_xapp(MemoryDataLayer(), [target], model_folder(tmp_path, "t1", 60_000), 60_000,
                            batch_max_cells=4)  # fmt: skip
    await xapp.service.scoring.wait()
    engine = xapp.service.engine
    assert engine is not None
    await until(lambda: engine.scored_rows >= 9 * 5, what="five periods scored")
    asked = [(plan.max_per_message, plan.max_cells_per_message) for plan in server.e2.active.values()]
    await xapp.stop()
    assert asked == [(DEFAULT_INDICATIONS_PER_MESSAGE, 4)]


async def test_a1_policy_over_http_changes_verdicts_and_reports_enforced(
    redis_url: str, prefix: str, sim: Callable[..., Awaitable[tuple[SimServer, str]]], tmp_path: Path
) -> None:
    _, target = await sim(StreamOptions(realtime=True))
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = await start_xapp(layer, [target], model_folder(tmp_path, "t1", FAST_MS), FAST_MS)
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        await until(lambda: engine.scored_rows > 40, what="scoring")
        node = engine.table.node_ids[engine.table.active_slots()[0]]
        path = "/A1-P/v2/policytypes/20100/policies/maint"
        bad = await xapp.http("PUT", path, {"enabled": "no"})
        assert bad.status_code == 400 and "enabled" in bad.json()["detail"]
        assert (await xapp.http("PUT", path, {"enabled": False, "scope": {"nodes": [node]}})).status_code == 202
        mark = engine.scored_rows
        await until(lambda: engine.scored_rows > mark + 40, what="more scoring")
        status = await xapp.http("GET", path + "/status")
        assert status.json()["enforceStatus"] == "ENFORCED"
        assert "warnings" not in status.json(), "the node is known"
        mark = engine.scored_rows
        await until(lambda: engine.scored_rows > mark + 2 * 9, what="two periods scored under the policy")
        reader = RedisDataLayer(redis_url, prefix=prefix)
        await reader.start()
        await layer.flush()
        last = {}
        for _, batch in await reader.read_verdicts():
            for cell, node_id, state in zip(batch.cell_ids, batch.node_ids, batch.statuses.tolist(), strict=True):
                last[cell] = (node_id, state)
        await reader.close()
        assert {s for n, s in last.values() if n == node} == {CellStatus.SILENCED}
        assert CellStatus.SILENCED not in {s for n, s in last.values() if n != node}
        # read before the next policy: it names the node too, and enabled, it would lift the silence (narrowest wins)
        ahead = "/A1-P/v2/policytypes/20100/policies/ahead"  # names a cell and a measurement the xApp lacks
        body = {"enabled": True, "scope": {"nodes": [node], "cells": ["cell-to-come"]},
                "threshold": {"per_measurement": {"measurement-to-come": 2.0}}}  # fmt: skip
        assert (await xapp.http("PUT", ahead, body)).status_code == 202
        assert (await xapp.http("GET", ahead + "/status")).json()["warnings"] == [
            "scope.cells: cells this xApp does not know now (applied once they appear): 'cell-to-come'",
            "threshold.per_measurement: measurements this xApp does not know now (applied once they appear): "
            "'measurement-to-come'",
        ]
    finally:
        await xapp.stop()
    restarted = await start_xapp(RedisDataLayer(redis_url, prefix=prefix), [target],
                                 model_folder(tmp_path, "t1", FAST_MS), FAST_MS)  # fmt: skip
    try:
        got = await restarted.http("GET", path)
        assert got.status_code == 200 and got.json()["enabled"] is False, "the policy survived the restart"
    finally:
        await restarted.stop()


async def test_redis_stopped_and_restarted_mid_stream(
    sim: Callable[..., Awaitable[tuple[SimServer, str]]], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        _, target = await sim(StreamOptions(realtime=True))
        layer = RedisDataLayer(redis.url, retry_max_s=0.2)
        xapp = await start_xapp(layer, [target], model_folder(tmp_path, "t1", FAST_MS), FAST_MS)
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        await until(lambda: engine.scored_rows > 30, what="scoring")
        redis.stop()
        mark = engine.scored_rows
        await until(lambda: engine.scored_rows > mark + 60, what="scoring during the outage")
        health = (await xapp.http("GET", "/healthz")).json()
        assert health["status"] == "degraded" and health["datalayer"]["connected"] is False
        outage_first = int(engine.intake.watermark_ms)
        redis.start()
        await until(lambda: not layer.health().degraded, what="recovery")
        await xapp.stop()
        assert layer.health().dropped == {} or sum(layer.health().dropped.values()) == 0
        reader = RedisDataLayer(redis.url)
        await reader.start()
        seen = await cell_periods(reader)
        await reader.close()
        cells = {c for c, _ in seen}
        for cell in cells:
            periods = sorted(p for c, p in seen if c == cell)
            assert periods[0] <= outage_first, "what was buffered during the outage reached Redis"
            assert periods == list(range(periods[0], periods[-1] + FAST_MS, FAST_MS)), f"{cell}: no hole"
        assert max(seen.values()) == 1
    finally:
        redis.stop()


async def test_model_swap_mid_stream_and_a_corrupt_version_is_refused(
    redis_url: str, prefix: str, sim: Callable[..., Awaitable[tuple[SimServer, str]]], tmp_path: Path
) -> None:
    _, target = await sim(StreamOptions(realtime=True))
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = await start_xapp(layer, [target], model_folder(tmp_path, "t1", FAST_MS), FAST_MS, model_shadow_periods=2)
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        await until(lambda: engine.scored_rows > 30, what="scoring")
        v2 = model_folder(tmp_path, "t2", FAST_MS)
        v2_manifest, v2_onnx = (v2 / "manifest.json").read_bytes(), (v2 / "model.onnx").read_bytes()
        await layer.publish_model("t2", v2_manifest, v2_onnx, signature=record("t2", v2_manifest, v2_onnx, 1))
        model_path = "/A1-P/v2/policytypes/20100/policies/ranomaly-model"
        assert (await xapp.http("PUT", model_path, {"enabled": True, "model_version": "t2"})).status_code == 202
        await until(lambda: engine.model.version == "t2", what="the swap")
        # the engine learns of the policy from the change stream (within a tick), maybe after the swap to t2
        await until(lambda: _contains(status_of(xapp, model_path), '"ENFORCED"'), what="the policy enforced")
        onnx = (v2 / "model.onnx").read_bytes()
        manifest = json.loads((v2 / "manifest.json").read_text())
        manifest["version"] = "t3"
        t3_manifest, t3_onnx = json.dumps(manifest).encode(), onnx[:-7] + b"corrupt"  # signed as it is
        await layer.publish_model("t3", t3_manifest, t3_onnx, signature=record("t3", t3_manifest, t3_onnx, 2))
        assert (await xapp.http("PUT", model_path, {"enabled": True, "model_version": "t3"})).status_code == 202
        await until(lambda: "t3" in xapp.service.health()["refused_models"], what="the refusal")
        assert "sha256 mismatch" in xapp.service.health()["refused_models"]["t3"]
        status = (await xapp.http("GET", model_path + "/status")).json()
        assert status["enforceStatus"] == "NOT_ENFORCED"
        mark = engine.scored_rows
        await until(lambda: engine.scored_rows > mark + 20, what="scoring goes on")
        assert engine.model.version == "t2"
    finally:
        await xapp.stop()
    reader = RedisDataLayer(redis_url, prefix=prefix)
    await reader.start()
    versions: dict[str, list[str]] = {}
    seen: Counter[tuple[str, int]] = Counter()
    for _, batch in await reader.read_verdicts():
        for cell, period in zip(batch.cell_ids, batch.period_start_ms.tolist(), strict=True):
            versions.setdefault(cell, []).append(batch.model_version)
            seen[(cell, period)] += 1
    await reader.close()
    assert max(seen.values()) == 1, "no cell-period scored twice across the swap"
    for cell, order in versions.items():
        switch = order.index("t2")
        assert set(order[:switch]) == {"t1"} and set(order[switch:]) == {"t2"}, cell


async def test_reconnects_after_the_e2_node_restarts_and_keeps_cell_state(
    sim: Callable[..., Awaitable[tuple[SimServer, str]]], tmp_path: Path
) -> None:
    from xapp.datalayer.memory import MemoryDataLayer

    server, target = await sim(StreamOptions(realtime=True))
    port = int(target.rsplit(":", 1)[1])
    layer = MemoryDataLayer()
    xapp = await start_xapp(layer, [target], model_folder(tmp_path, "t1", FAST_MS, warmup=5), FAST_MS)
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        await until(lambda: engine.scored_rows > 9 * 8, what="warm cells")
        await server.stop(0)
        await asyncio.sleep(0.3)
        await sim(StreamOptions(realtime=True), port=port)
        mark = engine.scored_rows
        await until(lambda: engine.scored_rows > mark + 30, what="scoring after the reconnection")
        assert engine.metrics.e2_reconnects._value.get() >= 2
        await layer.flush()
        after = [b for _, b in await layer.read_verdicts()][-2:]
        statuses = {s for b in after for s in b.statuses.tolist()}
        assert CellStatus.WARMING_UP not in statuses, "cells kept their state across the reconnection"
    finally:
        await xapp.stop()


async def test_a1_serves_before_e2_or_a_model_is_there(tmp_path: Path) -> None:
    from xapp.datalayer.memory import MemoryDataLayer

    settings = XappSettings(e2_targets=[f"127.0.0.1:{free_port()}"], http_host="127.0.0.1", a1_port=0,
                            model_poll_s=0.1)  # fmt: skip
    xapp = Running(XappService(settings, MemoryDataLayer()))
    try:
        assert (await xapp.http("GET", "/A1-P/v2/healthcheck")).status_code == 200
        assert (await xapp.http("GET", "/A1-P/v2/policytypes")).json() == [20100]
        ready = await xapp.http("GET", "/readyz")
        assert ready.status_code == 503 and "no promoted version" in ready.json()["model_problem"]
        assert b"ranomaly_xapp_indications_total" in (await xapp.http("GET", "/metrics")).content
    finally:
        await xapp.stop()


def test_the_xapp_process_never_imports_torch_transformers_or_sklearn(tmp_path: Path, repo_root: Path) -> None:
    model = model_folder(tmp_path, "t1", 60_000)
    script = f"""
import asyncio, json, sys
from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.settings import DEFAULT_INDICATIONS_PER_MESSAGE, XappSettings

async def main():
    server = SimServer(World(WorldConfig(seed=5, n_cells=6)), StreamOptions(realtime=False, periods=30))
    port = await server.start("127.0.0.1", 0)
    service = XappService(XappSettings(e2_targets=[f"127.0.0.1:{{port}}"], http_host="127.0.0.1", a1_port=0,
                                       seed_model_dir={str(model)!r}), MemoryDataLayer())
    task = asyncio.create_task(service.run())
    await service.scoring.wait()
    while service.engine.scored_rows < 6 * 30:
        await asyncio.sleep(0.05)
    service.stop()
    await task
    await server.stop(0)
    banned = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "sklearn"))
    print(json.dumps({{"scored": service.engine.scored_rows, "banned": banned}}))

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=repo_root)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scored"] == 180
    assert result["banned"] == []
