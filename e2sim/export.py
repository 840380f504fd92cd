"""`ranomaly sim export`: write the simulated network as a labelled dataset folder.

Labels carry two extra columns beside the contract's: ``intensity`` (0..1 within the kind's range) and
``subtle``, measured on the exported numbers: an event is subtle when every measurement it touches
stays, for the whole event, within the range the same cell's measurement spans over the export's
normal periods. Such an event can only be found from context (time of day, the other measurements),
never from a plain range check.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from e2sim import catalogue as cat
from e2sim.source import KpmBlock, Label
from e2sim.world import World
from ranomaly_contracts import dataset as ds

_CHUNK_CELL_PERIODS = 400_000


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    folder: Path
    rows: int
    nodes: int
    cells: int
    periods: int
    events: int
    anomalous_fraction: float  # labelled cell-periods / all cell-periods
    subtle_share: float  # subtle events / events
    kinds: dict[str, int]
    seconds: float


class _SubtletyTracker:
    """Ranges of every cell's normal values and of every event's values, accumulated chunk by chunk."""

    def __init__(self, labels: list[Label], cell_ids: tuple[str, ...], n_measurements: int) -> None:
        self._labels = labels
        self._cells = np.array([cell_ids.index(lb.cell_id) for lb in labels], dtype=np.int64)
        self._touched = [[cat.MEASUREMENT_INDEX[m] for m in lb.measurements] for lb in labels]
        shape = (len(cell_ids), n_measurements)
        self.normal_min = np.full(shape, np.inf)
        self.normal_max = np.full(shape, -np.inf)
        self._event_min = np.full((len(labels), n_measurements), np.inf)
        self._event_max = np.full((len(labels), n_measurements), -np.inf)
        self._event_missing = np.zeros(len(labels), dtype=bool)

    def update(self, block: KpmBlock) -> None:
        """Fold one block of periods into the ranges."""
        times = block.times_ms
        labelled = np.zeros(block.values.shape[:2], dtype=bool)
        for i, label in enumerate(self._labels):
            lo = int(np.searchsorted(times, label.first_ms, "left"))
            hi = int(np.searchsorted(times, label.last_ms, "right"))
            if lo >= hi:
                continue
            cell = int(self._cells[i])
            labelled[lo:hi, cell] = True
            touched = self._touched[i]
            segment = block.values[lo:hi, cell][:, touched].astype(np.float64)
            if np.isnan(segment).any():
                self._event_missing[i] = True
            self._event_min[i, touched] = np.fmin(
                self._event_min[i, touched], np.nanmin(segment, axis=0, initial=np.inf)
            )
            self._event_max[i, touched] = np.fmax(
                self._event_max[i, touched], np.nanmax(segment, axis=0, initial=-np.inf)
            )
        normal = np.where(labelled[..., None], np.nan, block.values.astype(np.float64))
        self.normal_min = np.fmin(self.normal_min, np.nanmin(np.where(np.isnan(normal), np.inf, normal), axis=0))
        self.normal_max = np.fmax(self.normal_max, np.nanmax(np.where(np.isnan(normal), -np.inf, normal), axis=0))

    def subtle(self) -> np.ndarray:
        """Whether each event stayed inside its cell's normal range on every measurement it touches."""
        flags = np.zeros(len(self._labels), dtype=bool)
        for i, touched in enumerate(self._touched):
            if self._event_missing[i] or not touched:
                continue
            cell = int(self._cells[i])
            inside = (self._event_min[i, touched] >= self.normal_min[cell, touched]) & (
                self._event_max[i, touched] <= self.normal_max[cell, touched]
            )
            flags[i] = bool(inside.all())
        return flags


class _KpmWriter:
    """Appends blocks to kpm.csv or kpm.parquet."""

    def __init__(self, folder: Path, fmt: str, world: World) -> None:
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"unknown KPM file format {fmt!r}; use csv or parquet")
        self._fmt = fmt
        self._path = folder / (ds.KPM_CSV if fmt == "csv" else ds.KPM_PARQUET)
        self._world = world
        self._integers = [m.name for m in cat.MEASUREMENTS if m.integer]
        self._parquet: pq.ParquetWriter | None = None
        self._started = False
        self.rows = 0

    def write(self, block: KpmBlock) -> None:
        """Append one block, cells in topology order within each period."""
        n_periods, n_cells, n_meas = block.values.shape
        values = cat.round_to_units(block.values.reshape(-1, n_meas).astype(np.float64))
        frame = pd.DataFrame(values, columns=list(cat.MEASUREMENT_NAMES))
        frame.insert(0, "timestamp", pd.to_datetime(np.repeat(block.times_ms, n_cells), unit="ms", utc=True))
        frame.insert(1, "node_id", np.tile(np.array(self._world.node_ids)[self._world.cell_node], n_periods))
        frame.insert(2, "cell_id", np.tile(np.array(self._world.cell_ids), n_periods))
        frame["timestamp"] = frame["timestamp"].astype("datetime64[ms, UTC]")
        if block.reported is not None:  # a cell not switched on yet has no row
            frame = frame[block.reported.reshape(-1)].reset_index(drop=True)
        if self._fmt == "csv":
            ds.kpm_for_csv(frame, self._integers).to_csv(
                self._path, mode="a" if self._started else "w", header=not self._started, index=False
            )
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._path, table.schema)
            self._parquet.write_table(table)
        self._started = True
        self.rows += len(frame)

    def close(self) -> None:
        """Finish the file."""
        if self._parquet is not None:
            self._parquet.close()


