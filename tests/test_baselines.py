"""The baselines: shapes, NaN where unreported, determinism, causality and what each one computes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from e2sim.world import World, WorldConfig
from models.api import Detector
from models.baselines import (
    AlwaysAlarmDetector,
    IsolationForestDetector,
    PcaDetector,
    RandomDetector,
    SeedAutoencoder,
    ThreeSigmaDetector,
    all_baselines,
    causal_features,
)
from models.data import select
from ranomaly_contracts.dataset import KpmArrays

PERIOD_MS = 300_000
N_CELLS = 12
N_PERIODS = 2 * 288  # two days of 5-minute periods
TRAIN_PERIODS = 346
NAMES = ["seed-autoencoder", "isolation-forest", "pca", "three-sigma", "random", "always-alarm"]
REAL = NAMES[:4]
WINDOW = 10  # the Isolation Forest's default window


def _arrays(values: np.ndarray, reported: np.ndarray, cell_ids: tuple[str, ...], first_ms: int = 0) -> KpmArrays:
    return KpmArrays(
        times_ms=first_ms + np.arange(len(values), dtype=np.int64) * PERIOD_MS,
        node_ids=tuple(f"node-{i // 3}" for i in range(len(cell_ids))),
        cell_ids=cell_ids,
        measurements=tuple(f"m{k}" for k in range(values.shape[2])),
        values=values.astype(np.float32),
        reported=reported,
    )


@pytest.fixture(scope="module")
def network() -> KpmArrays:
    """Two days of a 12-cell network with anomalies, and a few unreported cell-periods in both parts.

    The unreported ones of the test part keep their values, so a detector must look at `reported`.
    """
    world = World(WorldConfig(seed=21, n_cells=N_CELLS, events_per_cell_day=2.0))
    first = world.stream_start(PERIOD_MS, 0, realtime=False).first_period
    values = world.block(first, N_PERIODS, PERIOD_MS).values.copy()
    reported = np.ones(values.shape[:2], dtype=bool)
    reported[100:120, 3] = False
    values[100:120, 3] = np.nan
    reported[TRAIN_PERIODS + 20 : TRAIN_PERIODS + 31, 5] = False
    return _arrays(values, reported, world.cell_ids, first * PERIOD_MS)


@pytest.fixture(scope="module")
def parts(network: KpmArrays) -> tuple[KpmArrays, KpmArrays]:
    """Training part and test part, split by time."""
    return select(network, slice(0, TRAIN_PERIODS)), select(network, slice(TRAIN_PERIODS, None))


@pytest.fixture(scope="module")
def fitted(parts: tuple[KpmArrays, KpmArrays]) -> dict[str, Detector]:
    """Every baseline (fast settings) fitted on the training part, by name."""
    detectors = all_baselines(seed=0, fast=True)
    for detector in detectors:
        detector.fit(parts[0])
    return {detector.name: detector for detector in detectors}


def _by_name(name: str, seed: int = 0) -> Detector:
    return next(d for d in all_baselines(seed=seed, fast=True) if d.name == name)


def test_all_baselines_come_in_a_fixed_order() -> None:
    assert [d.name for d in all_baselines()] == NAMES
    assert [d.name for d in all_baselines(seed=3, fast=True)] == NAMES
    assert [type(d) for d in all_baselines()] == [
        SeedAutoencoder,
        IsolationForestDetector,
        PcaDetector,
        ThreeSigmaDetector,
        RandomDetector,
        AlwaysAlarmDetector,
    ]


@pytest.mark.parametrize("name", NAMES)
def test_shape_nan_where_unreported_and_scores_elsewhere(
    name: str, fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]
) -> None:
    test = parts[1]
    scores = fitted[name].score(test)
    assert scores.shape == test.reported.shape and scores.dtype == np.float64
    assert np.isnan(scores[~test.reported]).all()
    expected = test.reported.copy()
    if name == "isolation-forest":
        expected[: WINDOW - 1] = False
    if name == "three-sigma":
        expected &= ~np.isnan(test.values).all(axis=2)
    assert np.isfinite(scores[expected]).all()
    assert np.isnan(scores[~expected]).all()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str, fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]) -> None:
    again = _by_name(name)
    again.fit(parts[0])
    np.testing.assert_array_equal(again.score(parts[1]), fitted[name].score(parts[1]))


@pytest.mark.parametrize("name", ["seed-autoencoder", "isolation-forest", "random"])
def test_the_seed_matters(name: str, fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]) -> None:
    other = _by_name(name, seed=1)
    other.fit(parts[0])
    assert not np.array_equal(other.score(parts[1]), fitted[name].score(parts[1]), equal_nan=True)


@pytest.mark.parametrize("name", REAL)
def test_a_gross_anomaly_scores_above_normal_rows(
    name: str, fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]
) -> None:
    test = parts[1]
    values = test.values.copy()
    rows, cell = slice(60, 65), 7
    values[rows, cell] *= 20
    scores = fitted[name].score(replace(test, values=values))
    injected = np.zeros(test.reported.shape, dtype=bool)
    injected[rows, cell] = True
    others = scores[~injected & ~np.isnan(scores)]
    assert scores[injected].min() > np.percentile(others, 95)
    assert scores[injected].mean() > np.percentile(others, 99)


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_causal(name: str, fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]) -> None:
    test = parts[1]
    start = 100
    values = test.values.copy()
    values[start:] = values[start:] * 3 + 1
    values[start + 5 :, 2] = np.nan
    reported = test.reported.copy()
    reported[start + 10 :, 4] = False
    before, after = fitted[name].score(test), fitted[name].score(replace(test, values=values, reported=reported))
    np.testing.assert_array_equal(after[:start], before[:start])
    if name in REAL:
        assert not np.array_equal(after[start:], before[start:], equal_nan=True)


def test_causal_features_match_the_seed_designs_pandas_features() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(50, 10, size=(60, 2, 3)).astype(np.float32)
    values[[7, 30, 31], 1, 2] = np.nan
    features = causal_features(values, 5)
    assert features.shape == (60, 2, 12)
    for cell in range(2):
        for k in range(3):
            series = pd.Series(values[:, cell, k].astype(np.float64))
            expected = [series.rolling(5).mean(), series.rolling(5).std(), series.shift(1), series.diff()]
            for f, column in enumerate(expected):
                np.testing.assert_allclose(features[:, cell, f * 3 + k], column.to_numpy(), rtol=1e-9, atol=1e-9)


def test_seed_autoencoder_threshold_is_the_95th_percentile_of_its_validation_errors(
    fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]
) -> None:
    detector = fitted["seed-autoencoder"]
    assert isinstance(detector, SeedAutoencoder)
    train = parts[0]
    cut = TRAIN_PERIODS - round(TRAIN_PERIODS * 0.15)
    validation = select(train, slice(cut, None))
    errors = detector.score(validation)[validation.reported]
    assert detector.own_threshold == pytest.approx(np.percentile(errors, 95), rel=1e-9)
    assert not detector.own_threshold == pytest.approx(np.percentile(detector.score(train)[train.reported], 95))
    assert 1 <= len(detector.validation_losses) <= detector.epochs


def test_three_sigma_uses_each_cells_statistics_and_pooled_ones_for_a_held_out_cell(
    parts: tuple[KpmArrays, KpmArrays],
) -> None:
    train, test = parts
    held_out = 4
    kept = np.array([c for c in range(N_CELLS) if c != held_out])
    detector = ThreeSigmaDetector()
    detector.fit(select(train, cells=kept))
    scores = detector.score(test)

    seen = np.where(train.reported[:, kept, None], train.values[:, kept], np.nan).astype(np.float64)
    pooled = seen.reshape(-1, seen.shape[2])
    pooled_z = np.abs(test.values[:, held_out] - np.nanmean(pooled, axis=0)) / np.nanstd(pooled, axis=0, ddof=1)
    expected_held_out = np.nanmax(pooled_z, axis=1)
    expected_held_out[~test.reported[:, held_out]] = np.nan
    np.testing.assert_allclose(scores[:, held_out], expected_held_out, rtol=1e-6)

    own = train.values[train.reported[:, 0], 0].astype(np.float64)
    own_z = np.abs(test.values[:, 0] - np.nanmean(own, axis=0)) / np.nanstd(own, axis=0, ddof=1)
    np.testing.assert_allclose(scores[:, 0], np.nanmax(own_z, axis=1), rtol=1e-6)
    assert not np.allclose(scores[:, 0], np.nanmax(np.abs(test.values[:, 0] - np.nanmean(pooled, 0)), axis=1))


def test_three_sigma_gives_nan_to_a_row_without_values_and_ignores_single_missing_values() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, size=(40, 2, 3))
    reported = np.ones((40, 2), dtype=bool)
    train = _arrays(values, reported, ("a", "b"))
    detector = ThreeSigmaDetector()
    detector.fit(train)
    probe = np.zeros((3, 2, 3))
    probe[0, 0] = np.nan
    probe[1, 0, 1] = np.nan
    probe[2, 0, 2] = 1e6
    scores = detector.score(_arrays(probe, np.ones((3, 2), dtype=bool), ("a", "b")))
    assert np.isnan(scores[0, 0]) and np.isfinite(scores[1, 0]) and scores[2, 0] > 1e5


def test_pca_scores_the_distance_from_the_kept_components() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, size=(500, 1, 1))
    values = np.concatenate([base, -base, 2 * base], axis=2)  # rank one: one component holds all variance
    train = _arrays(values, np.ones((500, 1), dtype=bool), ("a",))
    detector = PcaDetector()
    detector.fit(train)
    probe = np.array([[[1.0, -1.0, 2.0]], [[1.0, 1.0, 2.0]], [[3.0, -3.0, 6.0]]])
    scores = detector.score(_arrays(probe, np.ones((3, 1), dtype=bool), ("a",)))
    assert scores[0, 0] == pytest.approx(0, abs=1e-9) and scores[2, 0] == pytest.approx(0, abs=1e-9)
    assert scores[1, 0] > 1


def test_isolation_forest_fits_on_a_subsample_when_the_training_part_is_large(
    fitted: dict[str, Detector], parts: tuple[KpmArrays, KpmArrays]
) -> None:
    small = IsolationForestDetector(seed=0, n_estimators=25, max_fit_rows=300)
    small.fit(parts[0])
    scores, full = small.score(parts[1]), fitted["isolation-forest"].score(parts[1])
    assert np.array_equal(np.isnan(scores), np.isnan(full)) and not np.allclose(scores, full, equal_nan=True)


def test_always_alarm_is_constant_and_random_is_uniform(parts: tuple[KpmArrays, KpmArrays]) -> None:
    test = parts[1]
    always = AlwaysAlarmDetector().score(test)
    reported = always[test.reported]
    assert (reported == 1.0).all()
    threshold = np.quantile(reported, 0.99)
    assert (reported >= threshold).all()
    random = RandomDetector(seed=5).score(test)[test.reported]
    assert 0 <= random.min() and random.max() < 1 and abs(random.mean() - 0.5) < 0.05


@pytest.mark.parametrize("name", REAL)
def test_scoring_before_fitting_fails(name: str, parts: tuple[KpmArrays, KpmArrays]) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _by_name(name).score(parts[1])
