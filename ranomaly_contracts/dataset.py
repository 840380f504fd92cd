"""The dataset format (ARCHITECTURE.md, Datasets contract): reading, checking, writing, dense arrays.

A dataset is a folder:
- ``kpm.csv`` or ``kpm.parquet``: ``timestamp`` (ISO 8601, UTC), ``node_id``, ``cell_id``, then one
  column per measurement (TS 28.552 names); an empty value is "no value". One row per cell and period,
  every cell on its own grid of the period (cells may differ in phase).
- ``labels.csv`` (optional): ``node_id, cell_id, kind, start, end`` (inclusive, ISO 8601 UTC), extra
  columns allowed; ``kind`` is one of ranomaly_contracts.kinds.LABEL_KINDS.
- ``meta.json``: at least ``period_s``, and ``units`` (the unit of every measurement column).

What real exports need mended (no zone, a repeated row, no id columns, no unit) is mended or refused by
`ranomaly_contracts.dataset_mend`, as `ReadOptions` say; the dataset's `notes` list what was mended.

Needs pandas and pyarrow (the ``sim`` extra); the xApp never imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ranomaly_contracts.dataset_mend import (
    DatasetError as DatasetError,
)
from ranomaly_contracts.dataset_mend import (
    ReadOptions as ReadOptions,
)
from ranomaly_contracts.dataset_mend import (
    check_cell_grids,
    default_ids,
    default_units,
    drop_duplicates,
    parse_times,
    rename_columns,
)
from ranomaly_contracts.kinds import LABEL_KINDS

KEY_COLUMNS = ("timestamp", "node_id", "cell_id")
LABEL_COLUMNS = ("node_id", "cell_id", "kind", "start", "end")
KPM_CSV, KPM_PARQUET, LABELS_CSV, META_JSON = "kpm.csv", "kpm.parquet", "labels.csv", "meta.json"
FORMAT_VERSION = "ranomaly-dataset/1"


@dataclass
class Dataset:
    """A labelled KPM dataset in memory."""

    kpm: pd.DataFrame  # timestamp (datetime64 UTC), node_id, cell_id, one float64 column per measurement
    period_s: float
    units: dict[str, str]
    labels: pd.DataFrame | None = None  # node_id, cell_id, kind, start, end (datetime64 UTC), extras
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the reader mended or assumed, one line each

    @property
    def measurements(self) -> list[str]:
        """Measurement columns, in file order."""
        return [c for c in self.kpm.columns if c not in KEY_COLUMNS]


@dataclass(frozen=True)
class KpmArrays:
    """A dataset on a dense period grid: every cell at every period from the first to the last."""

    times_ms: np.ndarray  # int64 [T], collection start, ms since the epoch
    node_ids: tuple[str, ...]  # node of every cell
    cell_ids: tuple[str, ...]
    measurements: tuple[str, ...]
    values: np.ndarray  # float32 [T, N, K], NaN where no value or no report
    reported: np.ndarray  # bool [T, N], whether the cell has a row at that period
    phase_ms: np.ndarray | None = None  # int64 [N], each cell's collection times after the grid's; None: all 0

    def node_numbers(self) -> np.ndarray:
        """int64 [N]: the node of every cell, numbered in the order of the sorted node ids."""
        return np.unique(np.array(self.node_ids), return_inverse=True)[1].astype(np.int64)

    def cell_times_ms(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Collection start of each (row, cell) pair as the cell reported it."""
        times = self.times_ms[rows]
        return times if self.phase_ms is None else times + self.phase_ms[cols]


def epoch_ms(times: pd.Series) -> np.ndarray:
    """Datetimes as int64 milliseconds since the epoch."""
    return times.dt.as_unit("ms").astype("int64").to_numpy()


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_JSON
    if not path.is_file():
        raise DatasetError(f"{folder}: {META_JSON} is missing")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    period = meta.get("period_s")
    if not isinstance(period, int | float) or isinstance(period, bool) or period <= 0:
        raise DatasetError(f"{path}: period_s must be a positive number, got {period!r}")
    units = meta.setdefault("units", {})
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
        raise DatasetError(f"{path}: units must map measurements to their unit")
    return meta


def _read_kpm_frame(folder: Path) -> tuple[pd.DataFrame, str]:
    csv, parquet = folder / KPM_CSV, folder / KPM_PARQUET
    if csv.is_file() and parquet.is_file():
        raise DatasetError(f"{folder}: holds both {KPM_CSV} and {KPM_PARQUET}; keep one")
    if parquet.is_file():
        return pd.read_parquet(parquet), KPM_PARQUET
    if csv.is_file():
        return pd.read_csv(csv, dtype={"node_id": str, "cell_id": str, "timestamp": str}), KPM_CSV
    raise DatasetError(f"{folder}: neither {KPM_CSV} nor {KPM_PARQUET} is there")


