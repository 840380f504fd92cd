"""`ranomaly eval` and the train / score commands, on a small labelled simulator dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2sim.export import export_world
from e2sim.world import World, WorldConfig
from models.evaluation import EvalConfig, format_table, recall_by_subtlety, run_evaluation
from ranomaly.cli import main
from ranomaly_contracts.dataset import label_mask, read_dataset, to_arrays

KEYS = {"composite_f1", "event_recall", "point_precision", "point_f1", "pr_auc", "vus_pr", "fpr",
        "false_alarms_per_1k_cell_hours", "median_delay_periods", "pa_f1"}  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of 20 cells at 5 minutes, labelled."""
    folder = tmp_path_factory.mktemp("eval") / "ds"
    export_world(World(WorldConfig(seed=13, n_cells=20, events_per_cell_day=1.5)), folder, days=4, period_s=300)
    return folder


@pytest.fixture(scope="module")
def result(dataset: Path) -> dict[str, object]:
    """The fast evaluation of the dataset."""
    return run_evaluation(read_dataset(dataset), EvalConfig(fast=True))


def test_eval_reports_every_detector_with_the_named_metrics(result: dict[str, object]) -> None:
    models = result["models"]
    assert isinstance(models, dict)
    assert result["main"] == "streaming-detector"
    expected = {"streaming-detector", "streaming-detector@own", "seed-autoencoder", "seed-autoencoder@p95",
                "isolation-forest", "pca", "three-sigma", "random", "always-alarm"}  # fmt: skip
    assert set(models) == expected
    for name, row in models.items():
        assert KEYS <= set(row), name
    assert set(result["main_recall_by_subtlety"]) == {"clear", "subtle"}  # type: ignore[call-overload]
    json.dumps(result, default=float)  # the --json output is plain JSON
    table = format_table(result)
    assert table.splitlines()[1].startswith("streaming-detector") and "forecaster" in table


def test_event_recall_is_split_by_the_labels_subtle_flag(dataset: Path) -> None:
    data = read_dataset(dataset)
    assert data.labels is not None
    arrays = to_arrays(data)
    everything = slice(0, len(arrays.times_ms))
    alarms_on_clear_events = label_mask(arrays, data.labels[~data.labels["subtle"]]).astype(np.float64)
    split = recall_by_subtlety(data, arrays, alarms_on_clear_events, 0.5, everything)
    assert split == {"clear": 1.0, "subtle": 0.0}
    without_flag = replace(data, labels=data.labels.drop(columns="subtle"))
    assert recall_by_subtlety(without_flag, arrays, alarms_on_clear_events, 0.5, everything) == {}


def test_always_alarm_gets_only_what_composite_f1_gives_for_free(result: dict[str, object]) -> None:
    row = result["models"]["always-alarm"]  # type: ignore[index]
    rate = row["point_precision"]
    assert row["event_recall"] == 1.0 and row["fpr"] == 1.0
    assert row["composite_f1"] == pytest.approx(2 * rate / (1 + rate))
    assert row["composite_f1"] < 0.2, "alarming always must not look good"


def test_thresholds_are_set_on_validation_at_the_alarm_rate(result: dict[str, object]) -> None:
    split = result["split"]
    assert split["alarm_rate"] == 0.005  # type: ignore[index]
    for name, row in result["models"].items():  # type: ignore[attr-defined]
        if name not in ("always-alarm", "seed-autoencoder@p95", "streaming-detector@own"):
            assert row["fpr"] < 0.05, f"{name} alarms far beyond the validation rate on the test part"


def test_forecaster_is_compared_with_its_baselines(result: dict[str, object]) -> None:
    methods = result["forecaster"]["methods"]  # type: ignore[index]
    assert set(methods) == {"model", "seasonal_naive", "persistence"}
    assert all(np.isfinite(m["nmae"]) and m["nmae"] > 0 for m in methods.values())


def test_eval_refuses_a_dataset_without_labels(dataset: Path, tmp_path: Path) -> None:
    copy = read_dataset(dataset)
    copy.labels = None
    with pytest.raises(ValueError, match="needs labels"):
        run_evaluation(copy, EvalConfig(fast=True))


def test_train_then_score_writes_the_scores_contract(dataset: Path, tmp_path: Path, capsys: object) -> None:
    artifact, scores = tmp_path / "artifact", tmp_path / "scores.csv"
    assert main(["train", "--data", str(dataset), "--out", str(artifact), "--no-forecaster"]) == 0
    assert (artifact / "model.onnx").is_file() and (artifact / "manifest.json").is_file()
    assert main(["score", "--model", str(artifact), "--data", str(dataset), "--out", str(scores)]) == 0
    frame = pd.read_csv(scores)
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert list(frame.columns[:5]) == ["timestamp", "node_id", "cell_id", "score", "verdict"]
    assert list(frame.columns[5:]) == [f"dev.{m}" for m in manifest["measurements"]]
    assert len(frame) == len(read_dataset(dataset).kpm)
    first_rows = frame.groupby("cell_id").head(manifest["warmup_periods"])
    assert first_rows["verdict"].isna().all(), "warming-up rows have no verdict"
    assert frame["verdict"].dropna().isin([0, 1]).all()
    verdicts = frame["verdict"].dropna()
    assert 0 < verdicts.mean() < 0.2
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "rows scored by model" in out and "(detector " in out and "forecaster" not in out
    gains = manifest["training"]["context_gain"]
    assert manifest["context"] == "node-period" and set(gains) == set(manifest["measurements"])
    said = out.split("network context: ")[1].splitlines()[0]
    assert all((f"{name} {gain:.2f}" in said) == (gain >= 0.05) for name, gain in gains.items()), said
    timing = manifest["training"]
    assert 0 < timing["detector_seconds"] <= timing["seconds"] and "forecaster_seconds" not in timing

    assert main(["alarms", "--model", str(artifact), "--data", str(dataset), "--budget", "2"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    table = [line.split() for line in out.splitlines()[1:] if line.strip()[:1].isdigit()]
    thresholds, alarms = [float(row[0]) for row in table], [float(row[2]) for row in table]
    assert manifest["thresholds"]["score"] == pytest.approx(thresholds[4], rel=1e-3)
    runs = (frame["score"] >= thresholds[4]) & frame["verdict"].notna()
    assert alarms[4] > 0 and runs.any(), "the model's own threshold flags some periods of a labelled dataset"
    chosen = float(out.split("threshold ")[-1].split()[0])
    assert all(rate <= 2 for threshold, rate in zip(thresholds, alarms, strict=True) if threshold >= chosen)
    assert '"mode": "sigma"' in out


def test_score_refuses_a_corrupt_artifact(dataset: Path, tmp_path: Path, capsys: object) -> None:
    artifact = tmp_path / "artifact"
    assert main(["train", "--data", str(dataset), "--out", str(artifact), "--no-forecaster"]) == 0
    model = artifact / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert main(["score", "--model", str(artifact), "--data", str(dataset), "--out", str(tmp_path / "s.csv")]) == 2
    assert "sha256" in capsys.readouterr().err  # type: ignore[attr-defined]
