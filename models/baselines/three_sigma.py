"""The seed designs' 3-sigma rule: how many training standard deviations a value lies from its cell's mean."""

from __future__ import annotations

import numpy as np

from ranomaly_contracts.dataset import KpmArrays


def _mean_std(values: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """NaN-ignoring mean and std (ddof=1) over axis; NaN where fewer than two values."""
    present = ~np.isnan(values)
    count = present.sum(axis=axis)
    filled = np.where(present, values, 0.0)
    mean = filled.sum(axis=axis) / np.maximum(count, 1)
    centred = np.where(present, values - np.expand_dims(mean, axis), 0.0)
    std = np.sqrt((centred**2).sum(axis=axis) / np.maximum(count - 1, 1))
    enough = count >= 2
    return np.where(enough, mean, np.nan), np.where(enough, std, np.nan)


class ThreeSigmaDetector:
    """Score = max over measurements of |x - mean| / std, with mean and std per cell and measurement.

    Statistics come from the cell's own training values (ddof=1, missing values ignored). A cell absent
    from training (a held-out cell), or a measurement with fewer than two training values in its cell,
    uses the statistics pooled over every training cell-period. A zero std counts as 1 (StandardScaler's
    convention). Missing values are skipped in the max; a cell-period with no value at all (a silent
    cell) gets NaN, as do unreported ones: the rule has nothing to compare.
    """

    name: str = "three-sigma"

    def __init__(self) -> None:
        self._cells: dict[str, int] = {}
        self._mean: np.ndarray | None = None  # [N_train, K]
        self._std: np.ndarray | None = None
        self._pooled_mean: np.ndarray | None = None  # [K]
        self._pooled_std: np.ndarray | None = None

    def fit(self, train: KpmArrays) -> None:
        """Learn every training cell's and the pooled mean and std of every measurement."""
        values = np.where(train.reported[..., None], train.values.astype(np.float64), np.nan)
        pooled_mean, pooled_std = _mean_std(values, (0, 1))
        mean, std = _mean_std(values, (0,))
        self._pooled_mean, self._pooled_std = pooled_mean, np.where(pooled_std > 0, pooled_std, 1.0)
        self._mean = np.where(np.isnan(mean), pooled_mean, mean)
        self._std = np.where(np.isnan(std), self._pooled_std, np.where(std > 0, std, 1.0))
        self._cells = {cell: i for i, cell in enumerate(train.cell_ids)}

    def statistics(self, cell_ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std [N, K] used for each of cell_ids (pooled for cells unseen in training)."""
        if self._mean is None or self._std is None or self._pooled_mean is None or self._pooled_std is None:
            raise RuntimeError(f"{self.name} is not fitted")
        known = np.array([cell in self._cells for cell in cell_ids], dtype=bool)
        index = np.array([self._cells.get(cell, 0) for cell in cell_ids], dtype=np.int64)
        mean = np.where(known[:, None], self._mean[index], self._pooled_mean)
        std = np.where(known[:, None], self._std[index], self._pooled_std)
        return mean, std

    def score(self, data: KpmArrays) -> np.ndarray:
        """Largest absolute z-score of every reported cell-period over its present measurements."""
        mean, std = self.statistics(data.cell_ids)
        z = np.abs(data.values.astype(np.float64) - mean) / std
        scores = np.fmax.reduce(z, axis=2)  # NaN only where every measurement is missing
        scores[~data.reported] = np.nan
        return scores