def _labels_frame(labels: list[Label], subtle: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "node_id": [lb.node_id for lb in labels],
            "cell_id": [lb.cell_id for lb in labels],
            "kind": [lb.kind for lb in labels],
            "start": pd.to_datetime([lb.first_ms for lb in labels], unit="ms", utc=True),
            "end": pd.to_datetime([lb.last_ms for lb in labels], unit="ms", utc=True),
            "intensity": [round(lb.intensity, 4) for lb in labels],
            "subtle": subtle,
            "measurements": [";".join(lb.measurements) for lb in labels],
        }
    )
    frame["start"] = frame["start"].astype("datetime64[ms, UTC]")
    frame["end"] = frame["end"].astype("datetime64[ms, UTC]")
    return frame


def export_world(world: World, folder: str | Path, days: float, period_s: float, fmt: str = "csv") -> ExportSummary:
    """Write days of the simulated network at period_s as a dataset folder; return what was written."""
    began = time.perf_counter()
    period_ms = round(period_s * 1000)
    low, high = world.period_range_ms
    if not low <= period_ms <= high:
        raise ValueError(f"period {period_s} s is outside the simulator's range [{low / 1000}, {high / 1000}] s")
    n_periods = int(round(days * 86_400_000)) // period_ms
    if n_periods < 1:
        raise ValueError(f"{days} days hold no period of {period_s} s")
    first = world.stream_start(period_ms, 0, realtime=False).first_period
    start_ms, end_ms = first * period_ms, (first + n_periods) * period_ms
    labels = world.labels(start_ms, end_ms, period_ms)

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    tracker = _SubtletyTracker(labels, world.cell_ids, len(cat.MEASUREMENTS))
    writer = _KpmWriter(root, fmt, world)
    step = max(1, _CHUNK_CELL_PERIODS // len(world.cell_ids))
    try:
        for offset in range(0, n_periods, step):
            block = world.block(first + offset, min(step, n_periods - offset), period_ms)
            tracker.update(block)
            writer.write(block)
    finally:
        writer.close()

    subtle = tracker.subtle()
    ds.write_labels(root, _labels_frame(labels, subtle))
    labelled = sum((lb.last_ms - lb.first_ms) // period_ms + 1 for lb in labels)
    summary = ExportSummary(
        folder=root,
        rows=writer.rows,
        nodes=len(world.node_ids),
        cells=len(world.cell_ids),
        periods=n_periods,
        events=len(labels),
        anomalous_fraction=labelled / (n_periods * len(world.cell_ids)),
        subtle_share=float(subtle.mean()) if len(labels) else 0.0,
        kinds=dict(Counter(lb.kind for lb in labels)),
        seconds=0.0,
    )
    ds.write_meta(root, _meta(world, summary, period_s, days, start_ms, end_ms))
    return replace(summary, seconds=time.perf_counter() - began)


def _meta(
    world: World, summary: ExportSummary, period_s: float, days: float, start_ms: int, end_ms: int
) -> dict[str, Any]:
    cfg = world.config
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "period_s": period_s,
        "units": dict(cat.UNITS),
        "measurements": [
            {"name": m.name, "unit": m.unit, "integer": m.integer, "description": m.description}
            for m in cat.MEASUREMENTS
        ],
        "start": pd.Timestamp(start_ms, unit="ms", tz="UTC").strftime(iso),
        "end": pd.Timestamp(end_ms - round(period_s * 1000), unit="ms", tz="UTC").strftime(iso),
        "nodes": summary.nodes,
        "cells": summary.cells,
        "generator": {
            "name": "ranomaly e2sim",
            "seed": cfg.seed,
            "days": days,
            "utc_offset_h": cfg.utc_offset_h,
            "events_per_cell_day": cfg.events_per_cell_day,
            "realism": asdict(cfg.realism),
        },
        "labels": {
            "events": summary.events,
            "anomalous_fraction": round(summary.anomalous_fraction, 5),
            "subtle_share": round(summary.subtle_share, 4),
            "kinds": summary.kinds,
            "subtle": "every touched measurement stays within the cell's range over normal periods",
        },
    }
