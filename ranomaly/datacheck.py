"""`ranomaly data check`: what the dataset reader found in a folder, and what it mended or assumed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ranomaly_contracts.dataset import Dataset, label_mask, to_arrays


def describe(dataset: Dataset, folder: str | Path) -> str:
    """A few lines for a person: size, span, grid, each measurement's unit, gaps and levels, labels, mends."""
    arrays = to_arrays(dataset)
    kpm = dataset.kpm
    periods, cells = arrays.reported.shape
    phases = 1 if arrays.phase_ms is None else len(np.unique(arrays.phase_ms))
    lines = [
        f"{folder}: {len(kpm):,} rows, {len(set(arrays.node_ids))} nodes, {cells} cells, "
        f"{len(arrays.measurements)} measurements, period {dataset.period_s:g} s",
        f"span {kpm['timestamp'].iloc[0]} .. {kpm['timestamp'].iloc[-1]}: {periods:,} periods; cells at {phases} "
        f"phase(s) of the period; {1 - arrays.reported.mean():.2%} of cell-periods not reported",
        "measurements (unit, reported with no value, distinct values):",
    ]
    width = max(len(m) for m in arrays.measurements)
    for name in arrays.measurements:
        column = kpm[name].to_numpy()
        empty = float(np.isnan(column).mean())
        distinct = len(np.unique(column[~np.isnan(column)]))
        lines.append(f"  {name:<{width}}  {dataset.units[name]:<10} {empty:7.2%} empty  {distinct:>9,} values")
    if dataset.labels is None:
        lines.append("labels: none")
    else:
        kinds = Counter(dataset.labels["kind"])
        share = float(label_mask(arrays, dataset.labels)[arrays.reported].mean())
        shown = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        lines.append(f"labels: {len(dataset.labels)} events ({shown}); {share:.2%} of reported cell-periods")
    lines.append("mended or assumed:" if dataset.notes else "mended or assumed: nothing")
    lines.extend(f"  - {note}" for note in dataset.notes)
    return "\n".join(lines)
