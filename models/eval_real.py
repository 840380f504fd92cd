"""`ranomaly eval-real`: the main detector beside the baselines on real labelled datasets.

A dataset folder holds `train/` (the training part, no labels) and `test/` (the training part and then the
test part in time order, labels on the test part, and `split.json` naming each cell's first test
timestamp): the layout of `../shared/data/real/`. Every detector fits on `train/` (at most
`max_train_periods`, the latest) and scores the whole of `test/` in time order, so that state and windows
warm up on the training rows; metrics (models.metrics, as `ranomaly eval`) cover each cell's test part only.
Every model is judged at its own verdict, no label used:
- the main detector as `ranomaly train` and `ranomaly score` make it: its manifest threshold, after warm-up;
- the seed autoencoder at the 99th and the 95th percentile of its scores on the training part, Isolation
  Forest and PCA at their 99th percentile, the three-sigma rule at 3; always-alarm for reference.
A frozen cell is one whose test-part score stays within 1 % of one value on more than half of its periods.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import structlog

from models import metrics as m
from models.api import Detector
from models.artifact import load_session
from models.baselines import (
    AlwaysAlarmDetector,
    IsolationForestDetector,
    PcaDetector,
    SeedAutoencoder,
    ThreeSigmaDetector,
)
from models.data import events_from_labels
from models.detector import DetectorConfig, StreamingDetector
from models.scoring import score_arrays
from ranomaly_contracts.dataset import Dataset, KpmArrays, epoch_ms, label_mask, read_dataset, to_arrays

log = structlog.get_logger("models.eval_real")

MAIN = "streaming-detector"
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FROZEN_SHARE = 0.5  # of a cell's test periods
FROZEN_TOLERANCE = 0.01  # relative to the value the score stays at
HEARTBEAT_S = 10.0


@dataclass(frozen=True)
class RealEvalConfig:
    """What to evaluate and how."""

    root: Path = DEFAULT_ROOT
    datasets: tuple[str, ...] = ()  # names under root; empty: every folder with train/ and test/
    seed: int = 0
    max_train_periods: int = 10_000  # latest training periods kept (all cells); older ones are left out
    fast: bool = False  # tiny baseline settings, for tests


def find_datasets(root: Path) -> list[str]:
    """Names of the dataset folders under root (each with train/ and test/), sorted; refuses a missing root."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"no real datasets at {root}: the folder does not exist (a clone without ../shared has none); "
            "pass the folder with --root"
        )
    names = sorted(p.name for p in root.iterdir() if (p / "train").is_dir() and (p / "test").is_dir())
    if not names:
        raise FileNotFoundError(f"no dataset folder (with train/ and test/) under {root}")
    return names


@contextmanager
def heartbeat(dataset: str, step: str) -> Iterator[None]:
    """Log the step's start, a progress line every HEARTBEAT_S while it runs, and its end."""
    began = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            log.info("eval-real step running", dataset=dataset, step=step, elapsed_s=round(time.perf_counter() - began))

    thread = threading.Thread(target=beat, daemon=True)
    log.info("eval-real step", dataset=dataset, step=step)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        log.info("eval-real step done", dataset=dataset, step=step, seconds=round(time.perf_counter() - began, 1))


def first_test_rows(arrays: KpmArrays, split: dict[str, Any]) -> np.ndarray:
    """Row of every cell's first test period on the arrays' grid, from split.json."""
    by_cell = split.get("first_test_by_cell") or {}
    common = split.get("first_test")
    starts = []
    for col, cell in enumerate(arrays.cell_ids):
        first = by_cell.get(cell, common)
        if first is None:
            raise ValueError(f"split.json names no first test timestamp for cell {cell!r}")
        ms = int(epoch_ms(pd.Series(pd.to_datetime([first], utc=True)))[0])
        ms -= 0 if arrays.phase_ms is None else int(arrays.phase_ms[col])
        starts.append(int(np.searchsorted(arrays.times_ms, ms, "left")))
    return np.array(starts, dtype=np.int64)


