"""The main detector's baseline error against a simulator export's truth: its units, what it leaves out,
and that it measures a detector that learns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from e2sim.export import export_world
from e2sim.world import World, WorldConfig
from models.detector import DetectorConfig
from models.normal_error import MS_PER_HOUR, detector_normal_error, normal_error
from ranomaly.cli import main
from ranomaly_contracts.dataset import read_dataset, to_arrays


def _grid(days: int, cells: int = 3, measurements: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hourly times over some days, a truth with a daily shape, and a normal run whose noise has a known
    standard deviation per hour of day (1 + hour / 10)."""
    times = np.arange(days * 24, dtype=np.int64) * MS_PER_HOUR
    hour = (times // MS_PER_HOUR) % 24
    truth = np.sin(2 * np.pi * hour / 24)[:, None, None] * np.ones((1, cells, measurements))
    signs = np.where(np.arange(days * 24) // 24 % 2 == 0, 1.0, -1.0)  # +sd on even days, -sd on odd days
    normal = truth + (signs * (1 + hour / 10))[:, None, None]
    return times, truth, normal


def test_the_error_is_counted_in_true_noise_standard_deviations_per_day() -> None:
    times, truth, normal = _grid(days=2)
    nothing = np.zeros(truth.shape[:2], dtype=bool)
    assert np.allclose(normal_error(truth, truth, normal, times, nothing), 0.0)
    spread = 1 + (times // MS_PER_HOUR % 24) / 10  # the noise sd of each hour, as built
    off = truth + 2.0 * spread[:, None, None]  # two noise sds everywhere
    off[24:] = truth[24:] - 0.5 * spread[24:, None, None]  # half of one on the second day
    assert normal_error(off, truth, normal, times, nothing) == pytest.approx(np.array([[2.0, 2.0], [0.5, 0.5]]))


def test_excluded_cell_periods_and_noiseless_hours_do_not_count_and_a_day_with_none_left_is_nan() -> None:
    times, truth, normal = _grid(days=2)
    off = truth.copy()
    off[30, 1] += 1000.0  # a huge error in one cell-period of the second day ...
    excluded = np.zeros(truth.shape[:2], dtype=bool)
    excluded[30, 1] = True  # ... that is left out
    excluded[:24] = True  # and the whole first day
    normal[:, 2, 0] = truth[:, 2, 0]  # a measurement of one cell without noise (no unit to count in) ...
    off[:, 2, 0] += 5.0  # ... does not count either
    rms = normal_error(off, truth, normal, times, excluded)
    assert np.isnan(rms[0]).all()
    assert np.allclose(rms[1], 0.0)


def test_a_trained_detector_knows_the_normal_better_after_days_of_learning(tmp_path: Path) -> None:
    export_world(World(WorldConfig(seed=4, n_cells=8, events_per_cell_day=0.5)), tmp_path, days=3, period_s=300)
    result = detector_normal_error(read_dataset(tmp_path), DetectorConfig(epochs=1, warmup_periods=12))
    assert result.rms.shape == (3, len(result.measurements))
    assert np.isfinite(result.rms).all()
    daily = result.rms.mean(axis=1)
    assert daily[2] < daily[0], "the first day's profile is still being learnt"
    assert daily[2] < 3.0, "a learnt baseline is within a few noise sds of the truth"


def test_the_command_prints_a_row_per_measurement_and_a_column_per_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export_world(World(WorldConfig(seed=4, n_cells=6, events_per_cell_day=0.0)), tmp_path, days=2, period_s=900)
    assert main(["--log-level", "WARNING", "normal-error", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = datetime.fromtimestamp(int(to_arrays(read_dataset(tmp_path)).times_ms[0]) / 1000, UTC)
    days = [(first + timedelta(days=d)).strftime("%a") for d in range(2)]
    assert lines[1].split() == ["measurement", *days]
    assert lines[-1].startswith("mean") and len(lines[-1].split()) == 3
    assert len(lines) == 2 + 12 + 1  # title, header, one row per catalogue measurement, mean
