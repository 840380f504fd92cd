"""`ranomaly eval`: every detector on the same split, at the same operating point, against labels.

Protocol: the dataset is split by time (train, validation, test) and by cell (a share of cells is held
out of all fitting). Every detector fits on the training periods of the training cells and scores the
whole span of every cell; its threshold is the quantile that alarms on at most `alarm_rate` of the
validation cell-periods of the training cells (no labels used); metrics are taken on the test periods.
The main detector is also shown at its own threshold (the manifest's: what the xApp and `ranomaly score`
alarm at), the seed autoencoder at its own 95th-percentile threshold. Random and always-alarm rows show what
each metric gives for free.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import metrics as m
from models.api import Detector
from models.baselines import SeedAutoencoder, all_baselines
from models.data import SplitPlan, events_from_labels, events_in, plan_split, select
from models.detector import DetectorConfig, StreamingDetector
from models.forecaster.config import ForecasterConfig
from models.forecaster.evaluation import evaluate_forecaster
from models.forecaster.training import train_forecaster
from models.rootcause import evaluate_rootcause, event_features, fit_rootcause
from ranomaly_contracts.dataset import Dataset, KpmArrays, label_mask, to_arrays

MAIN = "streaming-detector"


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol's settings."""

    train: float = 0.6
    validation: float = 0.15
    held_out_cells: float = 0.2
    alarm_rate: float = 0.005
    max_buffer_hours: float = 2.0  # VUS-PR's maximum buffer
    seed: int = 0
    fast: bool = False  # tiny training settings, for tests


def _metrics(
    scores: np.ndarray, labels: np.ndarray, threshold: float, period_s: float, events: list[m.Event]
) -> dict[str, float]:
    buffer = round(3600 * 2 / period_s) if period_s else 0
    return m.evaluate(scores, labels, threshold, period_s, buffer, events)


def _fit_and_score(detector: Detector, arrays: KpmArrays, plan: SplitPlan) -> tuple[np.ndarray, float]:
    began = time.perf_counter()
    detector.fit(select(arrays, plan.train_rows, plan.train_cells))
    scores = detector.score(arrays)
    return scores, time.perf_counter() - began


def _forecaster(arrays: KpmArrays, plan: SplitPlan, config: EvalConfig) -> dict[str, Any]:
    forecaster_config = (
        ForecasterConfig(epochs=1, windows_per_epoch=512, seed=config.seed)
        if config.fast
        else ForecasterConfig(seed=config.seed)
    )
    began = time.perf_counter()
    forecaster = train_forecaster(arrays, forecaster_config, plan.train_rows, plan.train_cells)
    seconds = time.perf_counter() - began
    scores = evaluate_forecaster(forecaster, arrays, plan.test_rows)
    summary = {name: {"nmae": s.nmae, "smape": s.smape_overall, "mae": s.mae} for name, s in scores.items()}
    naive = scores["seasonal_naive"].nmae
    return {
        "methods": summary,
        "nmae_below_seasonal_naive": 1.0 - scores["model"].nmae / naive if naive else float("nan"),
        "horizon": forecaster.horizon,
        "train_seconds": seconds,
    }


def _rootcause(
    detector: StreamingDetector, arrays: KpmArrays, events: list[m.Event], test_start: int, holdout: Dataset | None
) -> dict[str, Any]:
    """Root-cause accuracy: trained on the incidents before the test part, tested on those in it; with a
    held-out dataset (another seed), trained on every incident here and tested on every one there."""
    deviations = detector.stream(arrays).deviations
    earlier = [e for e in events if e.start < test_start]
    later = [e for e in events if e.start >= test_start]
    result: dict[str, Any] = {}
    if earlier and later:
        model = fit_rootcause(event_features(arrays, deviations, earlier), [str(e.kind) for e in earlier])
        result["test_part"] = evaluate_rootcause(
            model, event_features(arrays, deviations, later), [str(e.kind) for e in later]
        )
    if holdout is not None and holdout.labels is not None and events:
        other = to_arrays(holdout)
        other_events = events_from_labels(other, holdout.labels)
        model = fit_rootcause(event_features(arrays, deviations, events), [str(e.kind) for e in events])
        other_deviations = detector.stream(other).deviations
        result["held_out_dataset"] = evaluate_rootcause(
            model, event_features(other, other_deviations, other_events), [str(e.kind) for e in other_events]
        )
    return result


