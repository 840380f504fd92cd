"""`ranomaly eval-real` on a tiny dataset folder in the layout of ../shared/data/real (never the shared data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.eval_real import find_datasets, first_test_rows, frozen_cells
from ranomaly.cli import main
from ranomaly_contracts.dataset import Dataset, read_dataset, to_arrays, write_dataset

PERIOD_S = 300
TRAIN, TEST = 400, 200  # periods per cell


def _write_tiny(root: Path) -> None:
    """Two cells, two measurements, a daily rhythm with noise, one spike event per cell in the test part."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2026-01-05", periods=TRAIN + TEST, freq=f"{PERIOD_S}s", tz="UTC")
    rhythm = np.sin(2 * np.pi * np.arange(TRAIN + TEST) * PERIOD_S / 86_400)
    frames, labels = [], []
    for c, cell in enumerate(("srv-a", "srv-b")):
        a = 10 + 3 * rhythm + rng.normal(0, 0.3, TRAIN + TEST)
        b = 0.5 + 0.0 * rhythm  # constant: a measurement that sits at one value
        start = TRAIN + 60 + 40 * c
        a[start : start + 8] += 8
        frames.append(pd.DataFrame({"timestamp": times, "node_id": "tiny", "cell_id": cell, "m00": a, "m01": b}))
        labels.append({"node_id": "tiny", "cell_id": cell, "kind": "degradation",
                       "start": times[start], "end": times[start + 7]})  # fmt: skip
    kpm = pd.concat(frames).sort_values(["timestamp", "cell_id"], kind="stable").reset_index(drop=True)
    kpm["timestamp"] = kpm["timestamp"].astype("datetime64[ms, UTC]")
    units = {"m00": "1", "m01": "1"}
    train = kpm[kpm["timestamp"] < times[TRAIN]].reset_index(drop=True)
    write_dataset(Dataset(kpm=train, period_s=PERIOD_S, units=units), root / "tiny" / "train", fmt="parquet")
    frame = pd.DataFrame(labels)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ms, UTC]")
    test = Dataset(kpm=kpm, period_s=PERIOD_S, units=units, labels=frame)
    write_dataset(test, root / "tiny" / "test", fmt="parquet")
    first = times[TRAIN].strftime("%Y-%m-%dT%H:%M:%SZ")
    split = {"first_test": first, "first_test_by_cell": {"srv-a": first, "srv-b": first}}
    (root / "tiny" / "test" / "split.json").write_text(json.dumps(split))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    _write_tiny(folder)
    return folder


@pytest.mark.timeout(600)  # one detector fit and ONNX export, slow on a loaded machine
def test_eval_real_prints_a_table_per_dataset_and_writes_json(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "real.json"
    assert main(["eval-real", "--root", str(root), "--fast", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("tiny: 2 cells x 2 measurements at 300 s; trained on 400 periods")
    results = json.loads(out.read_text())
    assert [r["dataset"] for r in results] == ["tiny"]
    models = results[0]["models"]
    assert list(models) == ["streaming-detector", "seed-autoencoder@p99", "seed-autoencoder@p95",
                            "isolation-forest@p99", "pca@p99", "three-sigma@3", "always-alarm"]  # fmt: skip
    for name, row in models.items():
        assert {"composite_f1", "vus_pr", "event_recall", "fpr", "false_alarms_per_1k_cell_hours",
                "median_delay_min", "frozen_cells"} <= set(row), name  # fmt: skip
        assert name in printed
    assert results[0]["test_events"] == 2 and results[0]["test_cell_periods"] == 2 * TEST
    assert models["always-alarm"]["frozen_cells"] == 2 and models["always-alarm"]["event_recall"] == 1.0


def test_a_missing_root_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-real", "--root", str(tmp_path / "absent")]) == 2
    assert "no real datasets at" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        find_datasets(tmp_path)


def test_the_test_part_starts_where_split_json_says(root: Path) -> None:
    arrays = to_arrays(read_dataset(root / "tiny" / "test"))
    split = json.loads((root / "tiny" / "test" / "split.json").read_text())
    np.testing.assert_array_equal(first_test_rows(arrays, split), [TRAIN, TRAIN])


def test_a_cell_is_frozen_when_its_score_stays_within_one_percent_of_a_value_most_of_the_time() -> None:
    rng = np.random.default_rng(1)
    moving = rng.uniform(0, 10, 100)
    stuck = np.where(np.arange(100) < 60, 2.0 + rng.uniform(-0.015, 0.015, 100), moving)
    briefly = np.where(np.arange(100) < 40, 2.0, moving)
    scores = np.stack([moving, stuck, briefly, np.full(100, np.nan)], axis=1)
    assert frozen_cells(scores) == 1
