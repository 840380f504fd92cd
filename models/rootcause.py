"""Root cause: which kind of anomaly an incident is, from its window of measurements and deviations.

Features of an incident window (the first periods of the incident, where an operator needs the answer):
per measurement, the mean and the largest detector deviation, the signed change of the measurement
against the hour before (log ratio for non-negative measurements, difference otherwise), the share of
exactly repeated values, and the share of records with no value. A random forest (scikit-learn) maps
them to the anomaly kinds of ranomaly_contracts.kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import confusion_matrix

from models.metrics import Event
from ranomaly_contracts.dataset import KpmArrays
from ranomaly_contracts.kinds import ANOMALY_KINDS

WINDOW = 15  # periods of an incident the features look at
BEFORE = 60  # periods before it that stand for normal


def window_features(values: np.ndarray, deviations: np.ndarray, start: int, end: int) -> np.ndarray:
    """Features of one cell's incident [start, end] (rows, inclusive) from its values [T, K] and
    detector deviations [T, K] (NaN where unscored)."""
    stop = min(end + 1, start + WINDOW)
    during, before = values[start:stop], values[max(start - BEFORE, 0) : start]
    dev = np.nan_to_num(deviations[start:stop], nan=0.0)
    level_during = np.nanmean(during, axis=0) if not np.isnan(during).all() else np.full(values.shape[1], np.nan)
    level_before = np.nanmean(before, axis=0) if before.size and not np.isnan(before).all() else level_during
    positive = np.nanmin(values, axis=0) >= 0
    change = np.where(
        positive,
        np.log1p(np.maximum(level_during, 0)) - np.log1p(np.maximum(level_before, 0)),
        level_during - level_before,
    )
    repeats = (np.diff(during, axis=0) == 0).mean(axis=0) if len(during) > 1 else np.zeros(values.shape[1])
    missing = np.isnan(during).mean(axis=0)
    return np.concatenate([dev.mean(axis=0), dev.max(axis=0), np.nan_to_num(change), repeats, missing])


def event_features(arrays: KpmArrays, deviations: np.ndarray, events: list[Event]) -> np.ndarray:
    """Feature rows [events, F] for events on the arrays' grid."""
    return np.stack([window_features(arrays.values[:, e.cell], deviations[:, e.cell], e.start, e.end) for e in events])


@dataclass
class RootCause:
    """A fitted root-cause classifier."""

    forest: RandomForestClassifier

    def predict(self, features: np.ndarray) -> list[str]:
        """The kind of each feature row."""
        return [str(k) for k in self.forest.predict(features)]


def fit_rootcause(features: np.ndarray, kinds: list[str], seed: int = 0) -> RootCause:
    """Train on labelled incident windows."""
    forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, class_weight="balanced", random_state=seed)
    forest.fit(features, np.array(kinds))
    return RootCause(forest)


def evaluate_rootcause(model: RootCause, features: np.ndarray, kinds: list[str]) -> dict[str, object]:
    """Accuracy, recall per kind and the confusion matrix (rows: true kind, columns: predicted)."""
    predicted = model.predict(features)
    labels = [k for k in ANOMALY_KINDS if k in set(kinds) | set(predicted)]
    matrix = confusion_matrix(kinds, predicted, labels=labels)
    per_kind = {k: float(matrix[i, i] / matrix[i].sum()) for i, k in enumerate(labels) if matrix[i].sum()}
    return {
        "accuracy": float(np.mean(np.array(predicted) == np.array(kinds))),
        "recall_by_kind": per_kind,
        "kinds": labels,
        "confusion": matrix.tolist(),
        "events": len(kinds),
    }
