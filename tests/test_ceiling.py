"""The oracle ceiling: recomputes a simulator export's normal, keeps to its false-alarm budget, catches
clear events, and refuses exports it cannot reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2sim import catalogue as cat
from e2sim.export import export_world
from e2sim.world import World, WorldConfig
from models import metrics
from models.ceiling import ceiling, noise_spread, oracle_scores, simulated_runs
from models.data import plan_split
from ranomaly.cli import main
from ranomaly_contracts.dataset import read_dataset, to_arrays


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of 12 cells at 5 minutes, many events."""
    folder = tmp_path_factory.mktemp("ceiling") / "ds"
    export_world(World(WorldConfig(seed=11, n_cells=12, events_per_cell_day=2.0)), folder, days=3, period_s=300)
    return folder


def test_without_events_the_normal_run_is_the_export_and_the_truth_is_its_noise_free_middle(tmp_path: Path) -> None:
    export_world(World(WorldConfig(seed=5, n_cells=6, events_per_cell_day=0.0)), tmp_path, days=1, period_s=300)
    dataset = read_dataset(tmp_path)
    values, truth, normal = simulated_runs(dataset, to_arrays(dataset))
    np.testing.assert_allclose(normal, values, rtol=1e-6)
    sinr_noise = values[..., cat.SINR] - truth[..., cat.SINR]
    assert abs(np.nanmean(sinr_noise)) < 0.05
    assert 0.3 < np.nanstd(sinr_noise) < 0.5  # the simulator's SINR noise is 0.4 dB (more where vendors round it)


def test_the_threshold_keeps_to_the_false_alarm_budget_and_a_larger_budget_catches_more(export: Path) -> None:
    dataset = read_dataset(export)
    strict, loose = ceiling(dataset, max_false_alarms=0.0), ceiling(dataset, max_false_alarms=50.0)
    arrays = to_arrays(dataset)
    _, normal_scores = oracle_scores(*simulated_runs(dataset, arrays), arrays.times_ms)
    test = plan_split(arrays).test_rows
    assert strict.false_alarms_per_1k_cell_hours == 0.0
    assert strict.threshold > np.nanmax(normal_scores[test]) - 1e-3  # at budget 0 no normal score alarms
    assert 0.0 < loose.false_alarms_per_1k_cell_hours <= 50.0
    assert loose.threshold < strict.threshold
    assert loose.event_recall >= strict.event_recall
    # missing values are caught at any budget: a silent cell scores above every threshold
    assert strict.recall_by_kind.get("silent", 1.0) == 1.0
    quiet = np.zeros(normal_scores[test].shape, dtype=bool)
    assert metrics.false_alarms_per_1k_cell_hours(normal_scores[test], quiet, loose.threshold, 300.0) <= 50.0


def test_the_noise_spread_of_an_hour_leaves_its_missing_values_out() -> None:
    rng = np.random.default_rng(0)
    times_ms = np.arange(120, dtype=np.int64) * 60_000  # two hours of 60 s periods
    noise = rng.normal(0.0, 2.0, (120, 3, 2))
    noise[5, 0, 1] = np.nan  # one value missing in the first hour of cell 0's second measurement
    noise[60:, 2, 0] = np.nan  # and a whole hour without values
    spread = noise_spread(noise, times_ms)
    assert spread[0, 0, 1] == pytest.approx(np.nanstd(noise[:60, 0, 1]))
    assert 1.5 < spread[0, 0, 1] < 2.5
    assert np.isnan(spread[60, 2, 0]) and np.isfinite(spread[0, 2, 0])


def test_routine_missing_values_neither_alarm_nor_blind_the_oracle(export: Path) -> None:
    """The default export reports as real networks do (values missing in the normal run too): the noise's
    spread and the levels come from the values there are, a value missing in both runs scores nothing, and
    the threshold at a modest budget stays at the scale of normal noise (it was 1e9 when one missing value
    made a whole hour's spread NaN)."""
    dataset = read_dataset(export)
    arrays = to_arrays(dataset)
    values, truth, normal = simulated_runs(dataset, arrays)
    assert np.isnan(normal).any(), "the normal run has routine missing values"
    scores, normal_scores = oracle_scores(values, truth, normal, arrays.times_ms)
    assert np.isfinite(normal_scores).all() and np.isfinite(scores).all()
    budget = ceiling(dataset, max_false_alarms=5.0)
    assert budget.threshold < 10.0, "normal noise, not a missing value or a NaN spread, sets the threshold"
    assert budget.event_recall > 0.3


def test_an_edited_export_or_a_foreign_dataset_is_refused(export: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("kpm.csv", "labels.csv", "meta.json"):
        (edited / name).write_bytes((export / name).read_bytes())
    kpm = pd.read_csv(edited / "kpm.csv")
    kpm.loc[5, "RRC.ConnMean"] = kpm.loc[5, "RRC.ConnMean"] + 50
    kpm.to_csv(edited / "kpm.csv", index=False)
    with pytest.raises(ValueError, match="differ from what the simulator writes for seed 11"):
        ceiling(read_dataset(edited))

    meta = json.loads((export / "meta.json").read_text())
    del meta["generator"]
    (edited / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="needs an e2sim export"):
        ceiling(read_dataset(edited))


def test_the_command_prints_recall_per_kind(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ceiling", "--data", str(export), "--false-alarms", "5"]) == 0
    out = capsys.readouterr().out
    result = ceiling(read_dataset(export))
    assert f"event recall {result.event_recall:.3f}" in out
    for kind, recall in result.recall_by_kind.items():
        assert f"{kind:<14} {recall:.2f} of {result.events_by_kind[kind]} events" in out
