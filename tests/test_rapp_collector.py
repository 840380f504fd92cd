"""The rApp's collector against a real Redis, fed by the xApp's own writer: round trip, acknowledgement only
after a durable write, exactly once across a kill, malformed entries, retention, a Redis restart."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

import rapp.history
from ranomaly.redis_process import RedisServer
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import FIELD_DATA, RAPP_CONSUMER_GROUP, Attribution, IncidentEvent, SdlKeys
from rapp.collector import Collector
from rapp.history import KPM, read_history, read_incidents
from rapp.settings import RappSettings
from tests.xapp_helpers import MEASUREMENTS, PERIOD_MS, T0, indication
from xapp.datalayer.redis import RedisDataLayer

NAN = math.nan
MIDNIGHT = 1440  # the period index of 2026-01-06 00:00 UTC


class Killed(BaseException):
    """The process dies here (nothing after it runs, nothing catches it)."""


def cell_values(cell: int, period: int) -> list[float]:
    """Distinct values per cell and period, with a no-value record now and then and a float32 rounding."""
    return [period + cell / 10, NAN if (cell + period) % 4 == 0 else 2.0 * period, 0.1 * cell]


def node_indications(periods: Sequence[int], nodes: int = 2, cells: int = 3) -> list[list[pb.Indication]]:
    """Per period, one indication per node, each with its cells."""
    return [
        [
            indication(f"n{n}", p, {f"n{n}-c{c}": cell_values(n * cells + c, p) for c in range(cells)})
            for n in range(nodes)
        ]
        for p in periods
    ]


def expected_rows(periods: Sequence[int], nodes: int = 2, cells: int = 3) -> pd.DataFrame:
    """What the history must hold for node_indications(periods): one row per cell and period."""
    records = [
        {"timestamp": T0 + p * PERIOD_MS, "node_id": f"n{n}", "cell_id": f"n{n}-c{c}",
         **dict(zip(MEASUREMENTS, np.array(cell_values(n * cells + c, p), dtype=np.float32).tolist(), strict=True))}
        for p in periods for n in range(nodes) for c in range(cells)
    ]  # fmt: skip
    frame = pd.DataFrame.from_records(records).sort_values(["timestamp", "cell_id"]).reset_index(drop=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True).astype("datetime64[ms, UTC]")
    return frame


def assert_history(root: Path, periods: Sequence[int]) -> None:
    """The history holds exactly the rows of these periods: read back, and in the raw parts (no repeats)."""
    pd.testing.assert_frame_equal(read_history(root), expected_rows(periods), check_dtype=False)
    raw = pa.concat_tables([pq.read_table(p) for p in sorted((root / KPM).rglob("part-*.parquet"))]).to_pandas()
    assert not raw.duplicated(["cell_id", "timestamp"]).any(), "a (cell, period) was stored twice"
    assert len(raw) == len(expected_rows(periods))


def incident(period: int, event: str = "update") -> IncidentEvent:
    return IncidentEvent(event=event, incident_id=f"n0-c1/{T0}", cell_id="n0-c1", node_id="n0", opened_ms=T0,
                         period_start_ms=T0 + period * PERIOD_MS, score=6.5, peak_score=8.0,
                         attribution=(Attribution("m.a", 1.0, 3.0),), model_version="v1")  # fmt: skip


class Rig:
    """A key prefix of the test's own, the xApp's writer on it, a raw client, and collectors on one folder."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.layer = RedisDataLayer(url, prefix=self.prefix, connect_timeout_s=0.2, timeout_s=1.0,
                                    retry_initial_s=0.01, retry_max_s=0.05)  # fmt: skip
        self.keys: SdlKeys = self.layer.keys
        self.client = aioredis.Redis.from_url(url)
        self.collectors: list[Collector] = []

    def collector(self, **options: Any) -> Collector:
        settings = {"prefix": self.prefix, "block_ms": 0, "retry_initial_s": 0.01, "retry_max_s": 0.05,
                    "connect_timeout_s": 0.2, "timeout_s": 1.0, **options}  # fmt: skip
        collector = Collector(self.url, self.root, **settings)
        self.collectors.append(collector)
        return collector

    def buffer(self, periods: Sequence[int], events: Sequence[IncidentEvent] = ()) -> None:
        """Hand the xApp's writer one KPM forward per period, then the events."""
        for forward in node_indications(periods):
            self.layer.forward_kpm(MEASUREMENTS, forward)
        for event in events:
            self.layer.write_incident(event)

    async def send(self, periods: Sequence[int], events: Sequence[IncidentEvent] = ()) -> None:
        """Write one KPM stream entry per period, then one incident entry per event."""
        for period in periods:
            self.buffer([period])
            assert await self.layer.flush(5)
        self.buffer([], events)
        assert await self.layer.flush(5)

    async def pending(self, key: str) -> int:
        summary = await self.client.xpending(key, RAPP_CONSUMER_GROUP)
        return int(summary["pending"])

    async def close(self) -> None:
        for collector in self.collectors:
            await collector.close()
        await self.layer.close()
        await self.client.aclose()


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(redis_url, tmp_path / "history")
    await rig.layer.start()
    try:
        yield rig
    finally:
        await rig.close()


