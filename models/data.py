"""Splitting a dataset for training and evaluation: by time (train, validation, test) and by cell."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.metrics import Event
from ranomaly_contracts.dataset import KpmArrays, epoch_ms


@dataclass(frozen=True)
class SplitPlan:
    """Which periods and cells go where. Periods are row ranges of the dense grid, cells column indices."""

    train_rows: slice
    validation_rows: slice
    test_rows: slice
    train_cells: np.ndarray  # int64 cell indices the detectors may learn from
    held_out_cells: np.ndarray  # int64 cell indices never used for fitting


def plan_split(
    arrays: KpmArrays, train: float = 0.6, validation: float = 0.15, held_out_cells: float = 0.2, seed: int = 0
) -> SplitPlan:
    """Time split (train, then validation, then test) and a random set of held-out cells."""
    n_periods, n_cells = arrays.reported.shape
    if n_periods < 20:
        raise ValueError(f"{n_periods} periods are too few to split into train, validation and test")
    a, b = int(n_periods * train), int(n_periods * (train + validation))
    rng = np.random.default_rng(seed)
    n_held = int(round(n_cells * held_out_cells)) if n_cells >= 5 else 0
    held = np.sort(rng.choice(n_cells, n_held, replace=False)) if n_held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(n_cells), held)
    return SplitPlan(slice(0, a), slice(a, b), slice(b, n_periods), kept.astype(np.int64), held.astype(np.int64))


def select(arrays: KpmArrays, rows: slice | None = None, cells: np.ndarray | None = None) -> KpmArrays:
    """A part of the arrays: some periods, some cells."""
    rows = rows if rows is not None else slice(None)
    picked = cells if cells is not None else np.arange(len(arrays.cell_ids))
    return replace(
        arrays,
        times_ms=arrays.times_ms[rows],
        node_ids=tuple(arrays.node_ids[c] for c in picked),
        cell_ids=tuple(arrays.cell_ids[c] for c in picked),
        values=arrays.values[rows][:, picked],
        reported=arrays.reported[rows][:, picked],
    )


def events_from_labels(arrays: KpmArrays, labels: pd.DataFrame | None) -> list[Event]:
    """Labelled events on the arrays' grid (row indices, end inclusive), with their kind."""
    if labels is None or labels.empty:
        return []
    index = {cell: i for i, cell in enumerate(arrays.cell_ids)}
    starts = np.searchsorted(arrays.times_ms, epoch_ms(labels["start"]), "left")
    ends = np.searchsorted(arrays.times_ms, epoch_ms(labels["end"]), "right") - 1
    return [
        Event(index[cell], int(start), int(end), str(kind))
        for cell, kind, start, end in zip(labels["cell_id"], labels["kind"], starts, ends, strict=True)
        if end >= start
    ]


def events_in(events: list[Event], rows: slice, cells: np.ndarray | None = None) -> list[Event]:
    """Events overlapping a row range, re-indexed to it (clipped at its edges), optionally only for some
    cells (re-indexed to their order in `cells`)."""
    start, stop = rows.start or 0, rows.stop
    columns = None if cells is None else {int(c): i for i, c in enumerate(cells)}
    kept = []
    for event in events:
        if event.end < start or event.start >= stop:
            continue
        if columns is not None and event.cell not in columns:
            continue
        cell = event.cell if columns is None else columns[event.cell]
        kept.append(Event(cell, max(event.start, start) - start, min(event.end, stop - 1) - start, event.kind))
    return kept
