"""The detector on data shaped unlike the simulator's: routine missing values, a constant measurement,
contaminated training spans. Synthetic series, so that no simulator habit is assumed."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from models.detector import DetectorConfig, StreamingDetector
from ranomaly_contracts.dataset import KpmArrays

PERIOD_MS = 300_000
DAY = 288  # periods of 5 minutes
MEASUREMENTS = ("load", "ratio", "count", "flat")
LOAD, RATIO, COUNT, FLAT = range(4)
FAST = DetectorConfig(epochs=1, warmup_periods=12)
TRAIN_DAYS = 3
pytestmark = pytest.mark.timeout(900)  # each test may train a model: generous for a busy 2-core machine


def _series(seed: int, n_cells: int = 8, days: int = 4) -> KpmArrays:
    """A daily load, a ratio that is empty a third of the time (more at night), a small count and a
    measurement that never moves from 0.5."""
    rng = np.random.default_rng(seed)
    periods = days * DAY
    hour = (np.arange(periods) % DAY) / 12.0
    daily = 0.6 + 0.4 * np.sin((hour - 9.0) / 24.0 * 2 * np.pi)
    size = rng.uniform(50, 200, n_cells)
    values = np.empty((periods, n_cells, len(MEASUREMENTS)))
    values[:, :, LOAD] = daily[:, None] * size[None, :] * rng.lognormal(0.0, 0.05, (periods, n_cells))
    values[:, :, RATIO] = np.clip(rng.normal(95.0, 2.0, (periods, n_cells)), 0, 100)
    empty_chance = np.where(daily < 0.4, 0.6, 0.2)[:, None]
    values[:, :, RATIO][rng.random((periods, n_cells)) < empty_chance] = np.nan
    values[:, :, COUNT] = rng.poisson(3.0 * daily[:, None], (periods, n_cells))
    values[:, :, FLAT] = 0.5
    return KpmArrays(
        times_ms=np.arange(periods, dtype=np.int64) * PERIOD_MS + 1_700_006_400_000,
        node_ids=tuple(f"n{c // 2}" for c in range(n_cells)),
        cell_ids=tuple(f"c{c}" for c in range(n_cells)),
        measurements=MEASUREMENTS,
        values=values,
        reported=np.ones((periods, n_cells), dtype=bool),
    )


def _first_days(arrays: KpmArrays, days: int) -> KpmArrays:
    rows = days * DAY
    return replace(
        arrays, times_ms=arrays.times_ms[:rows], values=arrays.values[:rows], reported=arrays.reported[:rows]
    )


def _fit(arrays: KpmArrays) -> StreamingDetector:
    detector = StreamingDetector(FAST)
    detector.fit(_first_days(arrays, TRAIN_DAYS))
    return detector


@pytest.fixture(scope="module")
def data() -> KpmArrays:
    return _series(1)


@pytest.fixture(scope="module")
def fitted(data: KpmArrays) -> StreamingDetector:
    return _fit(data)


def _threshold(detector: StreamingDetector) -> float:
    assert detector.artifact is not None
    return detector.artifact.manifest.thresholds.score


def test_a_routinely_empty_value_does_not_alarm(fitted: StreamingDetector, data: KpmArrays) -> None:
    test = slice(TRAIN_DAYS * DAY, None)
    scores = fitted.stream(data).scores[test]
    empty = np.isnan(data.values[test][:, :, RATIO])
    assert empty.mean() > 0.2
    alarmed = (scores >= _threshold(fitted)) & empty
    assert alarmed.sum() <= 0.01 * empty.sum(), f"{alarmed.sum()} of {empty.sum()} empty ratios alarmed"


def test_a_measurement_never_empty_going_empty_alarms(fitted: StreamingDetector, data: KpmArrays) -> None:
    values = data.values.copy()
    start = TRAIN_DAYS * DAY + 100
    values[start : start + 6, 3, LOAD] = np.nan
    scores = fitted.stream(replace(data, values=values)).scores[:, 3]
    assert (scores[start + 2 : start + 6] >= _threshold(fitted)).all(), scores[start : start + 6]
    assert scores[start - 10 : start].max() < _threshold(fitted), "calm before it"


def test_a_constant_training_measurement_is_noted_and_neither_freezes_nor_warns(
    fitted: StreamingDetector, data: KpmArrays
) -> None:
    assert [note["measurement"] for note in fitted.notes] == ["flat"]
    values = data.values.copy()
    values[TRAIN_DAYS * DAY :, :, FLAT] = 0.7  # a new constant level after training
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fitted.stream(replace(data, values=values))
    test = slice(TRAIN_DAYS * DAY, None)
    assert (result.deviations[test][:, :, FLAT] == 0).all()
    scores = result.scores[test]
    for cell in range(scores.shape[1]):
        median = np.median(scores[:, cell])
        near = np.abs(scores[:, cell] - median) <= 0.01 * max(abs(median), 1e-9)
        assert near.mean() <= 0.5, f"cell {cell}: score frozen near {median:.3f}"
    assert (scores >= _threshold(fitted)).mean() < 0.02


def test_the_threshold_holds_when_three_percent_of_training_periods_are_anomalous(
    fitted: StreamingDetector, data: KpmArrays
) -> None:
    rng = np.random.default_rng(5)
    values = data.values.copy()
    rows = TRAIN_DAYS * DAY
    spans = 0
    while spans < 0.03 * rows * values.shape[1]:  # injected anomalies: surges of 12 periods
        cell, start = int(rng.integers(values.shape[1])), int(rng.integers(20, rows - 12))
        values[start : start + 12, cell, LOAD] *= 2.5
        values[start : start + 12, cell, COUNT] += 12
        spans += 12
    contaminated = _fit(replace(data, values=values))
    clean, dirty = _threshold(fitted), _threshold(contaminated)
    assert dirty == pytest.approx(clean, rel=0.15), (clean, dirty)


def test_a_measurement_empty_in_almost_every_training_record_still_trains_finite_thresholds(data: KpmArrays) -> None:
    values = data.values.copy()
    values[FAST.warmup_periods :, :, RATIO] = np.nan  # a ratio empty all night, trained at night: no record
    # complete in every measurement after the cells' warm-up
    detector = _fit(replace(data, values=values))
    assert [note["measurement"] for note in detector.notes] == ["ratio", "flat"]
    assert detector.thresholds is not None and np.isfinite(detector.thresholds.score)
    assert np.isfinite(list(detector.thresholds.deviation.values())).all()
    scores = detector.score(data)[TRAIN_DAYS * DAY :]
    assert np.isfinite(scores).all() and (scores >= _threshold(detector)).mean() < 0.05
