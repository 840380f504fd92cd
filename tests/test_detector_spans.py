"""Training costs the cell-periods the cells report over their spans, not every cell over the union of all."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.detector import DetectorConfig, passes
from models.detector.train import CALIBRATION_SHARE, align, fit_step
from ranomaly_contracts.dataset import KpmArrays

PERIOD_MS = 300_000
SPAN = 288  # a day of 5-minute periods
APART = 2_000  # rows between the starts of two cells' spans
CELLS = 4
pytestmark = pytest.mark.timeout(900)  # trains a model: generous for a busy 2-core machine


def _staggered() -> KpmArrays:
    """Four cells of one measurement on four nodes, each reporting for a day, their spans weeks apart; one
    record missing inside the first cell's span."""
    rng = np.random.default_rng(3)
    periods = APART * (CELLS - 1) + SPAN
    values = np.full((periods, CELLS, 1), np.nan, dtype=np.float32)
    reported = np.zeros((periods, CELLS), dtype=bool)
    hour = (np.arange(SPAN) % 288) / 12.0
    for cell in range(CELLS):
        rows = slice(cell * APART, cell * APART + SPAN)
        values[rows, cell, 0] = 100 + 40 * np.sin(hour / 24 * 2 * np.pi) + rng.normal(0, 3, SPAN)
        reported[rows, cell] = True
    reported[100, 0] = False
    values[100, 0, 0] = np.nan
    return KpmArrays(
        times_ms=1_700_006_400_000 + np.arange(periods, dtype=np.int64) * PERIOD_MS,
        node_ids=tuple(f"n{c}" for c in range(CELLS)),
        cell_ids=tuple(f"c{c}" for c in range(CELLS)),
        measurements=("load",),
        values=values,
        reported=reported,
    )


def test_cells_of_other_dates_are_aligned_keeping_their_own_times() -> None:
    arrays = _staggered()
    aligned = align(arrays)
    assert aligned.values.shape == (SPAN, CELLS, 1) and aligned.phase_ms is not None
    rows, cols = np.nonzero(aligned.reported)
    original_rows, original_cols = np.nonzero(arrays.reported)
    assert sorted(zip(cols.tolist(), aligned.cell_times_ms(rows, cols).tolist(), strict=True)) == sorted(
        zip(original_cols.tolist(), arrays.times_ms[original_rows].tolist(), strict=True)
    )
    for cell in range(CELLS):
        mine, theirs = aligned.reported[:, cell], arrays.reported[:, cell]
        np.testing.assert_array_equal(aligned.values[mine, cell], arrays.values[theirs, cell])


def test_training_steps_each_cell_over_its_own_span_only(monkeypatch: pytest.MonkeyPatch) -> None:
    stepped: list[int] = []
    session_of = passes._session

    class Counting:
        """The pass's ONNX Runtime session, noting how many cells each period steps."""

        def __init__(self, onnx_bytes: bytes) -> None:
            self.session = session_of(onnx_bytes)

        def run(self, names: Any, feeds: dict[str, np.ndarray]) -> Any:
            stepped.append(len(feeds["x"]))
            return self.session.run(names, feeds)

        def get_inputs(self) -> Any:
            return self.session.get_inputs()

    monkeypatch.setattr(passes, "_session", Counting)
    fitted = fit_step(
        _staggered(), PERIOD_MS / 1000, DetectorConfig(epochs=1, warmup_periods=12, hidden=8, batch_size=256)
    )
    fit_rows = int(SPAN * (1 - CALIBRATION_SHARE))
    steps = 3 * fit_rows + SPAN  # recursion, network context and calibration over the fit rows; thresholds: all
    parts = min(passes.PARTS, CELLS)
    assert len(stepped) == steps * parts, "one step a row and part of the aligned spans, not of the union of all dates"
    assert sum(stepped) == CELLS * steps, "every cell stepped over its span, the missing record included"
    assert np.isfinite(fitted.thresholds.score)


def test_the_trained_model_does_not_depend_on_how_many_parts_step_the_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """The passes keep what one part would, in its order: the network trains on the same minibatches."""
    config = DetectorConfig(epochs=2, warmup_periods=12, hidden=8, batch_size=64)
    trained = []
    for parts in (1, 3):
        monkeypatch.setattr(passes, "PARTS", parts)
        trained.append(fit_step(_staggered(), PERIOD_MS / 1000, config))
    one, three = trained
    assert three.thresholds.score == pytest.approx(one.thresholds.score, rel=1e-5)
    for name, weights in one.step.state_dict().items():
        np.testing.assert_allclose(three.step.state_dict()[name].numpy(), weights.numpy(), rtol=1e-4, atol=1e-6)
