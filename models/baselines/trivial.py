"""Trivial reference detectors: random scores and an alarm everywhere."""

from __future__ import annotations

import numpy as np

from ranomaly_contracts.dataset import KpmArrays


class RandomDetector:
    """Uniform random scores in [0, 1), the same for the same seed and shape; NaN where unreported."""

    name: str = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train: KpmArrays) -> None:
        """Learns nothing."""

    def score(self, data: KpmArrays) -> np.ndarray:
        """Row-major uniform draws, so a row's score never depends on later rows."""
        scores = np.random.default_rng(self.seed).random(data.reported.shape)
        scores[~data.reported] = np.nan
        return scores


class AlwaysAlarmDetector:
    """The same score everywhere it is reported: any threshold at or below it alarms everywhere."""

    name: str = "always-alarm"

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def fit(self, train: KpmArrays) -> None:
        """Learns nothing."""

    def score(self, data: KpmArrays) -> np.ndarray:
        """value where reported, NaN elsewhere."""
        return np.where(data.reported, self.value, np.nan)
