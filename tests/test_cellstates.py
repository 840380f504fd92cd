"""The rounds of cell states (xapp/datalayer/cellstates.py): the newest verdict per cell, and no batch kept
longer than a pending cell needs it."""

from __future__ import annotations

import sys

import numpy as np

from ranomaly_contracts.sdl import CellStatus, VerdictBatch, decode_cell_state
from xapp.datalayer.cellstates import CellStateRounds


def verdicts(cells: list[str], start_ms: int) -> VerdictBatch:
    n = len(cells)
    return VerdictBatch(
        model_version="m1",
        measurements=("prb",),
        cell_ids=cells,
        node_ids=["n1"] * n,
        period_start_ms=np.full(n, start_ms, dtype=np.int64),
        scores=np.arange(n, dtype=np.float32),
        statuses=np.full(n, CellStatus.NORMAL, dtype=np.uint8),
        deviations=np.zeros((n, 1), dtype=np.float32),
    )


def test_each_cell_gets_its_newest_verdict_and_a_batch_no_cell_needs_is_let_go() -> None:
    rounds = CellStateRounds(0.0, {"c3": "inc-1"})
    older, newer = verdicts(["c1", "c2"], 1_000), verdicts(["c2", "c3"], 2_000)
    rounds.note(older)
    rounds.note(newer)
    states = {cell: decode_cell_state(value) for cell, value in rounds.fields().items()}
    assert {cell: state.period_start_ms for cell, state in states.items()} == {"c1": 1_000, "c2": 2_000, "c3": 2_000}
    assert states["c2"].score == 0.0 and states["c3"].score == 1.0, "each cell's own row of its newest batch"
    assert states["c3"].incident_id == "inc-1" and states["c1"].incident_id is None
    assert rounds.pending == 3

    rounds.note(verdicts(["c1"], 3_000))  # nothing pending names `older` now
    held = sys.getrefcount(older)
    assert rounds.due(), "a round begins (interval 0)"
    assert sys.getrefcount(older) == held - 1, "the batch no pending cell names is let go when a round begins"
    part = rounds.next_part()
    assert sorted(part) == ["c1", "c2", "c3"]
    assert decode_cell_state(rounds.fields(part)["c1"]).period_start_ms == 3_000
    rounds.written(part)
    assert rounds.pending == 0 and rounds.fields() == {}