def frozen_cells(scores: np.ndarray) -> int:
    """Cells [T, N] whose scored periods stay within FROZEN_TOLERANCE of one value on more than
    FROZEN_SHARE of them."""
    frozen = 0
    for column in scores.T:
        values = np.sort(column[~np.isnan(column)])
        if values.size == 0:
            continue
        # the values within 1 % of v = values[i] / 0.99, the window's lowest member: values[i] .. v * 1.01
        reach = 2 * FROZEN_TOLERANCE / (1 - FROZEN_TOLERANCE)
        upper = np.searchsorted(values, values + reach * np.abs(values), "right")
        frozen += int((upper - np.arange(values.size)).max() > FROZEN_SHARE * values.size)
    return frozen


def _latest(dataset: Dataset, periods: int) -> tuple[Dataset, bool]:
    """The dataset's latest `periods` periods (all cells), and whether anything was left out."""
    times = dataset.kpm["timestamp"]
    unique = np.sort(times.unique())
    if len(unique) <= periods:
        return dataset, False
    kept = dataset.kpm[times >= unique[-periods]].reset_index(drop=True)
    return replace(dataset, kpm=kept), True


@dataclass(frozen=True)
class _Judged:
    """One model's scores on test/ and the threshold of its own verdict."""

    scores: np.ndarray  # [T, N]
    threshold: float
    seconds: float


def _main_detector(train: KpmArrays, test: KpmArrays, config: RealEvalConfig, name: str) -> _Judged:
    """Train as `ranomaly train` does (every cell and period, DetectorConfig(seed)) and score the artifact
    as `ranomaly score` does; NaN while warming up."""
    began = time.perf_counter()
    detector = StreamingDetector(
        DetectorConfig(epochs=1, seed=config.seed) if config.fast else DetectorConfig(seed=config.seed)
    )
    with heartbeat(name, f"{MAIN}: train"):
        detector.fit(train)
    artifact = detector.artifact
    assert artifact is not None
    with heartbeat(name, f"{MAIN}: score"):
        result = score_arrays(artifact, load_session(artifact), test)
    scores = np.where(result.warm, result.scores, np.nan)
    return _Judged(scores, artifact.manifest.thresholds.score, time.perf_counter() - began)


def _quantile_of_training(detector: Detector, train: KpmArrays, q: float) -> float:
    scores = detector.score(train)
    return float(np.nanquantile(scores, q)) if np.isfinite(scores).any() else float("nan")


Baseline = tuple[str, Detector, Callable[[Detector, KpmArrays], float]]


def _baselines(seed: int, fast: bool) -> list[Baseline]:
    """(row name, detector, its own threshold from the fitted detector and the training arrays)."""
    autoencoder = SeedAutoencoder(seed=seed, epochs=3, batch_size=256) if fast else SeedAutoencoder(seed=seed)
    forest = IsolationForestDetector(seed=seed, n_estimators=25) if fast else IsolationForestDetector(seed=seed)
    return [
        ("seed-autoencoder@p99", autoencoder, lambda d, t: _quantile_of_training(d, t, 0.99)),
        ("seed-autoencoder@p95", autoencoder, lambda d, t: _quantile_of_training(d, t, 0.95)),
        ("isolation-forest@p99", forest, lambda d, t: _quantile_of_training(d, t, 0.99)),
        ("pca@p99", PcaDetector(), lambda d, t: _quantile_of_training(d, t, 0.99)),
        ("three-sigma@3", ThreeSigmaDetector(), lambda d, t: 3.0),
        ("always-alarm", AlwaysAlarmDetector(), lambda d, t: 1.0),
    ]


def _judge_baselines(train: KpmArrays, test: KpmArrays, config: RealEvalConfig, name: str) -> dict[str, _Judged]:
    judged: dict[str, _Judged] = {}
    fitted: dict[int, tuple[np.ndarray, float]] = {}  # one fit and one scoring per detector object
    for row, detector, own_threshold in _baselines(config.seed, config.fast):
        if id(detector) not in fitted:
            began = time.perf_counter()
            with heartbeat(name, f"{detector.name}: fit and score"):
                detector.fit(train)
                fitted[id(detector)] = detector.score(test), time.perf_counter() - began
        scores, seconds = fitted[id(detector)]
        judged[row] = _Judged(scores, own_threshold(detector, train), seconds)
    return judged


