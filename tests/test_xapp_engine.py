"""The hot path on hand-made indications: ordering, gaps, lateness, bad input, verdicts, incidents, swaps."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from ranomaly_contracts.sdl import CellStatus, IncidentEvent, VerdictBatch
from tests.xapp_helpers import PERIOD_MS, T0, accepted, batch, engine_on, indication, trivial_runtime
from xapp.datalayer.memory import MemoryDataLayer
from xapp.engine import Engine

NAN = math.nan
CALM = (10.0, 20.0, 30.0)


@pytest.fixture
async def datalayer() -> MemoryDataLayer:
    layer = MemoryDataLayer()
    await layer.start()
    return layer


async def verdicts(layer: MemoryDataLayer) -> list[tuple[str, int, int, float, str]]:
    """(cell, period index, status, score, model version) of every verdict written, in order."""
    out = []
    for _, vb in await layer.read_verdicts():
        assert isinstance(vb, VerdictBatch)
        for i, cell in enumerate(vb.cell_ids):
            period = (int(vb.period_start_ms[i]) - T0) // PERIOD_MS
            out.append((cell, period, int(vb.statuses[i]), float(vb.scores[i]), vb.model_version))
    return out


async def incidents(layer: MemoryDataLayer) -> list[IncidentEvent]:
    return [event for _, event in await layer.read_incidents()]


async def started(layer: MemoryDataLayer, cells: dict[str, list[str]] | None = None, **tuning: object) -> Engine:
    engine = await engine_on(layer, **tuning)
    engine.on_accepted(accepted(cells or {"n1": ["c1", "c2"], "n2": ["c3"]}))
    return engine


async def test_every_row_is_scored_once_in_order_and_warms_up_first(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    for p in range(5):
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})))
    engine.flush()
    await datalayer.flush()
    got = await verdicts(datalayer)
    assert sorted((c, p) for c, p, *_ in got) == [(c, p) for c in ("c1", "c2", "c3") for p in range(5)]
    for cell in ("c1", "c2", "c3"):
        statuses = [s for c, _, s, _, _ in got if c == cell]
        assert statuses == [CellStatus.WARMING_UP] * 2 + [CellStatus.NORMAL] * 3
    assert engine.metrics.cell_reports._value.get() == 15


async def test_a_late_row_within_the_bound_is_placed_in_order(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer, max_lateness_periods=2)
    engine.on_batch(batch(indication("n1", 0, {"c1": CALM, "c2": CALM})))
    engine.on_batch(batch(indication("n1", 2, {"c1": (50.0, 20.0, 30.0), "c2": CALM})))  # period 1 not yet here
    engine.on_batch(batch(indication("n1", 1, {"c1": (10.0, 20.0, 30.0), "c2": CALM})))
    engine.flush()
    await datalayer.flush()
    got = await verdicts(datalayer)
    c1 = [(p, score) for c, p, _, score, _ in got if c == "c1"]
    assert [p for p, _ in c1] == [0, 1, 2], "period 2 waited for period 1"
    assert c1[1][1] == 0.0 and c1[2][1] == 40.0, "period 2 was scored after period 1's values entered the state"
    assert engine.metrics.late_rows._value.get() == 0 and engine.metrics.gap_rows._value.get() == 0


async def test_beyond_the_bound_a_missing_period_is_a_gap_and_its_late_row_is_dropped(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await started(datalayer, max_lateness_periods=1)
    engine.on_batch(batch(indication("n1", 0, {"c1": CALM}), indication("n2", 0, {"c3": CALM})))
    for p in (1, 2, 3):  # n1 does not report period 1
        if p != 1:
            engine.on_batch(batch(indication("n1", p, {"c1": CALM})))
        engine.on_batch(batch(indication("n2", p, {"c3": CALM})))
    engine.on_batch(batch(indication("n1", 1, {"c1": CALM})))  # far too late now
    engine.flush()
    await datalayer.flush()
    c1 = [p for c, p, *_ in await verdicts(datalayer) if c == "c1"]
    assert c1 == [0, 1, 2, 3], "period 1 was scored once, as a gap, before period 2"
    assert engine.metrics.gap_rows._value.get() == 1
    assert engine.metrics.late_rows._value.get() == 1


async def test_cells_that_owe_several_periods_fill_them_a_period_at_a_time_in_few_batches(
    datalayer: MemoryDataLayer,
) -> None:
    cells = [f"c{i}" for i in range(40)]
    engine = await started(datalayer, {"n1": cells}, max_lateness_periods=1, batch_max_cells=16)
    engine.on_batch(batch(indication("n1", 0, dict.fromkeys(cells, CALM))))
    engine.flush()
    engine.advance_clock(T0 + 6 * PERIOD_MS)  # every stream quiet: periods 1 to 4 are overdue now
    await datalayer.flush()
    got = await verdicts(datalayer)
    for cell in cells:
        assert [p for c, p, *_ in got if c == cell] == [0, 1, 2, 3, 4], f"{cell}: each period once, in order"
    assert engine.metrics.gap_rows._value.get() == 40 * 4
    scoring_batches = len(await datalayer.read_verdicts())
    assert scoring_batches <= 3 + 4 * 3, f"{scoring_batches} batches of at most 16 rows for 40 cells x 5 periods"


async def test_malformed_rows_are_counted_and_dropped_while_the_rest_goes_on(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    short = indication("n1", 0, {"c1": CALM, "c2": CALM})
    del short.values[-1]
    bad_nan = indication("n2", 0, {"c3": CALM})
    bad_nan.values[0] = float("nan")
    unknown = indication("n1", 0, {"zz": CALM})
    unknown.header.node_id = "n9"
    engine.on_batch(batch(short, bad_nan, unknown, indication("n1", 0, {"c1": CALM})))
    engine.on_batch(batch(indication("n1", 1, {"c1": CALM, "c2": CALM}), indication("n2", 1, {"c3": CALM})))
    engine.flush()
    await datalayer.flush()
    errors = engine.metrics.decode_errors
    assert errors.labels("malformed")._value.get() == 2
    assert errors.labels("unknown_cell")._value.get() == 1
    got = sorted((c, p) for c, p, *_ in await verdicts(datalayer))
    assert got == [("c1", 0), ("c1", 1), ("c2", 1), ("c3", 1)]


async def test_incident_opens_after_n_anomalous_periods_and_closes_after_m_normal(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    # m.c jumps up and back twice: periods 4 to 7 move (anomalous to the trivial model), 8 on are calm
    values = [CALM] * 4 + [(10.0, 20.0, 90.0), CALM, (10.0, 20.0, 90.0)] + [CALM] * 5
    for p, row in enumerate(values):
        engine.on_batch(batch(indication("n1", p, {"c1": row, "c2": CALM})))
    engine.flush()
    await datalayer.flush()
    events = await incidents(datalayer)
    assert [e.event for e in events] == ["open", "close"]
    opened, closed = events
    assert opened.cell_id == "c1" and opened.opened_ms == T0 + 4 * PERIOD_MS
    assert opened.period_start_ms == T0 + 5 * PERIOD_MS, "opened at the second anomalous period (open_after 2)"
    assert opened.attribution[0].measurement == "m.c" and opened.attribution[0].share > 0.9
    assert closed.reason == "recovered" and closed.period_start_ms == T0 + 10 * PERIOD_MS, "3 normal: 8, 9, 10"
    assert closed.incident_id == opened.incident_id and closed.closed_ms == T0 + 7 * PERIOD_MS
    assert engine.incidents.open_count == 0


async def test_a_policy_change_takes_effect_at_the_next_batch(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    store = engine.policies.store  # type: ignore[attr-defined]
    for p in range(3):
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM})))
    await store.put_instance(20100, "maintenance-n1", {"enabled": False, "scope": {"nodes": ["n1"]}})
    await store.put_instance(20100, "c2-strict", {"enabled": True, "scope": {"cells": ["c2"]},
                                                   "threshold": {"mode": "sigma", "value": 0.5}})  # fmt: skip
    engine.tick()
    engine.on_batch(batch(indication("n1", 3, {"c1": CALM, "c2": (11.0, 20.0, 30.0)})))  # c2 moves by 1
    engine.flush()
    await datalayer.flush()
    last = {c: s for c, p, s, *_ in await verdicts(datalayer) if p == 3}
    assert last["c1"] == CellStatus.SILENCED, "node maintenance silences its cells"
    assert last["c2"] == CellStatus.ANOMALOUS, "c2's own instance re-enables it with threshold 0 + 0.5 sigma < 1"
    assert store.instance(20100, "maintenance-n1").enforced


async def test_a_silent_cell_gets_gaps_then_is_released(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer, max_lateness_periods=0, release_after_periods=3)
    for p in range(8):
        cells = {"c1": CALM} if p < 2 else {}
        engine.on_batch(batch(indication("n1", p, cells), indication("n2", p, {"c3": CALM})))
    engine.flush()
    await datalayer.flush()
    c1 = [p for c, p, *_ in await verdicts(datalayer) if c == "c1"]
    assert c1 == [0, 1, 2, 3, 4], "three gap periods scored, then released"
    assert "c1" not in engine.table.slot_of and engine.metrics.released_cells._value.get() == 1
    engine.on_batch(batch(indication("n1", 8, {"c1": CALM})))
    engine.flush()
    assert "c1" in engine.table.slot_of, "a released cell that reports again starts afresh"


async def test_a_staged_model_takes_over_between_batches_without_loss_or_double_scoring(
    datalayer: MemoryDataLayer,
) -> None:
    engine = await started(datalayer)
    for p in range(10):
        if p == 4:
            engine.stage(trivial_runtime("trivial-2", warmup=2), shadow_periods=3)
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})))
    engine.flush()
    await datalayer.flush()
    got = await verdicts(datalayer)
    keys = [(c, p) for c, p, *_ in got]
    assert len(keys) == len(set(keys)) == 30
    versions = [v for _, p, _, _, v in sorted(got, key=lambda r: r[1])]
    assert versions[: 3 * 7] == ["trivial-1"] * 21 and versions[21:] == ["trivial-2"] * 9
    statuses = [s for _, p, s, _, v in got if v == "trivial-2"]
    assert CellStatus.WARMING_UP not in statuses, "the shadow warmed up before it took over"
    assert engine.model.version == "trivial-2"
    assert np.all(engine.model.seen[[engine.table.slot_of[c] for c in ("c1", "c2", "c3")]] == 6)


class Recording:
    """Calls through and keeps what each call returned."""

    def __init__(self, function: Callable[..., bool]) -> None:
        self.function = function
        self.results: list[bool] = []

    def __call__(self, *args: object) -> bool:
        self.results.append(self.function(*args))
        return self.results[-1]


@pytest.mark.parametrize("batch_max_cells", [1024, 4])
async def test_whole_messages_and_single_indications_give_identical_verdicts(batch_max_cells: int) -> None:
    """The routine path (a message at once) and the careful path (one indication at a time) agree, also when a
    message holds more rows than one scoring call (12 cells a period, 4 a call: the message goes in parts).
    Each period is received in real time at the same instants both ways (jitter included), and the node clocks
    end the same (their pace judged, each node's fastest delivery kept)."""
    rng = np.random.default_rng(4)
    jitter_ms = rng.integers(0, 40, 12)
    nodes = {f"n{n}": [f"n{n}-c{c}" for c in range(1 + n % 3)] for n in range(6)}
    periods = []
    for p in range(12):
        per_node = []
        for node, cells in nodes.items():
            values = {c: rng.uniform(0, 50, 3).round(1).tolist() for c in cells}
            if p in (5, 6) and node == "n2":
                values[cells[0]] = [NAN, NAN, NAN]  # a silent cell: every record "no value"
            if p == 7:
                values[cells[-1]][1] = NAN
            per_node.append(indication(node, p, values))
        periods.append(per_node)
    results, clocks = [], []
    for grouping in ("one", "period"):
        layer = MemoryDataLayer()
        await layer.start()
        engine = await started(layer, nodes, batch_max_cells=batch_max_cells)
        if grouping == "one":  # never the routine path
            engine.intake.take_routine = lambda *args: None  # type: ignore[method-assign]
        else:
            engine.intake.take_routine = Recording(engine.intake.take_routine)  # type: ignore[method-assign]
        for p, per_node in enumerate(periods):
            messages = [batch(i) for i in per_node] if grouping == "one" else [batch(*per_node)]
            received_ns = (T0 + (p + 1) * PERIOD_MS + int(jitter_ms[p])) * 1_000_000
            for message in messages:
                engine.on_batch(message, received_ns)
        engine.flush()
        await layer.flush()
        results.append(sorted(await verdicts(layer)))
        clocks.append({node: (c.ms, c.offset_ms, c.paced, c.ahead_run) for node, c in engine.intake.clocks.items()})
        assert engine.metrics.cell_reports._value.get() == 12 * sum(map(len, nodes.values()))
    routine = [result is not None for result in engine.intake.take_routine.results]  # type: ignore[attr-defined]
    assert sum(routine) == 11, "every message after the first went the routine way"
    calls = engine.metrics.scoring_calls._value.get()
    assert calls >= 12 * -(-sum(map(len, nodes.values())) // batch_max_cells), "no call held more than the batch"
    assert results[0] == results[1]
    assert clocks[0] == clocks[1] and all(paced for _, _, paced, _ in clocks[1].values()), "paced clocks, the same"
    assert min(offset for _, offset, _, _ in clocks[1].values()) == PERIOD_MS + min(jitter_ms), "fastest delivery"


async def test_sequence_gaps_are_counted_on_the_routine_path_too(datalayer: MemoryDataLayer) -> None:
    engine = await started(datalayer)
    for p in (0, 1, 2, 5, 6):  # the node's indications 3 and 4 are lost
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})))
    engine.flush()
    assert engine.metrics.sequence_gaps._value.get() == 4, "two lost indications from each of two nodes"


async def test_a_flood_of_bad_indications_logs_one_line_per_kind_and_counts_all(datalayer: MemoryDataLayer) -> None:
    from structlog.testing import capture_logs

    engine = await started(datalayer)
    with capture_logs() as logs:
        for p in range(50):
            bad = indication("n1", p, {"c1": CALM})
            bad.values[0] = float("inf")
            engine.on_batch(batch(bad, indication("n2", p, {"c3": CALM})))
    engine.flush()
    assert engine.metrics.decode_errors.labels("malformed")._value.get() == 50
    assert engine.scored_rows == 50, "the good indication of every message was scored"
    assert len([line for line in logs if line["event"] == "indication_dropped"]) == 1
