"""The seed designs' Isolation Forest on causal engineered features of every cell and measurement."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from models.baselines._common import PooledScaler, on_grid
from ranomaly_contracts.dataset import KpmArrays


def causal_features(values: np.ndarray, window: int) -> np.ndarray:
    """Features [T, N, 4K] of values [T, N, K]: rolling mean, rolling std, lag-1 value, x_t - x_{t-1}.

    The rolling statistics cover the last `window` periods up to and including t (std with ddof=1), like
    pandas' rolling(window) with its default min_periods: a feature is NaN when a value it needs is
    missing, or before the window fills. Only rows up to t enter row t's features.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    x = values.astype(np.float64)

    def lagged(lag: int) -> np.ndarray:
        out = np.full_like(x, np.nan)
        out[lag:] = x[: len(x) - lag]
        return out

    window_values = [lagged(lag) for lag in range(window)]
    mean = sum(window_values[1:], window_values[0]) / window
    squares = sum(((v - mean) ** 2 for v in window_values[1:]), (window_values[0] - mean) ** 2)
    std = np.sqrt(squares / (window - 1))
    previous = window_values[1]
    return np.concatenate([mean, std, previous, x - previous], axis=2)


class IsolationForestDetector:
    """Isolation Forest on causal_features, pooled-standardised (missing features as 0); score = -score_samples.

    The first window - 1 periods of the data given to score() get NaN (the window is not full yet), as do
    unreported cell-periods. The scaler sees every eligible training row; the forest is fitted on a random
    subsample of at most max_fit_rows of them (each tree draws its own 256 rows anyway, so this only bounds
    memory and time).
    """

    name: str = "isolation-forest"

    def __init__(self, seed: int = 0, window: int = 10, n_estimators: int = 100, max_fit_rows: int = 100_000) -> None:
        self.seed = seed
        self.window = window
        self.n_estimators = n_estimators
        self.max_fit_rows = max_fit_rows
        self._scaler = PooledScaler()
        self._forest: IsolationForest | None = None

    def _rows(self, data: KpmArrays) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows of the scored cell-periods, and the [T, N] mask of which they are."""
        mask = data.reported.copy()
        mask[: self.window - 1] = False
        values = np.where(data.reported[..., None], data.values, np.nan)  # an unreported period holds no value
        return causal_features(values, self.window)[mask], mask

    def fit(self, train: KpmArrays) -> None:
        """Fit the scaler and the forest on the training part's feature rows."""
        rows, _ = self._rows(train)
        if len(rows) == 0:
            raise ValueError(f"no reported cell-period after the first {self.window - 1} periods to fit on")
        x = self._scaler.fit(rows).transform(rows)
        if len(x) > self.max_fit_rows:
            picked = np.random.default_rng(self.seed).choice(len(x), self.max_fit_rows, replace=False)
            x = x[np.sort(picked)]
        self._forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(x)

    def score(self, data: KpmArrays) -> np.ndarray:
        """Negated score_samples of every scored cell-period; NaN for warm-up and unreported ones."""
        if self._forest is None:
            raise RuntimeError(f"{self.name} is not fitted")
        rows, mask = self._rows(data)
        scores = -self._forest.score_samples(self._scaler.transform(rows)) if len(rows) else np.zeros(0)
        return on_grid(scores, mask)
