"""A frozen data layer delays only model checks: the xApp service on a real redis-server stopped with SIGSTOP."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ranomaly.redis_process import RedisServer
from tests.test_xapp_hardening_service import PERIOD_MS, Running, indication, model_folder
from tests.waiting import until
from tests.xapp_helpers import accepted
from xapp.cells import CellTable
from xapp.datalayer.redis import RedisDataLayer
from xapp.engine import Engine

NODES = {"n1": ["a1", "a2"], "n2": ["b1", "b2"], "n3": ["c1", "c2"]}  # n3 falls silent while Redis is frozen


async def test_while_redis_is_frozen_scoring_and_gap_rows_go_on_and_reporting_cells_get_no_gap_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    process = redis._process
    assert process is not None
    layer = RedisDataLayer(redis.url, timeout_s=600.0)  # a read waits as long as the store is frozen
    xapp = Running(layer, seed_model_dir=model_folder(tmp_path, "t1"))
    scored: Counter[str] = Counter()  # rows scored per cell, and of them gap rows
    gaps: Counter[str] = Counter()
    fed: Counter[str] = Counter()
    feeding = set(NODES)
    asked = asyncio.Event()  # the registry was asked (a model check)
    promoted_models = layer.promoted_models

    async def promoted() -> list[str]:
        asked.set()
        return await promoted_models()

    monkeypatch.setattr(layer, "promoted_models", promoted)

    async def feed(engine: Engine) -> None:
        """Every feeding node reports its cells each period, paced in real time."""
        period = 0
        while True:
            for node in sorted(feeding):
                engine.on_batch(indication(node, period, NODES[node]))
                fed.update(NODES[node])
            period += 1
            await asyncio.sleep(PERIOD_MS / 1000)

    feeder: asyncio.Task[None] | None = None
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        observe = engine.intake.ranges.observe

        def count(slots: np.ndarray, gap: np.ndarray, masked: list[tuple[int, np.ndarray]], table: CellTable) -> None:
            for slot, missing in zip(slots.tolist(), gap.tolist(), strict=True):
                scored[table.cell_ids[slot]] += 1
                gaps[table.cell_ids[slot]] += missing
            observe(slots, gap, masked, table)

        monkeypatch.setattr(engine.intake.ranges, "observe", count)
        opened = accepted({**NODES})
        opened.reporting_period_ms = PERIOD_MS
        engine.on_accepted(opened)
        feeder = asyncio.create_task(feed(engine))
        cells = [cell for node in NODES.values() for cell in node]
        await until(lambda: all(scored[cell] >= 3 for cell in cells), "every cell scored")

        process.send_signal(signal.SIGSTOP)
        asked.clear()
        await until(asked.is_set, "a model check waiting on the frozen store")
        feeding.discard("n3")
        before = {cell: scored[cell] for cell in cells}
        await until(lambda: all(gaps[cell] >= 3 for cell in NODES["n3"]), "gap rows for n3's cells, Redis frozen")
        reporting = [*NODES["n1"], *NODES["n2"]]
        assert all(scored[cell] > before[cell] for cell in reporting), "scoring went on while Redis was frozen"

        process.send_signal(signal.SIGCONT)
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await until(lambda: all(scored[cell] == fed[cell] for cell in reporting), "every row fed scored")
        assert {cell: gaps[cell] for cell in reporting} == dict.fromkeys(reporting, 0)
    finally:
        if feeder is not None:
            feeder.cancel()
        process.send_signal(signal.SIGCONT)
        await xapp.stop()
        redis.stop()