def _check_kpm(
    frame: pd.DataFrame, name: str, period_s: float, units: dict[str, str], options: ReadOptions, notes: list[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The checked, sorted KPM frame and the unit of every measurement."""
    rename_columns(frame, units, name, options, notes)
    if "timestamp" not in frame.columns:
        raise DatasetError(f"{name}: missing column timestamp")
    default_ids(frame, name, notes)
    measurements = [c for c in frame.columns if c not in KEY_COLUMNS]
    if not measurements:
        raise DatasetError(f"{name}: no measurement columns after {', '.join(KEY_COLUMNS)}")
    units = default_units(measurements, units, name, notes)
    for column in measurements:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = numeric.isna() & frame[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{name}: column {column!r} row {row} holds {frame[column].iloc[row]!r}, not a number")
        if np.isinf(numeric.to_numpy(dtype=np.float64)).any():
            row = int(np.flatnonzero(np.isinf(numeric.to_numpy(dtype=np.float64)))[0])
            raise DatasetError(f"{name}: column {column!r} row {row} is infinite")
        frame[column] = numeric.astype(np.float64)
    for column in ("node_id", "cell_id"):
        if frame[column].isna().any():
            raise DatasetError(f"{name}: row {int(np.flatnonzero(frame[column].isna())[0])} has no {column}")
        frame[column] = frame[column].astype(str)
    frame["timestamp"] = parse_times(frame["timestamp"], f"{name} column 'timestamp'", options, notes, frame["cell_id"])
    nodes_per_cell = frame.groupby("cell_id")["node_id"].nunique()
    if (nodes_per_cell > 1).any():
        raise DatasetError(f"{name}: cell {nodes_per_cell[nodes_per_cell > 1].index[0]!r} appears under several nodes")
    frame = drop_duplicates(frame, name, options, notes)
    check_cell_grids(frame, name, period_s, epoch_ms(frame["timestamp"]))
    return frame.sort_values(["timestamp", "node_id", "cell_id"], kind="stable").reset_index(drop=True), units


def _read_labels(
    folder: Path, node_of_cell: dict[str, str], options: ReadOptions, notes: list[str]
) -> pd.DataFrame | None:
    path = folder / LABELS_CSV
    if not path.is_file():
        return None
    labels = pd.read_csv(path, dtype={"node_id": str, "cell_id": str, "kind": str, "start": str, "end": str})
    if "cell_id" not in labels.columns and len(node_of_cell) == 1:
        labels["cell_id"] = next(iter(node_of_cell))
    if "node_id" not in labels.columns and "cell_id" in labels.columns:
        labels["node_id"] = labels["cell_id"].map(node_of_cell)
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise DatasetError(f"{LABELS_CSV}: missing column(s) {', '.join(missing)}")
    unknown_kind = ~labels["kind"].isin(LABEL_KINDS)
    if unknown_kind.any():
        row = int(np.flatnonzero(unknown_kind)[0])
        raise DatasetError(
            f"{LABELS_CSV}: row {row} has kind {labels['kind'].iloc[row]!r}; known: {', '.join(LABEL_KINDS)} "
            "(other: an anomaly of unknown cause)"
        )
    unknown_cell = ~labels["cell_id"].isin(node_of_cell)
    if unknown_cell.any():
        row = int(np.flatnonzero(unknown_cell)[0])
        raise DatasetError(f"{LABELS_CSV}: row {row} names cell {labels['cell_id'].iloc[row]!r}, absent from the KPM")
    labels["start"] = parse_times(labels["start"], f"{LABELS_CSV} column 'start'", options, notes)
    labels["end"] = parse_times(labels["end"], f"{LABELS_CSV} column 'end'", options, notes)
    reversed_rows = labels["end"] < labels["start"]
    if reversed_rows.any():
        raise DatasetError(f"{LABELS_CSV}: row {int(np.flatnonzero(reversed_rows)[0])} ends before it starts")
    return labels


def read_dataset(folder: str | Path, options: ReadOptions | None = None) -> Dataset:
    """Read and check a dataset folder; raise DatasetError naming what is wrong and what would mend it."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a dataset folder")
    options = options or ReadOptions()
    notes: list[str] = []
    meta = _read_meta(root)
    frame, name = _read_kpm_frame(root)
    kpm, units = _check_kpm(frame, name, float(meta["period_s"]), meta["units"], options, notes)
    node_of_cell = dict(zip(kpm["cell_id"], kpm["node_id"], strict=True))
    labels = _read_labels(root, node_of_cell, options, notes)
    return Dataset(kpm=kpm, period_s=float(meta["period_s"]), units=units, labels=labels, meta=meta, notes=notes)


def format_times(times: pd.Series) -> pd.Series:
    """ISO 8601 UTC strings with a Z suffix, to the second (or millisecond when needed)."""
    has_ms = bool((times.dt.microsecond != 0).any())
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if has_ms else "%Y-%m-%dT%H:%M:%SZ")


