"""Health that tells the truth, and models that recover: the xApp service with a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from models.artifact import write_artifact
from models.trivial import trivial_artifact
from ranomaly.redis_process import free_port
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from tests.signed import record, signed
from tests.test_xapp_service import Running as RunningXapp
from tests.waiting import until
from tests.xapp_helpers import MEASUREMENTS, accepted
from xapp.app import XappService
from xapp.datalayer.base import DataLayer
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings

PERIOD_MS = 100
T0 = 1_767_571_200_000
MODEL_POLICY = "/A1-P/v2/policytypes/20100/policies/ranomaly-model"


def model_folder(root: Path, version: str) -> Path:
    fields, onnx = trivial_artifact(MEASUREMENTS, PERIOD_MS / 1000, version=version, warmup_periods=1)
    write_artifact(root / version, onnx, fields)
    signed(root / version)
    return root / version


class Running(RunningXapp):
    """An xApp service in this event loop, with no E2 node to reach (indications are fed to its engine)."""

    def __init__(self, datalayer: DataLayer, **fields: object) -> None:
        base: dict[str, object] = {
            "e2_targets": [f"127.0.0.1:{free_port()}"], "http_host": "127.0.0.1", "a1_port": 0,
            "period_ms": PERIOD_MS, "model_poll_s": 0.1, "reconnect_min_s": 1.0, "model_shadow_periods": 0,
        }  # fmt: skip
        super().__init__(XappService(XappSettings(**(base | fields)), datalayer))  # type: ignore[arg-type]

    async def stop(self) -> None:
        await super().stop()
        assert not self.task.cancelled() and self.task.exception() is None


@pytest.fixture
async def redis_layer(redis_url: str) -> AsyncIterator[RedisDataLayer]:
    layer = RedisDataLayer(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield layer
    await layer.close()


def indication(node: str, period: int, cells: list[str]) -> pb.IndicationBatch:
    header = pb.IndicationHeader(node_id=node, collection_start_ms=T0 + period * PERIOD_MS,
                                 granularity_period_ms=PERIOD_MS, sequence_number=period)  # fmt: skip
    return pb.IndicationBatch(indications=[pb.Indication(header=header, cell_ids=cells, values=[1.0] * 3 * len(cells))])


async def test_readyz_fails_and_healthz_says_why_when_indications_arrive_but_nothing_is_scored(
    tmp_path: Path,
) -> None:
    xapp = Running(MemoryDataLayer(), seed_model_dir=model_folder(tmp_path, "t1"), stall_periods=2)
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None and (await xapp.http("GET", "/readyz")).status_code == 200
        for period in range(8):  # a node no subscription covers: every row refused, nothing scored
            engine.on_batch(indication("stranger", period, ["x1"]))
            await asyncio.sleep(PERIOD_MS / 1000)
        ready = await xapp.http("GET", "/readyz")
        assert ready.status_code == 503
        assert "nothing was scored for 2 periods" in " ".join(ready.json()["problems"])
        assert (await xapp.http("GET", "/healthz")).json()["status"] == "degraded"
        opened = accepted({"n1": ["c1"]})
        opened.reporting_period_ms = PERIOD_MS
        engine.on_accepted(opened)
        engine.on_batch(indication("n1", 8, ["c1"]))
        await until(lambda: engine.scored_rows == 1, "the row scored")
        assert (await xapp.http("GET", "/readyz")).status_code == 200
    finally:
        await xapp.stop()


async def test_a_model_named_before_it_is_published_is_loaded_once_it_appears_or_changes(
    redis_layer: RedisDataLayer, tmp_path: Path
) -> None:
    xapp = Running(redis_layer, seed_model_dir=model_folder(tmp_path, "t1"))
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        assert (await xapp.http("PUT", MODEL_POLICY, {"enabled": True, "model_version": "t2"})).status_code == 202
        await until(lambda: "t2" in xapp.service.health()["refused_models"], "t2 refused")
        ready = await xapp.http("GET", "/readyz")
        assert ready.status_code == 503
        assert "model t2 named by policy cannot be loaded: model t2: not in the registry" in ready.json()["problems"]
        good = model_folder(tmp_path, "t2")
        manifest, onnx = (good / "manifest.json").read_bytes(), (good / "model.onnx").read_bytes()
        corrupt = onnx[:-7] + b"corrupt"  # signed as it is: the manifest's sha256 refuses it
        await redis_layer.publish_model("t2", manifest, corrupt, signature=record("t2", manifest, corrupt, 1))
        await until(lambda: "sha256" in xapp.service.health()["refused_models"].get("t2", ""), "t2 retried, refused")
        await redis_layer.publish_model("t2", manifest, onnx, signature=record("t2", manifest, onnx, 2))
        await until(lambda: engine.model.version == "t2", "t2 retried once replaced, and swapped in")
        assert xapp.service.health()["refused_models"] == {}
        assert int(xapp.service.metrics.model_refused._value.get()) == 2
        assert (await xapp.http("GET", "/readyz")).status_code == 200
        assert (await xapp.http("GET", MODEL_POLICY + "/status")).json()["enforceStatus"] == "ENFORCED"
    finally:
        await xapp.stop()


async def test_a_broken_seed_model_leaves_the_xapp_up_unready_and_serving_a1(
    redis_layer: RedisDataLayer, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "manifest.json").write_text("{not json")
    xapp = Running(redis_layer, seed_model_dir=seed)
    try:
        await until(lambda: "seed model" in (xapp.service.model_problem or ""), "the seed refused")
        ready = await xapp.http("GET", "/readyz")
        problems = " ".join(ready.json()["problems"])
        assert ready.status_code == 503 and "seed model seed" in problems, problems
        assert str(tmp_path) not in ready.text, "the body names the folder, not the server path"
        assert (await xapp.http("GET", "/A1-P/v2/policytypes")).json() == [20100]
        assert not xapp.task.done(), "the xApp is still up"
        good = model_folder(tmp_path, "t1")
        for name in ("manifest.json", "model.onnx", "signature.json"):
            (seed / name).write_bytes((good / name).read_bytes())
        await asyncio.wait_for(xapp.service.scoring.wait(), 15)
        assert json.loads((await xapp.http("GET", "/readyz")).content)["model_version"] == "t1"
    finally:
        await xapp.stop()


async def test_an_accelerated_stream_that_ends_is_resumed_where_it_stopped_never_replayed(
    redis_layer: RedisDataLayer, tmp_path: Path
) -> None:
    world = World(WorldConfig(seed=5, n_cells=9))
    server = SimServer(world, StreamOptions(realtime=False, periods=30))  # every stream ends after 30 periods
    port = await server.start("127.0.0.1", 0)
    period_ms = 60_000
    fields, onnx = trivial_artifact([m.name for m in world.measurements], period_ms / 1000, version="w1")
    write_artifact(tmp_path / "w1", onnx, fields)
    signed(tmp_path / "w1")
    xapp = Running(redis_layer, e2_targets=[f"127.0.0.1:{port}"], period_ms=period_ms, seed_model_dir=tmp_path / "w1",
                   reconnect_min_s=0.05, reconnect_max_s=0.1)  # fmt: skip
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        await until(lambda: engine.scored_rows >= 3 * 9 * 30, "three streams scored")
    finally:
        await xapp.stop()
        await server.stop(0)
    metrics = xapp.service.metrics
    assert metrics.e2_reconnects._value.get() >= 3, "the stream ended and was resumed"
    assert metrics.late_rows._value.get() == 0 and metrics.sequence_gaps._value.get() == 0, "nothing sent twice"
    forwarded: Counter[tuple[str, int]] = Counter()
    for _, entry in await redis_layer.read_kpm():
        for ind in entry.indications:
            forwarded.update((cell, ind.header.collection_start_ms) for cell in ind.cell_ids)
    assert set(forwarded.values()) == {1}, "each cell-period forwarded once"
    first_ms = world.stream_start(period_ms, 0, realtime=False).first_period * period_ms
    for cell in world.cell_ids:
        starts = sorted(start for c, start in forwarded if c == cell)
        assert starts == list(range(first_ms, starts[-1] + period_ms, period_ms)), f"{cell}: from the start, no hole"
    assert len(forwarded) == engine.scored_rows, "what was scored is what was forwarded"