def evaluate_dataset(folder: Path, config: RealEvalConfig) -> dict[str, Any]:
    """Every model on one dataset folder (train/ and test/); JSON-ready results."""
    name = folder.name
    began, cpu = time.perf_counter(), time.process_time()
    train_set, capped = _latest(read_dataset(folder / "train"), config.max_train_periods)
    test_set = read_dataset(folder / "test")
    if test_set.labels is None:
        raise ValueError(f"{folder / 'test'} has no labels.csv")
    split = json.loads((folder / "test" / "split.json").read_text())
    train, test = to_arrays(train_set), to_arrays(test_set)
    after = np.arange(len(test.times_ms))[:, None] >= first_test_rows(test, split)[None, :]
    in_test = after & test.reported
    labels = label_mask(test, test_set.labels) & in_test
    events = [e for e in events_from_labels(test, test_set.labels) if after[e.start, e.cell]]
    period_s = test_set.period_s

    judged = {MAIN: _main_detector(train, test, config, name), **_judge_baselines(train, test, config, name)}
    buffer = round(2 * 3600 / period_s)
    models: dict[str, dict[str, float]] = {}
    for row, result in judged.items():
        scores = np.where(in_test, result.scores, np.nan)
        figures = m.evaluate(scores, labels, result.threshold, period_s, buffer, events)
        models[row] = {**figures, "median_delay_min": figures["median_delay_periods"] * period_s / 60.0,
                       "frozen_cells": frozen_cells(scores), "threshold": result.threshold,
                       "seconds": result.seconds}  # fmt: skip
    return {
        "dataset": name,
        "main": MAIN,
        "models": models,
        "period_s": period_s,
        "cells": len(test.cell_ids),
        "measurements": len(test.measurements),
        "train_periods": len(train.times_ms),
        "train_capped_at": config.max_train_periods if capped else None,
        "test_cell_periods": int(in_test.sum()),
        "test_events": len(events),
        "test_anomalous_share": float(labels.sum() / max(in_test.sum(), 1)),
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - cpu,  # every thread of the process: the wall time of an idle core
    }


def run_real_evaluation(
    config: RealEvalConfig, on_result: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Every dataset of config (all under root when none is named), in order; on_result sees each result
    as soon as it is ready."""
    names = list(config.datasets) or find_datasets(config.root)
    for name in names:
        folder = config.root / name
        if not (folder / "train").is_dir() or not (folder / "test").is_dir():
            raise FileNotFoundError(f"{folder} is not a dataset folder with train/ and test/")
    results = []
    for name in names:
        results.append(evaluate_dataset(config.root / name, config))
        log.info("eval-real dataset done", dataset=name, seconds=round(results[-1]["seconds"], 1))
        if on_result is not None:
            on_result(results[-1])
    return results


COLUMNS = (
    ("composite_f1", "cF1", "{:.3f}"), ("vus_pr", "VUS-PR", "{:.3f}"), ("event_recall", "ev.rec", "{:.3f}"),
    ("fpr", "FPR", "{:.2%}"), ("false_alarms_per_1k_cell_hours", "FA/1kh", "{:.1f}"),
    ("median_delay_min", "delay min", "{:.0f}"), ("frozen_cells", "frozen", "{:d}"),
)  # fmt: skip


def format_dataset(result: dict[str, Any]) -> str:
    """One dataset's table: every model at its own verdict, the main detector first."""
    capped = result["train_capped_at"]
    lines = [
        f"{result['dataset']}: {result['cells']} cells x {result['measurements']} measurements at "
        f"{result['period_s']:g} s; trained on {result['train_periods']} periods"
        + (f" (capped: the latest {capped})" if capped else "")
        + f"; test part {result['test_cell_periods']} cell-periods, {result['test_events']} events, "
        f"{result['test_anomalous_share']:.1%} anomalous; {result['seconds']:.0f} s, "
        f"{result['cpu_seconds']:.0f} s CPU",
        f"{'model':22s} " + " ".join(f"{short:>9s}" for _, short, _ in COLUMNS),
    ]
    for name, row in result["models"].items():
        cells = []
        for key, _, form in COLUMNS:
            value = row[key]
            cells.append(f"{'-' if value != value else form.format(value):>9s}")
        lines.append(f"{name:22s} " + " ".join(cells))
    return "\n".join(lines)