def kpm_for_csv(kpm: pd.DataFrame, integer_columns: list[str] | None = None) -> pd.DataFrame:
    """The KPM frame as written to CSV: formatted timestamps, integer columns without decimals.

    integer_columns: measurements to write as integers; None infers them (every value integral).
    """
    out = kpm.copy()
    out["timestamp"] = format_times(out["timestamp"])
    for column in out.columns:
        if column in KEY_COLUMNS:
            continue
        if integer_columns is None:
            values = out[column].to_numpy(dtype=np.float64)
            finite = values[~np.isnan(values)]
            integral = bool(finite.size) and np.array_equal(finite, np.round(finite)) and np.abs(finite).max() < 2**53
        else:
            integral = column in integer_columns
        if integral:
            out[column] = out[column].round().astype("Int64")
    return out


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    """Write meta.json, adding the format version."""
    (folder / META_JSON).write_text(json.dumps({"format": FORMAT_VERSION, **meta}, indent=2) + "\n")


def write_labels(folder: Path, labels: pd.DataFrame) -> None:
    """Write labels.csv with ISO 8601 UTC start and end."""
    out = labels.copy()
    out["start"] = format_times(out["start"])
    out["end"] = format_times(out["end"])
    out.to_csv(folder / LABELS_CSV, index=False)


def write_dataset(dataset: Dataset, folder: str | Path, fmt: str = "csv") -> Path:
    """Write a dataset folder (kpm in ``csv`` or ``parquet``); return the folder."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        kpm_for_csv(dataset.kpm).to_csv(root / KPM_CSV, index=False)
    elif fmt == "parquet":
        dataset.kpm.to_parquet(root / KPM_PARQUET, index=False)
    else:
        raise ValueError(f"unknown KPM file format {fmt!r}; use csv or parquet")
    if dataset.labels is not None:
        write_labels(root, dataset.labels)
    write_meta(root, {**dataset.meta, "period_s": dataset.period_s, "units": dataset.units})
    return root


def to_arrays(dataset: Dataset) -> KpmArrays:
    """Place every row on the dense period grid; absent rows are unreported and hold NaN."""
    kpm = dataset.kpm
    period_ms = round(dataset.period_s * 1000)
    ms = epoch_ms(kpm["timestamp"])
    first = int(ms.min())
    rows = (ms - first) // period_ms
    cells = kpm[["node_id", "cell_id"]].drop_duplicates("cell_id").sort_values(["node_id", "cell_id"], kind="stable")
    cell_ids = tuple(cells["cell_id"])
    index = {cell: i for i, cell in enumerate(cell_ids)}
    cols = kpm["cell_id"].map(index).to_numpy()
    phase_ms = np.zeros(len(cell_ids), dtype=np.int64)
    phase_ms[cols] = (ms - first) % period_ms
    n_periods = int(rows.max()) + 1
    measurements = tuple(dataset.measurements)
    values = np.full((n_periods, len(cell_ids), len(measurements)), np.nan, dtype=np.float32)
    values[rows, cols] = kpm[list(measurements)].to_numpy(dtype=np.float32)
    reported = np.zeros((n_periods, len(cell_ids)), dtype=bool)
    reported[rows, cols] = True
    return KpmArrays(
        times_ms=first + np.arange(n_periods, dtype=np.int64) * period_ms,
        node_ids=tuple(cells["node_id"]),
        cell_ids=cell_ids,
        measurements=measurements,
        values=values,
        reported=reported,
        phase_ms=phase_ms if phase_ms.any() else None,
    )


def label_mask(arrays: KpmArrays, labels: pd.DataFrame | None) -> np.ndarray:
    """Boolean [T, N]: whether each cell-period lies inside a labelled event."""
    mask = np.zeros(arrays.reported.shape, dtype=bool)
    if labels is None or labels.empty:
        return mask
    index = {cell: i for i, cell in enumerate(arrays.cell_ids)}
    shift = 0 if arrays.phase_ms is None else arrays.phase_ms[labels["cell_id"].map(index).to_numpy()]
    starts = np.searchsorted(arrays.times_ms, epoch_ms(labels["start"]) - shift, "left")
    ends = np.searchsorted(arrays.times_ms, epoch_ms(labels["end"]) - shift, "right")
    for cell, start, end in zip(labels["cell_id"], starts, ends, strict=True):
        mask[start:end, index[cell]] = True
    return mask