def recall_by_subtlety(
    dataset: Dataset, arrays: KpmArrays, test_scores: np.ndarray, threshold: float, test: slice
) -> dict[str, float]:
    """Event recall on the test events the labels mark `subtle` (inside the cell's normal range on every
    measurement they touch, as the simulator's export flags them) and on the others (`clear`); empty when
    the labels have no such column."""
    labels = dataset.labels
    if labels is None or "subtle" not in labels.columns:
        return {}
    grouped = labels.assign(kind=np.where(labels["subtle"].astype(bool), "subtle", "clear"))
    return m.recall_by_kind(test_scores, threshold, events_in(events_from_labels(arrays, grouped), test))


def run_evaluation(
    dataset: Dataset, config: EvalConfig | None = None, holdout: Dataset | None = None
) -> dict[str, Any]:
    """All detectors on one split of a labelled dataset; JSON-ready results. A held-out labelled dataset
    (another simulator seed) adds a root-cause evaluation on data never seen in training."""
    config = config or EvalConfig()
    if dataset.labels is None:
        raise ValueError("evaluation needs labels: the dataset has no labels.csv")
    arrays = to_arrays(dataset)
    labels = label_mask(arrays, dataset.labels)
    events = events_from_labels(arrays, dataset.labels)
    plan = plan_split(arrays, config.train, config.validation, config.held_out_cells, config.seed)
    period_s = dataset.period_s
    test, validation = plan.test_rows, plan.validation_rows
    test_labels, test_events = labels[test], events_in(events, test)

    detector_config = DetectorConfig(epochs=1, seed=config.seed) if config.fast else DetectorConfig(seed=config.seed)
    detectors: list[Detector] = [StreamingDetector(detector_config), *all_baselines(config.seed, fast=config.fast)]
    results: dict[str, dict[str, float]] = {}
    main_scores = np.empty(0)
    for detector in detectors:
        scores, seconds = _fit_and_score(detector, arrays, plan)
        threshold = m.threshold_for_alarm_rate(scores[validation][:, plan.train_cells], config.alarm_rate)
        results[detector.name] = {**_metrics(scores[test], test_labels, threshold, period_s, test_events),
                                  "threshold": threshold, "seconds": seconds}  # fmt: skip
        if isinstance(detector, StreamingDetector):
            main, main_scores, main_threshold = detector, scores, threshold
            assert detector.thresholds is not None
            own = detector.thresholds.score  # what the xApp and `ranomaly score` alarm at
            results[f"{detector.name}@own"] = {**_metrics(scores[test], test_labels, own, period_s, test_events),
                                               "threshold": own, "seconds": seconds}  # fmt: skip
        if isinstance(detector, SeedAutoencoder):
            own = detector.own_threshold
            results[f"{detector.name}@p95"] = {**_metrics(scores[test], test_labels, own, period_s, test_events),
                                               "threshold": own, "seconds": seconds}  # fmt: skip

    by_cells = {}
    for part, cells in (("seen_cells", plan.train_cells), ("held_out_cells", plan.held_out_cells)):
        if cells.size:
            by_cells[part] = _metrics(main_scores[test][:, cells], test_labels[:, cells], main_threshold, period_s,
                                      events_in(events, test, cells))  # fmt: skip
    return {
        "main": MAIN,
        "models": results,
        "main_recall_by_kind": m.recall_by_kind(main_scores[test], main_threshold, test_events),
        "main_recall_by_subtlety": recall_by_subtlety(dataset, arrays, main_scores[test], main_threshold, test),
        "main_by_cells": by_cells,
        "forecaster": _forecaster(arrays, plan, config),
        "rootcause": _rootcause(main, arrays, events, test.start, holdout),
        "split": {
            "periods": {
                "train": plan.train_rows.stop,
                "validation": validation.stop - validation.start,
                "test": test.stop - test.start,
            },  # fmt: skip
            "cells": {"train": int(plan.train_cells.size), "held_out": int(plan.held_out_cells.size)},
            "test_events": len(test_events),
            "test_anomalous_share": float(test_labels.mean()),
            "alarm_rate": config.alarm_rate,
            "period_s": period_s,
        },
    }


