"""The LSTM forecaster: shapes, determinism, ONNX parity, unseen cells, missing values, evaluation, accuracy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from e2sim.world import World, WorldConfig
from models.forecaster.config import ForecasterConfig
from models.forecaster.evaluation import evaluate_forecaster, last_present, smape_terms
from models.forecaster.export import export_onnx
from models.forecaster.features import DAY_MS, OUTPUT_NAMES, prepare_inputs, time_features
from models.forecaster.runtime import OnnxForecaster
from models.forecaster.training import Forecaster, train_forecaster
from ranomaly_contracts.dataset import KpmArrays

PERIOD_MS = 60_000
DAY = 1440
TINY = ForecasterConfig(window=48, horizon=12, patch=4, hidden=32, head_hidden=64, epochs=3, windows_per_epoch=8192)
TRAIN_CELLS = np.arange(6)  # cells 6 and 7 are never seen in training
UNSEEN_CELLS = np.array([6, 7])
TRAIN_ROWS, TEST_ROWS = slice(0, 2 * DAY), slice(2 * DAY, 3 * DAY)


def world_arrays(seed: int, n_cells: int, days: int) -> KpmArrays:
    """days of a simulated network at 60 s as KpmArrays."""
    world = World(WorldConfig(seed=seed, n_cells=n_cells))
    block = world.block(world.stream_start(PERIOD_MS, 0, realtime=False).first_period, days * DAY, PERIOD_MS)
    return KpmArrays(
        times_ms=block.times_ms,
        node_ids=tuple(world.node_ids[n] for n in world.cell_node),
        cell_ids=world.cell_ids,
        measurements=tuple(m.name for m in world.measurements),
        values=block.values,
        reported=np.ones(block.values.shape[:2], dtype=bool),
    )


@pytest.fixture(scope="module")
def arrays() -> KpmArrays:
    """Three days of an 8-cell network."""
    return world_arrays(seed=21, n_cells=8, days=3)


@pytest.fixture(scope="module")
def forecaster(arrays: KpmArrays) -> Forecaster:
    """The tiny forecaster trained on two days of six cells."""
    return train_forecaster(arrays, TINY, TRAIN_ROWS, TRAIN_CELLS)


@pytest.fixture(scope="module")
def onnx_path(forecaster: Forecaster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny forecaster exported, alone in its folder."""
    return export_onnx(forecaster, tmp_path_factory.mktemp("onnx") / "forecaster.onnx")