async def test_rows_and_incidents_round_trip_exactly_as_the_xapp_sent_them(rig: Rig) -> None:
    events = [incident(0, "open"), incident(1), incident(2, "close")]
    await rig.send(range(3), events)  # before the group exists: it starts at id 0, so nothing is missed
    collector = rig.collector()
    stats = await collector.collect_once()  # pending first: nothing yet for a new consumer
    stats.add(await collector.collect_once())
    assert (stats.entries, stats.rows, stats.incidents, stats.malformed, stats.acked) == (6, 18, 3, 0, 6)
    assert_history(rig.root, range(3))
    assert read_incidents(rig.root) == events
    assert await rig.pending(rig.keys.kpm) == 0 and await rig.pending(rig.keys.incidents) == 0
    assert collector.stats.totals == stats and collector.stats.connected


async def test_a_failing_write_acknowledges_nothing_and_the_next_cycle_writes_it(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.send(range(2), [incident(0)])
    collector = rig.collector()
    await collector.collect_once()

    def disk_full(*_: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(collector.store, "write_kpm", disk_full)
    with pytest.raises(OSError, match="No space"):
        await collector.collect_once()
    assert await rig.pending(rig.keys.kpm) == 2 and await rig.pending(rig.keys.incidents) == 1
    assert collector.stats.totals.acked == 0 and not (rig.root / KPM).exists()

    monkeypatch.undo()
    stats = await collector.collect_once()  # re-reads its pending entries
    assert stats.rows == 12 and await rig.pending(rig.keys.kpm) == 0
    assert_history(rig.root, range(2))


def die_after(monkeypatch: pytest.MonkeyPatch, collector: Collector, method: str) -> None:
    """The collector's process dies right after this history write is durable."""
    real: Callable[..., int] = getattr(collector.store, method)

    def write_then_die(*args: object) -> int:
        real(*args)
        raise Killed

    monkeypatch.setattr(collector.store, method, write_then_die)


async def test_a_kill_between_the_write_and_the_acknowledgement_loses_and_repeats_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.send(range(3), [incident(0), incident(1)])
    first = rig.collector()
    await first.collect_once()
    die_after(monkeypatch, first, "write_kpm")
    with pytest.raises(Killed):
        await first.collect_once()  # KPM written, not acknowledged; the incidents read, not written
    assert await rig.pending(rig.keys.kpm) == 3 and await rig.pending(rig.keys.incidents) == 2

    second = rig.collector()  # the same consumer name, Redis and folder
    die_after(monkeypatch, second, "write_incidents")
    with pytest.raises(Killed):
        await second.collect_once()  # KPM found written and acknowledged; the incidents written, not acknowledged
    assert second.stats.totals.already_written == 3 and second.stats.totals.rows == 0
    assert await rig.pending(rig.keys.kpm) == 0 and await rig.pending(rig.keys.incidents) == 2

    await rig.send(range(3, 5), [incident(2)])
    third = rig.collector()
    stats = await third.collect_once()
    assert (stats.already_written, stats.rows, stats.incidents, stats.acked) == (2, 0, 0, 2)
    stats = await third.collect_once()
    assert (stats.rows, stats.incidents, stats.acked) == (12, 1, 3)
    assert_history(rig.root, range(5))
    assert read_incidents(rig.root) == [incident(0), incident(1), incident(2)]
    assert await rig.pending(rig.keys.kpm) == 0 and await rig.pending(rig.keys.incidents) == 0


async def test_a_kill_between_two_day_parts_rewrites_the_batch_whole(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    periods = [MIDNIGHT - 1, MIDNIGHT]  # one batch, two days: two parts
    await rig.send(periods)
    first = rig.collector()
    await first.collect_once()
    real = rapp.history._write_durably
    calls: list[Path] = []

    def die_on_the_second_part(path: Path, table: pa.Table) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise Killed
        real(path, table)

    monkeypatch.setattr(rapp.history, "_write_durably", die_on_the_second_part)
    with pytest.raises(Killed):
        await first.collect_once()
    assert [p.name for p in (rig.root / KPM).rglob("part-*")] == [calls[0].name]
    monkeypatch.undo()

    stats = await rig.collector().collect_once()
    assert (stats.already_written, stats.rows, stats.acked) == (0, 12, 2)
    assert_history(rig.root, periods)
    assert sorted(p.name.split(".")[1] for p in (rig.root / KPM).rglob("part-*")) == ["1of2", "2of2"]


async def test_malformed_entries_are_counted_acknowledged_and_skipped(rig: Rig) -> None:
    collector = rig.collector()
    await collector.collect_once()
    await rig.client.xadd(rig.keys.kpm, {FIELD_DATA: b"\xff\x00 not protobuf"})
    await rig.send([0], [incident(0)])
    await rig.client.xadd(rig.keys.kpm, {"other": b"no data field"})
    bad_cells = indication("n0", 1, {"x": [1.0, 2.0, 3.0]})
    bad_cells.cell_ids.append("y")  # 3 values for 2 cells
    rig.layer.forward_kpm(MEASUREMENTS, [bad_cells])
    await rig.client.xadd(rig.keys.incidents, {FIELD_DATA: b'{"event": "explode"}'})
    assert await rig.layer.flush(5)

    with capture_logs() as logs:
        stats = await collector.collect_once()
    assert (stats.entries, stats.malformed, stats.rows, stats.incidents, stats.acked) == (6, 4, 6, 1, 6)
    warnings = [line for line in logs if line["event"] == "collector_malformed_entry"]
    assert [line["stream"] for line in warnings] == [rig.keys.kpm, rig.keys.incidents]  # one line per stream
    assert_history(rig.root, [0])
    assert read_incidents(rig.root) == [incident(0)]
    assert await rig.pending(rig.keys.kpm) == 0 and await rig.pending(rig.keys.incidents) == 0


async def test_run_survives_a_redis_restart_and_applies_retention(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    rig = Rig(server.url, tmp_path / "history")
    try:
        await rig.layer.start()
        collector = rig.collector(block_ms=20, retention_days=30, retention_interval_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await rig.send(range(3))
        await until(lambda: collector.stats.totals.rows == 18)

        server.stop()  # no persistence: the streams and the group go with it
        await until(lambda: collector.stats.redis_errors > 0)
        rig.buffer(range(3, 6))  # the xApp buffers while Redis is away
        server.start()
        assert await rig.layer.flush(5)
        await until(lambda: collector.stats.totals.rows == 36, timeout_s=5)
        assert_history(rig.root, range(6))
        assert collector.stats.partitions_dropped == 0

        later = [40 * MIDNIGHT, 40 * MIDNIGHT + 1]  # 40 days on: 2026-01-05 is past the 30 days kept
        await rig.send(later)
        await until(lambda: collector.stats.partitions_dropped == 1)
        stop.set()
        await asyncio.wait_for(task, 2)
        assert_history(rig.root, later)
        assert collector.stats.connected and collector.stats.other_errors == 0
    finally:
        await rig.close()
        server.stop()


async def until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_settings_configure_the_collector(tmp_path: Path) -> None:
    settings = RappSettings(history_dir=tmp_path, consumer_name="rapp-7", collect_batch=5, collect_block_ms=10)
    collector = Collector.from_settings(settings, prefix="p")
    assert collector.store.root == tmp_path and (collector.keys.kpm, collector.keys.incidents) == (
        "p:kpm",
        "p:incidents",
    )
