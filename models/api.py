"""What every detector offers, so that evaluation treats the main detector and the baselines alike."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ranomaly_contracts.dataset import KpmArrays


class Detector(Protocol):
    """An unsupervised anomaly detector over KPM series.

    fit() sees unlabelled data (which may hold a few percent of anomalies); score() returns, for every
    period and cell of the data it is given, a score where higher means more anomalous, NaN where the
    detector gives none (a warming-up or unreported cell). Scores are causal: a row's score uses only
    that row and earlier rows of its cell.
    """

    name: str

    def fit(self, train: KpmArrays) -> None:
        """Learn normal behaviour from the training part."""
        ...

    def score(self, data: KpmArrays) -> np.ndarray:
        """Scores [T, N] (float64) for data.values [T, N, K]."""
        ...
