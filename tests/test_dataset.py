"""Exports follow the Datasets contract, read back identically, and bad datasets fail naming the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2sim import catalogue as cat
from e2sim.export import export_world
from e2sim.world import DEFAULT_START, World, WorldConfig
from ranomaly_contracts.dataset import DatasetError, label_mask, read_dataset, to_arrays, write_dataset
from ranomaly_contracts.kinds import ANOMALY_KINDS


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    """Two days of 12 cells at 5 minutes, as CSV."""
    world = World(WorldConfig(seed=11, n_cells=12, events_per_cell_day=2.0))
    folder = tmp_path_factory.mktemp("export") / "ds"
    export_world(world, folder, days=2, period_s=300)
    return world, folder


def test_default_export_is_honestly_difficult(tmp_path: Path) -> None:
    """The default dataset (seed 7, 60 cells, 7 days, 60 s): 2-6 % anomalous, a third of events subtle; the
    cells switched on part-way have no row before."""
    world = World(WorldConfig(seed=7, n_cells=60))
    summary = export_world(world, tmp_path, days=7, period_s=60, fmt="parquet")
    before = np.ceil((world.deployment.appears_s - DEFAULT_START.timestamp()) / 60).clip(0, 7 * 1440).sum()
    assert before > 0 and summary.rows == 60 * 7 * 1440 - before
    assert 0.02 <= summary.anomalous_fraction <= 0.06
    assert summary.subtle_share >= 1 / 3
    assert set(summary.kinds) == set(ANOMALY_KINDS)
    dataset = read_dataset(tmp_path)
    assert dataset.labels is not None
    assert dataset.labels["subtle"].mean() == pytest.approx(summary.subtle_share)
    mask = label_mask(to_arrays(dataset), dataset.labels)
    assert mask.mean() == pytest.approx(summary.anomalous_fraction)


def test_csv_export_follows_the_contract(small_export: tuple[World, Path]) -> None:
    _, folder = small_export
    header = (folder / "kpm.csv").read_text().splitlines()[0].split(",")
    assert header == ["timestamp", "node_id", "cell_id", *cat.MEASUREMENT_NAMES]
    first_row = (folder / "kpm.csv").read_text().splitlines()[1].split(",")
    assert first_row[0] == "2026-01-05T00:00:00Z"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["period_s"] == 300 and meta["units"] == cat.UNITS
    labels = pd.read_csv(folder / "labels.csv")
    assert list(labels.columns[:5]) == ["node_id", "cell_id", "kind", "start", "end"]
    assert labels["start"].str.endswith("Z").all()


def test_export_reads_back_as_the_world_streams_it(small_export: tuple[World, Path]) -> None:
    world, folder = small_export
    dataset = read_dataset(folder)
    arrays = to_arrays(dataset)
    assert arrays.cell_ids == world.cell_ids and arrays.measurements == cat.MEASUREMENT_NAMES
    first = world.stream_start(300_000, 0, realtime=False).first_period
    block = world.block(first, len(arrays.times_ms), 300_000)
    np.testing.assert_array_equal(arrays.times_ms, block.times_ms)
    np.testing.assert_allclose(arrays.values, block.values, rtol=1e-6, equal_nan=True)
    assert np.isnan(arrays.values).any(), "silent cells are written as empty values and read back as no value"
    assert arrays.reported.all()
    assert dataset.labels is not None
    assert len(dataset.labels) == len(world.labels(int(block.times_ms[0]), int(block.times_ms[-1]) + 1, 300_000))


def test_parquet_and_csv_hold_the_same_dataset(small_export: tuple[World, Path], tmp_path: Path) -> None:
    world, folder = small_export
    export_world(world, tmp_path / "exported", days=2, period_s=300, fmt="parquet")
    from_csv, from_parquet = read_dataset(folder), read_dataset(tmp_path / "exported")
    pd.testing.assert_frame_equal(from_csv.kpm, from_parquet.kpm, check_dtype=False)
    converted = read_dataset(write_dataset(from_csv, tmp_path / "converted", fmt="parquet"))
    pd.testing.assert_frame_equal(from_csv.kpm, converted.kpm)
    assert from_csv.labels is not None and converted.labels is not None
    pd.testing.assert_frame_equal(from_csv.labels, converted.labels)
    assert converted.meta["generator"] == from_csv.meta["generator"]


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "broken"
    shutil.copytree(folder, target)
    return target


def _edit_csv(path: Path, edit: object) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = edit(frame)  # type: ignore[operator]
    frame.to_csv(path, index=False)


def _shift_last_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame.iloc[-1, 0] = frame.iloc[-1, 0].replace(":00Z", ":30Z")
    return frame


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "meta.json").unlink(), "meta.json is missing"),
        (lambda d: (d / "meta.json").write_text('{"units": {}}'), "period_s must be a positive number"),
        (lambda d: _edit_csv(d / "kpm.csv", lambda f: f.drop(columns=["cell_id"])), "missing column cell_id (node"),
        (lambda d: _edit_csv(d / "kpm.csv", lambda f: f.assign(**{"DRB.UEThpDl": "fast"})), "'DRB.UEThpDl' row 0"),
        (lambda d: _edit_csv(d / "kpm.csv", lambda f: f.assign(timestamp="yesterday")), "not an ISO 8601 timestamp"),
        (lambda d: _edit_csv(d / "kpm.csv", lambda f: pd.concat([f, f.iloc[:1]])), "repeats cell"),
        (lambda d: _edit_csv(d / "kpm.csv", _shift_last_row), "off the 300.0 s grid of cell"),
        (lambda d: _edit_csv(d / "kpm.csv", lambda f: f.assign(Extra="x")), "column 'Extra' row 0 holds 'x'"),
        (lambda d: _edit_csv(d / "labels.csv", lambda f: f.assign(kind="gremlins")), "kind 'gremlins'"),
        (lambda d: _edit_csv(d / "labels.csv", lambda f: f.assign(cell_id="nowhere")), "cell 'nowhere'"),
        (lambda d: (d / "kpm.parquet").write_bytes(b""), "holds both kpm.csv and kpm.parquet"),
    ],
)
def test_bad_dataset_is_refused_naming_what_is_wrong(
    small_export: tuple[World, Path], tmp_path: Path, breakage: object, message: str
) -> None:
    folder = _copy(small_export[1], tmp_path)
    breakage(folder)  # type: ignore[operator]
    with pytest.raises(DatasetError) as refused:
        read_dataset(folder)
    assert message in str(refused.value)


def test_user_dataset_without_labels_and_with_gaps_is_accepted(tmp_path: Path) -> None:
    """A user's own data: other measurements, no labels, a missing row and an empty value."""
    (tmp_path / "kpm.csv").write_text(
        "timestamp,node_id,cell_id,RRU.PrbTotDl\n"
        "2025-03-01T10:00:00Z,n1,n1-a,40\n2025-03-01T10:00:00Z,n1,n1-b,\n"
        "2025-03-01T10:15:00Z,n1,n1-a,42\n"
    )
    (tmp_path / "meta.json").write_text(json.dumps({"period_s": 900, "units": {"RRU.PrbTotDl": "%"}}))
    dataset = read_dataset(tmp_path)
    arrays = to_arrays(dataset)
    assert dataset.labels is None and arrays.cell_ids == ("n1-a", "n1-b")
    assert arrays.reported.tolist() == [[True, True], [True, False]]
    assert np.isnan(arrays.values[0, 1, 0]) and arrays.values[1, 0, 0] == 42
