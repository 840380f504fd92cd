"""Drift: per-cell input shift between the newest window of the history and the one before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np

from ranomaly_contracts.sdl import KpmForward
from rapp.drift import DriftMonitor
from rapp.history import HistoryStore, kpm_rows
from tests.xapp_helpers import MEASUREMENTS, indication

CELLS = [f"c{i}" for i in range(10)]
WINDOW = timedelta(minutes=60)  # 60 periods of 60 s


def write(root: Path, shifted: set[str], periods: int = 120, shift: float = 3.0) -> None:
    """Two hours of noisy KPMs; the cells in `shifted` move by `shift` std in the second hour."""
    rng = np.random.default_rng(1)
    store = HistoryStore(root)
    for p in range(periods):
        cells = {}
        for cell in CELLS:
            level = np.array([10.0, 20.0, 30.0]) + (shift if cell in shifted and p >= periods // 2 else 0.0)
            cells[cell] = (level + rng.normal(0, 1.0, 3)).tolist()
        forward = KpmForward(tuple(MEASUREMENTS), [indication("n1", p, cells)])
        store.write_kpm([f"{p + 1}-0"], [kpm_rows(forward)])


def test_cells_whose_inputs_moved_are_found_and_enough_of_them_ask_for_retraining(tmp_path: Path) -> None:
    write(tmp_path, shifted={"c0", "c1", "c2"})
    asked: list[str] = []
    monitor = DriftMonitor(tmp_path, WINDOW, threshold=1.0, cells_share=0.25, retrain=asked.append)
    report = monitor.evaluate()
    assert report is not None and report.cells == 10
    assert set(report.drifted) == {"c0", "c1", "c2"} and all(v > 2.0 for v in report.drifted.values())
    assert report.share == 0.3 and report.triggered
    monitor.act(report)
    assert asked == ["drift: 3 of 10 cells moved"] and monitor.last == report


def test_steady_cells_do_not_drift_and_a_few_moved_cells_stay_below_the_share(tmp_path: Path) -> None:
    write(tmp_path, shifted={"c0"})
    asked: list[str] = []
    monitor = DriftMonitor(tmp_path, WINDOW, threshold=1.0, cells_share=0.25, retrain=asked.append)
    report = monitor.evaluate()
    assert report is not None and set(report.drifted) == {"c0"} and not report.triggered
    monitor.act(report)
    assert asked == []


def test_too_short_a_history_is_not_judged(tmp_path: Path) -> None:
    write(tmp_path, shifted=set(CELLS), periods=90)
    assert DriftMonitor(tmp_path, WINDOW, 1.0, 0.25, retrain=print).evaluate() is None
    assert DriftMonitor(tmp_path / "empty", WINDOW, 1.0, 0.25, retrain=print).evaluate() is None
