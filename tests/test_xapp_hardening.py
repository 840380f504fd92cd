"""E2 intake that one node cannot steer: times, caps, ownership, value ranges, and exactly what is forwarded."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
import structlog

from models.trivial import parsed_trivial
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.ratelog import RateLimitedLog
from ranomaly_contracts.sdl import VerdictBatch
from tests.xapp_helpers import PERIOD_MS, T0, accepted, batch, engine_on, indication
from xapp.clocks import catching_up
from xapp.datalayer.base import DataLayer
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.redis import RedisDataLayer
from xapp.enforcement import StorePolicies
from xapp.engine import Engine, HotPathTuning
from xapp.intake import IntakeLimits
from xapp.metrics import XappMetrics
from xapp.policy.store import PolicyStore
from xapp.runtime import ModelRuntime

CALM = (10.0, 20.0, 30.0)
NAN = math.nan
YEAR_MS = 365 * 86_400_000


@pytest.fixture
async def datalayer() -> MemoryDataLayer:
    layer = MemoryDataLayer()
    await layer.start()
    return layer


async def started(layer: DataLayer, cells: dict[str, list[str]] | None = None, **tuning: object) -> Engine:
    engine = await engine_on(layer, **tuning)
    engine.on_accepted(accepted(cells or {"n1": ["c1", "c2"], "n2": ["c3"]}))
    return engine


def at(node: str, start_ms: int, cells: dict[str, Sequence[float]]) -> pb.Indication:
    """An indication with a collection start given in milliseconds."""
    out = indication(node, 0, cells)
    out.header.collection_start_ms = start_ms
    return out


def refused(engine: Engine, reason: str) -> int:
    return int(engine.metrics.refused_rows.labels(reason)._value.get())


def count(engine: Engine, name: str) -> int:
    return int(getattr(engine.metrics, name)._value.get())


async def scored(layer: DataLayer) -> list[tuple[str, int]]:
    """(cell, period index) of every verdict written, in order."""
    await layer.flush()
    out = []
    for _, vb in await layer.read_verdicts():
        assert isinstance(vb, VerdictBatch)
        out += [(c, (int(p) - T0) // PERIOD_MS) for c, p in zip(vb.cell_ids, vb.period_start_ms, strict=True)]
    return out


def steady(engine: Engine, periods: range, received_ns: int | None = None) -> None:
    for p in periods:
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})),
                        received_ns)  # fmt: skip


# --- time ----------------------------------------------------------------------------------------------


async def test_collection_starts_that_are_no_time_are_refused_and_counted(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    steady(engine, range(2))
    top = 2**63 - 1
    for start in (top - top % PERIOD_MS, top - top % PERIOD_MS - PERIOD_MS, 2**64 - 2**64 % PERIOD_MS):
        engine.on_batch(batch(at("n1", start, {"c1": CALM, "c2": CALM})))  # no OverflowError escapes
    steady(engine, range(2, 4))
    engine.flush()
    assert refused(engine, "time_out_of_range") == 6, "3 indications of 2 cells"
    assert len(await scored(datalayer)) == 3 * 4, "every real row scored"


async def test_one_start_ten_years_ahead_is_dropped_and_moves_no_clock(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer, {"n1": ["c1", "c2"], "n2": ["c3"], "n3": ["c4"]})
    steady(engine, range(3))
    ahead = T0 + 10 * YEAR_MS - (T0 + 10 * YEAR_MS) % PERIOD_MS
    engine.on_batch(batch(at("n1", ahead, {"c1": CALM, "c2": CALM})))
    engine.on_batch(batch(at("n3", ahead, {"c4": CALM})))  # a node's first start: judged from the network's time
    steady(engine, range(3, 8))
    engine.on_batch(batch(indication("n3", 7, {"c4": CALM})))
    engine.flush()
    assert refused(engine, "ahead_of_node") == 2 + 1
    got = await scored(datalayer)
    assert sorted(got) == sorted([(c, p) for c in ("c1", "c2", "c3") for p in range(8)] + [("c4", 7)]), "scoring on"
    assert count(engine, "late_rows") == 0 and count(engine, "gap_rows") == 0
    assert engine.intake.watermark_ms == T0 + 7 * PERIOD_MS


async def test_a_node_paced_in_real_time_may_not_run_ahead_of_the_receiving_clock(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer, limits=IntakeLimits(clock_slack_ms=PERIOD_MS // 2))
    received = 10**15  # receipt times in ns, one period apart: a real-time stream
    for p in range(5):
        steady(engine, range(p, p + 1), received + p * PERIOD_MS * 1_000_000)
    now = received + 5 * PERIOD_MS * 1_000_000
    engine.on_batch(batch(indication("n1", 8, {"c1": CALM, "c2": CALM})), now)  # 3 periods ahead of the clock
    assert refused(engine, "ahead_of_receive_clock") == 2
    steady(engine, range(5, 6), now)
    engine.flush()
    assert sorted(await scored(datalayer)) == sorted((c, p) for c in ("c1", "c2", "c3") for p in range(6))


async def test_accelerated_streams_and_replays_of_old_data_are_scored_in_full(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    received = 10**15
    for p in range(40):  # 40 periods of 2026 data, one a millisecond
        steady(engine, range(p, p + 1), received + p * 1_000_000)
    engine.flush()
    assert len(await scored(datalayer)) == 3 * 40
    assert engine.metrics.refused_rows.collect()[0].samples == [], "nothing refused"


async def test_a_node_restarting_on_a_timeline_of_its_own_follows_it_without_a_gap_flood(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await started(datalayer)
    steady(engine, range(3))
    for p in range(5000, 5005):  # the node now reports 5,000 periods on, period after period
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM})))
    engine.flush()
    restart_after = IntakeLimits().clock_reanchor_after
    assert refused(engine, "ahead_of_node") == 2 * (restart_after - 1), "until the node's new timeline was clear"
    assert count(engine, "clock_restarts") == 1
    assert count(engine, "gap_rows") == 0, "no gap rows for the 5,000 periods skipped"
    assert count(engine, "released_cells") == 2, "silent longer than release_after: they start afresh"
    n1 = [p for c, p in await scored(datalayer) if c == "c1"]
    assert n1 == [0, 1, 2, *range(5000 + restart_after - 1, 5005)]
    assert engine.intake.clocks["n2"].ms == T0 + 2 * PERIOD_MS, "the other node's clock did not move"


async def test_gap_filling_is_bounded_a_longer_jump_restarts_the_period_count(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer, max_lateness_periods=0, limits=IntakeLimits(max_gap_periods=3))
    steady(engine, range(2))
    engine.on_batch(batch(indication("n1", 4, {"c1": CALM}), indication("n2", 9, {"c3": CALM})))
    engine.flush()
    assert count(engine, "gap_rows") == 2 + 2, "c1, c2: periods 2 and 3 filled"
    assert count(engine, "gap_restarts") == 1, "c3: 7 periods owed, more than 3: restarted"
    assert sorted(p for c, p in await scored(datalayer) if c == "c3") == [0, 1, 9]


async def test_gap_rows_per_message_are_bounded(datalayer: MemoryDataLayer) -> None:
    cells = {"n1": [f"c{i}" for i in range(50)]}
    engine = await started(datalayer, cells, max_lateness_periods=0, limits=IntakeLimits(max_cells_per_message=60))
    engine.on_batch(batch(indication("n1", 0, dict.fromkeys(cells["n1"], CALM))))
    engine.on_batch(batch(indication("n1", 3, {"c0": CALM})))  # 50 cells owe periods 1 and 2: 100 gap rows
    engine.flush()
    assert count(engine, "gap_rows") == 60, "the message's budget of gap rows"
    assert count(engine, "gap_restarts") == 20, "the cells beyond it restarted"


async def test_a_silent_node_follows_the_network_and_its_cells_get_gaps(datalayer: MemoryDataLayer) -> None:
    cells = {"n1": ["c1"], "n2": ["c2"], "n3": ["c3"]}
    engine = await started(datalayer, cells, max_lateness_periods=0)
    for p in range(4):
        nodes = ("n1", "n2", "n3") if p == 0 else ("n1", "n2")
        engine.on_batch(batch(*(indication(n, p, {cells[n][0]: CALM}) for n in nodes)))
    engine.tick()
    assert [p for c, p in await scored(datalayer) if c == "c3"] == [0, 1, 2], "gaps up to the network's time"


async def test_a_network_time_that_stands_still_is_a_backlog_while_messages_come_in_at_that_time(
    datalayer: MemoryDataLayer,
) -> None:
    cells = {"n1": ["c1"], "n2": ["c2"], "n3": ["c3"]}
    engine = await started(datalayer, cells)
    engine.on_batch(batch(*(indication(n, 0, {cells[n][0]: CALM}) for n in cells)))
    engine.on_batch(batch(indication("n1", 1, {"c1": CALM})))  # the rest of period 1 still queued
    watermark = engine.intake.watermark_ms
    assert watermark == T0 and engine.intake.newest_ms == T0 + PERIOD_MS
    assert catching_up(engine.intake.newest_ms, watermark, 5.0, PERIOD_MS), "read 5 ms ago, at the network's time"
    assert not catching_up(engine.intake.newest_ms, watermark, 2.0 * PERIOD_MS, PERIOD_MS), "every stream quiet"
    engine.on_batch(batch(indication("n1", 3, {"c1": CALM})))  # n1 moved on; n2 and n3 fell silent
    assert engine.intake.newest_ms == T0 + 3 * PERIOD_MS
    assert not catching_up(engine.intake.newest_ms, watermark, 5.0, PERIOD_MS), "a node ahead: silence, not a backlog"


# --- caps and ownership ------------------------------------------------------------------------------------


async def test_fifty_thousand_cells_in_one_indication_are_refused_by_the_message_cap(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await started(datalayer)
    flood = indication("n1", 0, {f"x{i}": CALM for i in range(50_000)})
    engine.on_batch(batch(flood, indication("n2", 0, {"c3": CALM})))
    engine.flush()
    assert refused(engine, "message_cap") == 50_000
    assert len(engine.table) == 1 and await scored(datalayer) == [("c3", 0)]


async def test_cells_are_capped_in_total_and_per_node(datalayer: MemoryDataLayer) -> None:
    cells = {"n1": [f"a{i}" for i in range(6)], "n2": [f"b{i}" for i in range(6)]}
    limits = IntakeLimits(max_cells=8, max_cells_per_node=5)
    engine = await started(datalayer, cells, limits=limits)
    engine.on_batch(batch(indication("n1", 0, dict.fromkeys(cells["n1"], CALM))))
    engine.on_batch(batch(indication("n2", 0, dict.fromkeys(cells["n2"], CALM))))
    engine.flush()
    assert refused(engine, "node_cell_cap") == 1, "a5"
    assert refused(engine, "cell_cap") == 3, "b3, b4, b5: 8 cells in all"
    assert len(engine.table) == 8 and len(await scored(datalayer)) == 8


async def test_empty_cell_ids_and_cells_of_another_node_are_refused(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer, {"n1": ["c1", "c2"], "n2": ["c3"]})
    engine.intake.cell_filter.explicit_cells = True
    engine.intake.cell_filter.cells.add("c9")
    engine.on_batch(batch(indication("n1", 0, {"c1": CALM, "": CALM, "c9": CALM})))
    engine.on_batch(batch(indication("n2", 0, {"c3": CALM, "c1": CALM, "c2": CALM, "c9": CALM})))
    engine.flush()
    assert refused(engine, "empty_cell") == 1
    assert refused(engine, "wrong_node") == 3, "c1 (seen from n1), c2 (listed under n1), c9 (first seen from n1)"
    assert sorted(await scored(datalayer)) == [("c1", 0), ("c3", 0), ("c9", 0)]
    assert engine.table.node_ids[engine.table.slot_of["c9"]] == "n1"


# --- value ranges --------------------------------------------------------------------------------------------

RANGED = ("RRC.ConnMean", "DRB.PacketLossRateUl", "m.custom")  # UEs >= 0, ppm in [0, 1e6], no range


async def ranged_engine(layer: DataLayer, **limits: int) -> Engine:
    store = PolicyStore(layer)
    await store.load()
    artifact = parsed_trivial(RANGED, PERIOD_MS / 1000, threshold=1e9, warmup_periods=1)
    engine = Engine(
        RANGED, ModelRuntime.load(artifact, RANGED, PERIOD_MS), StorePolicies(store), layer, XappMetrics(),
        HotPathTuning(period_ms=PERIOD_MS, batch_window_ms=0.0, limits=IntakeLimits(**limits)),
        RateLimitedLog(structlog.get_logger("xapp-test"), 60.0),
    )  # fmt: skip
    engine.refresh_policies()
    engine.on_accepted(pb.SubscriptionAccepted(measurements=list(RANGED), reporting_period_ms=PERIOD_MS,
                                               nodes=[pb.NodeInfo(node_id="n1")]))  # fmt: skip
    return engine


def masked(engine: Engine, measurement: str) -> int:
    return int(engine.metrics.masked_values.labels(measurement)._value.get())


async def test_values_out_of_range_are_masked_not_the_row_and_unranged_ones_pass(datalayer: MemoryDataLayer) -> None:
    engine = await ranged_engine(datalayer)
    for p in range(3):  # the first message takes the careful path, the later ones the routine one
        cells = {"c1": (-5.0, 2e6, -1e9), "c2": (3.0, 100.0, -7.0)}
        engine.on_batch(batch(indication("n1", p, cells)))
    engine.flush()
    assert masked(engine, "RRC.ConnMean") == 3 and masked(engine, "DRB.PacketLossRateUl") == 3
    assert masked(engine, "m.custom") == 0, "no catalogue entry: not checked"
    assert len(await scored(datalayer)) == 6, "no row dropped"
    assert refused(engine, "out_of_range") == 0
    slot = engine.table.slot_of["c1"]
    assert engine.model.state[slot].tolist()[:2] == [0.0, 0.0], "the masked values never reached the model"


async def test_a_measurement_out_of_range_for_n_periods_opens_a_data_quality_incident(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await ranged_engine(datalayer, quality_incident_periods=4)
    for p in range(6):
        loss = 2e6 if p < 5 else 10.0
        engine.on_batch(batch(indication("n1", p, {"c1": (1.0, loss, 0.0), "c2": (-1.0 if p == 0 else 1.0, 1.0, 0.0)})))
        if p == 4:
            assert engine.intake.ranges.incidents == {(engine.table.slot_of["c1"], 1): "c1"}
    engine.flush()  # period 5 scored and published (its batch may still be in flight)
    metric = engine.metrics.data_quality_incidents
    assert metric.labels("DRB.PacketLossRateUl")._value.get() == 1 and metric.labels("RRC.ConnMean")._value.get() == 0
    assert engine.intake.ranges.incidents == {}, "back in range at period 5: closed"
    assert engine.metrics.data_quality_open._value.get() == 0


# --- what is forwarded ---------------------------------------------------------------------------------------


async def test_late_duplicate_and_refused_rows_never_reach_the_kpm_stream(redis_url: str) -> None:
    layer = RedisDataLayer(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    await layer.start()
    try:
        engine = await started(layer, max_lateness_periods=0)
        steady(engine, range(4))
        steady(engine, range(4))  # the stream replayed from the start: every row a duplicate
        engine.on_batch(batch(indication("n1", 5, {"c1": CALM, "c2": CALM, "c3": CALM, "": CALM})))  # c3: n2's
        engine.on_batch(batch(indication("n2", 5, {"c3": CALM})))
        engine.on_batch(batch(indication("n2", 4, {"c3": CALM})))  # late: period 4 was closed as a gap
        engine.flush()
        await layer.flush()
        forwarded: Counter[tuple[str, int]] = Counter()
        for _, entry in await layer.read_kpm():
            for ind in entry.indications:
                p = (ind.header.collection_start_ms - T0) // PERIOD_MS
                forwarded.update((cell, p) for cell in ind.cell_ids)
        reported = {(c, p) for c, p in await scored(layer)} - {("c1", 4), ("c2", 4), ("c3", 4)}  # gaps
        assert forwarded == Counter(reported), "each scored report forwarded once, nothing else"
        assert refused(engine, "late") == 12 + 1 and refused(engine, "wrong_node") == 1
    finally:
        await layer.close()


async def test_a_node_reporting_no_cells_keeps_its_messages_routine_and_its_sequence_counted(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await started(datalayer, {"n1": ["c1", "c2"], "n2": ["c3"], "n3": []})
    routine = []
    take_routine = engine.intake.take_routine

    def recording(*args: Any) -> object:
        result = take_routine(*args)
        routine.append(result is not None)
        return result

    engine.intake.take_routine = recording  # type: ignore[method-assign]
    for p in range(6):
        empty = [] if p == 3 else [indication("n3", p, {})]  # n3's indication 3 is lost
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), *empty,
                              indication("n2", p, {"c3": CALM})))  # fmt: skip
    engine.flush()
    assert routine == [False] + [True] * 5, "only the first message, which adds the cells, is not routine"
    assert count(engine, "sequence_gaps") == 1, "n3's indication 3"
    assert len(await scored(datalayer)) == 6 * 3


async def test_a_no_value_record_beyond_its_indication_is_refused_in_a_routine_message(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await started(datalayer)
    steady(engine, range(3))  # the nodes' cells are known: later messages take the routine path
    bad = indication("n1", 3, {"c1": (NAN, 1.0, 2.0), "c2": CALM})
    bad.no_value.append(6)  # n1 has 2 cells x 3 measurements: records 0 to 5
    engine.on_batch(batch(indication("n2", 3, {"c3": (1.0, NAN, 3.0)}), bad))
    engine.flush()
    assert refused(engine, "malformed") == 2, "n1's two cells"
    assert (await scored(datalayer))[-1] == ("c3", 3), "n2's indication in the same message is scored"
    assert count(engine, "sequence_gaps") == 0


async def test_masked_values_are_forwarded_as_no_value(datalayer: MemoryDataLayer) -> None:
    engine = await ranged_engine(datalayer)
    engine.intake.cell_filter.nodes.add("n2")
    for p in range(2):  # careful path, then routine path
        engine.on_batch(batch(indication("n1", p, {"c1": (-5.0, 1.0, -2.0), "c2": (3.0, 1.0, 2.0)}),
                              indication("n2", p, {"c3": (1.0, 2e6, 0.0)})))  # fmt: skip
    engine.flush()
    await datalayer.flush()
    entries = [ind for _, entry in await datalayer.read_kpm() for ind in entry.indications]
    assert [list(ind.no_value) for ind in entries] == [[0], [1]] * 2, "c1's RRC.ConnMean, c3's loss: no value"