def histories(arrays: KpmArrays, origins: np.ndarray, cells: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Values [B, length, K] and times [B, length] before each origin."""
    rows = origins[:, None] + np.arange(-length, 0)
    return arrays.values[rows, cells[:, None]], arrays.times_ms[rows]


def random_windows(arrays: KpmArrays, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real histories of random cells and origins of the test day."""
    rng = np.random.default_rng(seed)
    origins = rng.integers(TEST_ROWS.start, TEST_ROWS.stop - 20, count)
    return histories(arrays, origins, rng.integers(0, len(arrays.cell_ids), count), TINY.window)


def test_time_features_and_inputs_have_the_documented_shapes() -> None:
    monday_noon = 4 * DAY_MS + DAY_MS // 2
    np.testing.assert_allclose(
        time_features(np.array([monday_noon])), [[0.0, -1.0, np.sin(np.pi / 7), np.cos(np.pi / 7)]], atol=1e-6
    )
    values = np.full((3, 5, 2), 7.0, dtype=np.float32)
    values[0, 1, 1] = np.nan
    times = np.broadcast_to(np.arange(5, dtype=np.int64) * PERIOD_MS, (3, 5))
    inputs = prepare_inputs(values, times, None, window=8, horizon=4, period_ms=PERIOD_MS)
    assert inputs.values.shape == inputs.mask.shape == (3, 8, 2) and inputs.time_features.shape == (3, 12, 4)
    assert inputs.values.dtype == inputs.mask.dtype == inputs.time_features.dtype == np.float32
    assert inputs.mask[:, :3].sum() == 0 and inputs.mask[0, 4, 1] == 0 and inputs.mask.sum() == 3 * 5 * 2 - 1
    assert np.isfinite(inputs.values).all() and inputs.values[0, 4, 1] == 0.0
    expected_times = np.arange(-3, 9) * PERIOD_MS  # padded before, forecast after
    np.testing.assert_array_equal(inputs.time_features[1], time_features(expected_times))


def test_forecasts_have_shape_dtype_and_finite_values(forecaster: Forecaster, arrays: KpmArrays) -> None:
    values, times = random_windows(arrays, 5, seed=1)
    forecast = forecaster.predict(values, times)
    assert forecast.shape == (5, TINY.horizon, len(arrays.measurements)) and forecast.dtype == np.float32
    assert np.isfinite(forecast).all()
    outputs = forecaster.run(prepare_inputs(values, times, None, TINY.window, TINY.horizon, PERIOD_MS))
    assert set(outputs) == set(OUTPUT_NAMES)
    assert outputs["center"].shape == outputs["scale"].shape == (5, len(arrays.measurements))
    assert (outputs["scale"] > 0).all()
    sinr = arrays.measurements.index("L1M.DL-SS-SINR.SSB")
    others = [k for k in range(len(arrays.measurements)) if k != sinr]
    assert (forecast[..., others] >= 0).all()  # counts, rates and volumes are never forecast negative


def test_training_is_deterministic_for_a_seed(arrays: KpmArrays) -> None:
    config = ForecasterConfig(window=24, horizon=12, patch=4, hidden=8, head_hidden=16, epochs=1, windows_per_epoch=512)
    values, times = random_windows(arrays, 4, seed=2)
    runs = [train_forecaster(arrays, c, TRAIN_ROWS, TRAIN_CELLS).predict(values, times) for c in (config, config)]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = ForecasterConfig(**{**config.__dict__, "seed": 1})
    assert not np.array_equal(runs[0], train_forecaster(arrays, other, TRAIN_ROWS, TRAIN_CELLS).predict(values, times))


def test_onnx_runtime_matches_torch(forecaster: Forecaster, arrays: KpmArrays, onnx_path: Path) -> None:
    assert [p.name for p in onnx_path.parent.iterdir()] == [onnx_path.name]  # weights inside, no side file
    runner = OnnxForecaster(onnx_path)
    assert (runner.window, runner.horizon, runner.period_ms) == (TINY.window, TINY.horizon, PERIOD_MS)
    assert runner.measurements == arrays.measurements
    rng = np.random.default_rng(3)
    real_values, real_times = random_windows(arrays, 33, seed=4)
    scale = 10.0 ** rng.uniform(-1, 5, (1, 1, len(arrays.measurements)))
    random_values = (rng.standard_normal(real_values.shape) * scale).astype(np.float32)
    random_values[rng.random(random_values.shape) < 0.2] = np.nan
    for values in (real_values, random_values, real_values[:1]):
        times = real_times[: len(values)]
        inputs = prepare_inputs(values, times, None, TINY.window, TINY.horizon, PERIOD_MS)
        torch_out, onnx_out = forecaster.run(inputs), runner.run(inputs)
        assert np.abs(torch_out["forecast_norm"] - onnx_out["forecast_norm"]).max() <= 1e-5
        np.testing.assert_allclose(onnx_out["forecast"], torch_out["forecast"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(onnx_out["center"], torch_out["center"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(onnx_out["scale"], torch_out["scale"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(runner.predict(values, times), onnx_out["forecast"])


def test_an_unseen_cell_is_forecast_better_than_seasonal_naive(forecaster: Forecaster, arrays: KpmArrays) -> None:
    scores = evaluate_forecaster(forecaster, arrays, TEST_ROWS, cells=UNSEEN_CELLS)
    assert scores["model"].nmae < 0.85 * scores["seasonal_naive"].nmae
    assert scores["model"].n_points > 0.9 * 2 * DAY * len(arrays.measurements)


def test_missing_history_values_are_masked_not_read(forecaster: Forecaster, arrays: KpmArrays) -> None:
    values, times = random_windows(arrays, 3, seed=5)
    gapped = values.copy()
    gapped[0, 10:30] = np.nan  # a silent spell
    gapped[1, :, 4] = np.nan  # one measurement never present
    gapped[2] = np.nan  # nothing at all
    forecast = forecaster.predict(gapped, times)
    assert np.isfinite(forecast).all()
    garbage = gapped.copy()
    garbage[np.isnan(gapped)] = 1e30  # values the mask hides must not matter
    np.testing.assert_array_equal(forecaster.predict(garbage, times, mask=~np.isnan(gapped)), forecast)
    inputs = prepare_inputs(gapped, times, None, TINY.window, TINY.horizon, PERIOD_MS)
    raw = replace(inputs, values=np.where(inputs.mask > 0, inputs.values, np.nan).astype(np.float32))
    np.testing.assert_array_equal(forecaster.run(raw)["forecast"], forecast)  # the network masks NaN itself
    short = forecaster.predict(values[:, -10:], times[:, -10:])  # a short history is padded as missing
    assert short.shape == forecast.shape and np.isfinite(short).all()


class _Constant:
    """A stand-in forecaster with 6-hour periods, a window of 2 and a horizon of 2, always forecasting (6, 0)."""

    period_ms, window, horizon = DAY_MS // 4, 2, 2

    def predict(self, values: np.ndarray, times_ms: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return np.broadcast_to(np.array([6.0, 0.0], dtype=np.float32), (len(values), 2, 2)).copy()


def test_evaluation_matches_a_hand_computed_case() -> None:
    cell = np.array([[1, 0], [2, 0], [3, 1], [4, 0], [5, 2], [6, np.nan], [7, 0], [8, 4]], dtype=np.float32)
    silent = cell.copy()
    silent[2:4] = np.nan  # its first history has no value (no persistence), its second no seasonal naive
    arrays = KpmArrays(
        times_ms=np.arange(8, dtype=np.int64) * _Constant.period_ms,
        node_ids=("n", "n"),
        cell_ids=("c", "silent"),
        measurements=("a", "b"),
        values=np.stack([cell, silent], axis=1),
        reported=np.ones((8, 2), dtype=bool),
    )
    # Origins 4 and 6 (a day is 4 periods). Targets a: 5 6 | 7 8; b: 2 - | 0 4 (the missing one is not scored).
    # Seasonal naive a: 1 2 | 3 4; b: 0 | 1 0. Persistence a: 4 4 | 6 6; b: 0 | 2 2 (row 5 missing: row 4).
    # Cell "silent" has no point with both baselines, so it adds nothing.
    scores = evaluate_forecaster(_Constant(), arrays, slice(4, 8))
    model, naive, persistence = scores["model"], scores["seasonal_naive"], scores["persistence"]
    assert model.n_points == naive.n_points == persistence.n_points == 7
    assert model.mae == pytest.approx({"a": 4 / 4, "b": 6 / 3})
    assert naive.mae == pytest.approx({"a": 16 / 4, "b": 7 / 3})
    assert persistence.mae == pytest.approx({"a": 6 / 4, "b": 6 / 3})
    assert model.smape["a"] == pytest.approx(200 * (1 / 11 + 0 + 1 / 13 + 2 / 14) / 4)
    assert model.smape["b"] == pytest.approx((200 + 0 + 200) / 3)  # actual 0 and forecast 0 is no error
    assert naive.smape["b"] == pytest.approx(200.0)
    assert persistence.smape["b"] == pytest.approx((200 + 200 + 200 * 2 / 6) / 3)
    assert model.nmae == pytest.approx((1 / 6.5 + 2 / 2) / 2)  # mean |actual|: a 6.5, b 2
    assert naive.nmae == pytest.approx((4 / 6.5 + (7 / 3) / 2) / 2)
    assert model.smape_overall == pytest.approx((model.smape["a"] + model.smape["b"]) / 2)
    # origins come no earlier than a day (seasonal naive) and a window (history) into the data
    assert evaluate_forecaster(_Constant(), arrays, slice(0, 8)) == scores


def test_metric_helpers() -> None:
    np.testing.assert_allclose(
        smape_terms(np.array([0.0, 1.0, -2.0, 0.0]), np.array([0.0, 3.0, 2.0, 5.0])), [0, 100, 200, 200]
    )
    history = np.array([[[1.0], [np.nan]], [[np.nan], [np.nan]]])
    np.testing.assert_array_equal(last_present(history), [[1.0], [np.nan]])


def test_the_tiny_model_beats_both_baselines_on_held_out_days_and_cells(
    forecaster: Forecaster, arrays: KpmArrays, onnx_path: Path
) -> None:
    scores = evaluate_forecaster(forecaster, arrays, TEST_ROWS)
    assert scores["model"].nmae < 0.85 * scores["seasonal_naive"].nmae
    assert scores["model"].nmae < 0.9 * scores["persistence"].nmae
    other_world = world_arrays(seed=22, n_cells=4, days=2)
    onnx_scores = evaluate_forecaster(OnnxForecaster(onnx_path), other_world, slice(DAY, 2 * DAY))
    assert onnx_scores["model"].nmae < 0.85 * onnx_scores["seasonal_naive"].nmae
    assert onnx_scores["model"].nmae < 0.9 * onnx_scores["persistence"].nmae


def test_config_rejects_a_patch_that_does_not_divide_the_window() -> None:
    with pytest.raises(ValueError, match="patch"):
        ForecasterConfig(window=50, patch=4)
