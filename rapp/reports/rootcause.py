"""A root-cause classifier the rApp can run on its own history: `models.rootcause` on history-only features.

`models.rootcause` learns from incident windows with the detector's per-period deviations, which the rApp
does not keep (the collector stores KPM rows and incident events, not verdicts). This classifier feeds the
same features a deviation it can compute from the history alone: each measurement's robust z-score against
the hour before the incident (median and MAD of those periods). It is trained on a labelled dataset (the
simulator's, or any in the dataset format) by `train_history_classifier`, saved with `save_classifier`, and
the rApp loads it from `RANOMALY_RAPP_REPORT_ROOTCAUSE_PATH`. The file is a pickle: load only files you wrote.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.data import events_from_labels
from models.rootcause import BEFORE, RootCause, fit_rootcause, window_features
from ranomaly_contracts.dataset import Dataset, to_arrays
from rapp.reports.facts import CellWindow

FORMAT = "ranomaly-rootcause-history/1"


def history_deviations(values: np.ndarray, start: int) -> np.ndarray:
    """|robust z| [T, K] of each row against the BEFORE rows ahead of `start` (median, 1.4826 MAD), NaN where
    a value or the reference is missing."""
    before = values[max(start - BEFORE, 0) : start]
    if not len(before) or np.isnan(before).all():
        return np.full(values.shape, np.nan)
    with np.errstate(all="ignore"):
        median = np.nanmedian(before, axis=0)
        spread = 1.4826 * np.nanmedian(np.abs(before - median), axis=0)
    scale = np.maximum(np.nan_to_num(spread), np.maximum(0.01 * np.abs(np.nan_to_num(median)), 1e-3))
    return np.abs(values - median) / scale


def features(values: np.ndarray, start: int, end: int) -> np.ndarray:
    """`models.rootcause.window_features` of one cell's incident with history deviations (a measurement with
    no value in the window, as in a silent cell, is a feature of its own, not a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return window_features(values, history_deviations(values, start), start, end)


@dataclass
class HistoryClassifier:
    """A fitted forest over history features, for the measurements it was trained with, in their order."""

    measurements: tuple[str, ...]
    model: RootCause
    name: str = "rootcause-history"

    def classify(self, window: CellWindow) -> tuple[str, float] | None:
        """The most probable kind and its probability; None when the window has none of the measurements."""
        columns = {name: i for i, name in enumerate(window.measurements)}
        if not columns.keys() & set(self.measurements):
            return None
        values = np.full((len(window.values), len(self.measurements)), np.nan)
        for k, name in enumerate(self.measurements):
            if name in columns:
                values[:, k] = window.values[:, columns[name]]
        row = features(values, window.start, window.end)[None, :]
        probabilities = self.model.forest.predict_proba(row)[0]
        best = int(np.argmax(probabilities))
        return str(self.model.forest.classes_[best]), float(probabilities[best])


def train_history_classifier(dataset: Dataset, seed: int = 0) -> HistoryClassifier:
    """Fit on every labelled event of a dataset; ValueError when it has no labelled event."""
    arrays = to_arrays(dataset)
    events = events_from_labels(arrays, dataset.labels)
    if not events:
        raise ValueError("root-cause training needs labelled events: the dataset has none")
    rows = []
    for e in events:  # the rows a report's window holds: BEFORE periods ahead of the incident, then the incident
        first = max(e.start - BEFORE, 0)
        rows.append(
            features(arrays.values[first : e.end + 1, e.cell].astype(np.float64), e.start - first, e.end - first)
        )
    return HistoryClassifier(arrays.measurements, fit_rootcause(np.stack(rows), [str(e.kind) for e in events], seed))


def save_classifier(classifier: HistoryClassifier, path: str | Path) -> None:
    """Write the classifier to one file."""
    document = {"format": FORMAT, "measurements": list(classifier.measurements), "model": classifier.model}
    Path(path).write_bytes(pickle.dumps(document))


def load_classifier(path: str | Path) -> HistoryClassifier:
    """Read a file save_classifier wrote; ValueError when it is something else."""
    document: Any = pickle.loads(Path(path).read_bytes())
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return HistoryClassifier(tuple(document["measurements"]), document["model"])