COLUMNS = (
    ("composite_f1", "cF1"), ("event_recall", "ev.rec"), ("point_precision", "pt.prec"), ("point_recall", "pt.rec"),
    ("point_f1", "pt.F1"), ("pr_auc", "PR-AUC"), ("vus_pr", "VUS-PR"), ("fpr", "FPR"),
    ("false_alarms_per_1k_cell_hours", "FA/1kh"), ("median_delay_periods", "delay"), ("pa_f1", "PA-F1"),
)  # fmt: skip


def format_table(result: dict[str, Any]) -> str:
    """The results as one text table, the main detector first, then details."""
    lines = [f"{'detector':24s} " + " ".join(f"{short:>8s}" for _, short in COLUMNS)]
    for name, row in result["models"].items():
        cells = []
        for key, _ in COLUMNS:
            value = row[key]
            cells.append(f"{value:8.1f}" if key == "false_alarms_per_1k_cell_hours" else f"{value:8.3f}")
        lines.append(f"{name:24s} " + " ".join(cells))
    split = result["split"]
    lines.append(
        f"\nsplit: {split['periods']} periods, {split['cells']} cells; {split['test_events']} test events, "
        f"{split['test_anomalous_share']:.1%} of test cell-periods anomalous; thresholds alarm on "
        f"{split['alarm_rate']:.1%} of validation cell-periods"
    )
    lines.append("main detector event recall by kind: " + ", ".join(
        f"{kind} {value:.2f}" for kind, value in sorted(result["main_recall_by_kind"].items())))  # fmt: skip
    if subtlety := result["main_recall_by_subtlety"]:
        groups = ", ".join(f"{group} {value:.2f}" for group, value in subtlety.items())
        lines.append(
            f"main detector event recall on subtle events (inside their cell's normal range) and clear ones: {groups}"
        )
    for part, values in result["main_by_cells"].items():
        lines.append(f"main detector on {part.replace('_', ' ')}: composite F1 {values['composite_f1']:.3f}, "
                     f"event recall {values['event_recall']:.3f}, VUS-PR {values['vus_pr']:.3f}")  # fmt: skip
    for part, rc in result["rootcause"].items():
        lines.append(
            f"root cause on the {part.replace('_', ' ')}: accuracy {rc['accuracy']:.2f} over {rc['events']} incidents; "
            + ", ".join(f"{kind} {value:.2f}" for kind, value in sorted(rc["recall_by_kind"].items()))
        )
    fc = result["forecaster"]
    methods = fc["methods"]
    lines.append(
        f"forecaster (H={fc['horizon']}): nMAE {methods['model']['nmae']:.4f} vs seasonal naive "
        f"{methods['seasonal_naive']['nmae']:.4f} ({fc['nmae_below_seasonal_naive']:.1%} below) and persistence "
        f"{methods['persistence']['nmae']:.4f}; sMAPE {methods['model']['smape']:.1f} % vs "
        f"{methods['seasonal_naive']['smape']:.1f} % and {methods['persistence']['smape']:.1f} %"
    )
    return "\n".join(lines)
