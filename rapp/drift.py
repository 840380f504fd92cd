"""Drift: a per-cell measure of how far each cell's inputs moved, and a retraining when enough cells moved.

For each cell and measurement, the newest `window` of the collected history is compared with the window
before it: the shift of the mean in units of the pooled standard deviation. A cell's drift is the mean of
its measurements' shifts (so one noisy small counter does not decide alone). When the share of cells whose
drift reaches `threshold` is at least `cells_share`, the monitor asks for a retraining. Time is the
history's own (its newest row), so replayed or simulated history behaves like live data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import structlog

from ranomaly_contracts.dataset import KEY_COLUMNS
from rapp.history import read_history

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DriftReport:
    """One check: every cell's drift, and whether it asked for a retraining."""

    checked_at: str  # the newest history time the check saw (ISO 8601)
    cells: int
    drifted: dict[str, float] = field(default_factory=dict)  # cell -> drift, for cells at or above threshold
    share: float = 0.0
    triggered: bool = False

    def public(self) -> dict[str, Any]:
        """The report as JSON."""
        return {"checked_at": self.checked_at, "cells": self.cells, "drifted": self.drifted,
                "share": self.share, "triggered": self.triggered}  # fmt: skip


def cell_drift(recent: pd.DataFrame, previous: pd.DataFrame) -> pd.Series:
    """Drift per cell: mean over measurements of |mean shift| / pooled std between two windows of rows."""
    measurements = [c for c in recent.columns if c not in KEY_COLUMNS and c in previous.columns]
    now = recent.groupby("cell_id")[measurements].agg(["mean", "var"])
    before = previous.groupby("cell_id")[measurements].agg(["mean", "var"])
    cells = now.index.intersection(before.index)
    now, before = now.loc[cells], before.loc[cells]
    shifts = []
    for name in measurements:
        pooled = np.sqrt((now[(name, "var")] + before[(name, "var")]) / 2.0)
        scale = pooled.where(pooled > 0, np.nan)  # a constant measurement in both windows has no scale
        shifts.append(((now[(name, "mean")] - before[(name, "mean")]).abs() / scale).rename(name))
    if not shifts:
        return pd.Series(dtype=float)
    return pd.concat(shifts, axis=1).mean(axis=1, skipna=True).dropna()


class DriftMonitor:
    """Checks the history every `every_s` and calls `retrain(reason)` when enough cells drifted."""

    def __init__(self, history_dir: Path, window: timedelta, threshold: float, cells_share: float,
                 retrain: Callable[[str], object]) -> None:  # fmt: skip
        self.history_dir = history_dir
        self.window = window
        self.threshold = threshold
        self.cells_share = cells_share
        self._retrain = retrain
        self.last: DriftReport | None = None

    def evaluate(self) -> DriftReport | None:
        """Compare the newest window with the one before; None while the history is shorter than 1.5 windows."""
        try:
            rows = read_history(self.history_dir)
        except (FileNotFoundError, ValueError):
            return None
        if rows.empty:
            return None
        newest = rows["timestamp"].max()
        if newest - rows["timestamp"].min() < 1.5 * self.window:
            return None
        recent = rows[rows["timestamp"] > newest - self.window]
        previous = rows[(rows["timestamp"] <= newest - self.window) & (rows["timestamp"] > newest - 2 * self.window)]
        drift = cell_drift(recent, previous)
        drifted = drift[drift >= self.threshold]
        share = float(len(drifted) / len(drift)) if len(drift) else 0.0
        report = DriftReport(
            checked_at=newest.isoformat(), cells=len(drift),
            drifted={str(cell): round(float(value), 3) for cell, value in drifted.items()},
            share=round(share, 4), triggered=share >= self.cells_share and len(drift) > 0,
        )  # fmt: skip
        return report

    def act(self, report: DriftReport | None) -> None:
        """Keep the report and ask for a retraining if it says so (on the caller's thread: the event loop's)."""
        if report is None:
            return
        self.last = report
        if report.triggered:
            log.warning("drift_retraining", cells=report.cells, drifted=len(report.drifted), share=report.share)
            self._retrain(f"drift: {len(report.drifted)} of {report.cells} cells moved")

    async def run(self, every_s: float) -> None:
        """Check every `every_s` seconds until cancelled (the reading and arithmetic in a worker thread)."""
        while True:
            await asyncio.sleep(every_s)
            self.act(await asyncio.to_thread(self.evaluate))
