"""What the baselines share: the seed designs' pooled standardisation and placing row scores on the grid."""

from __future__ import annotations

import numpy as np


class PooledScaler:
    """StandardScaler-like scaling fitted on pooled rows [M, F]; missing values become 0 before scaling.

    A column with zero spread keeps a scale of 1, as scikit-learn's StandardScaler does.
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, rows: np.ndarray) -> PooledScaler:
        """Learn every column's mean and standard deviation."""
        if len(rows) == 0:
            raise ValueError("no rows to fit the scaler on")
        filled = fill_missing(rows)
        self.mean = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)
        return self

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Standardised float64 rows, missing values taken as 0 first."""
        if self.mean is None or self.scale is None:
            raise RuntimeError("the scaler is not fitted")
        return (fill_missing(rows) - self.mean) / self.scale


def fill_missing(rows: np.ndarray) -> np.ndarray:
    """float64 copy with NaN replaced by 0 (the seed designs' fillna(0))."""
    out = rows.astype(np.float64)
    out[np.isnan(out)] = 0.0
    return out


def on_grid(row_scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scores [T, N] float64: row_scores where mask is True (in row-major order), NaN elsewhere."""
    out = np.full(mask.shape, np.nan, dtype=np.float64)
    out[mask] = row_scores
    return out
