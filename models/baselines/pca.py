"""The seed designs' PCA detector: squared reconstruction error of a pooled-standardised row."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from models.baselines._common import PooledScaler, on_grid
from ranomaly_contracts.dataset import KpmArrays


class PcaDetector:
    """PCA keeping `variance` of the variance of pooled-standardised rows (missing values as 0).

    Score = sum over measurements of the squared difference between the standardised row and its
    projection on the kept components; NaN where unreported.
    """

    name: str = "pca"

    def __init__(self, variance: float = 0.95) -> None:
        self.variance = variance
        self._scaler = PooledScaler()
        self._pca: PCA | None = None

    def fit(self, train: KpmArrays) -> None:
        """Fit the scaler and the components on every reported training row."""
        x = self._scaler.fit(train.values[train.reported]).transform(train.values[train.reported])
        self._pca = PCA(n_components=self.variance, svd_solver="full").fit(x)

    def score(self, data: KpmArrays) -> np.ndarray:
        """Squared reconstruction error of every reported cell-period."""
        if self._pca is None:
            raise RuntimeError(f"{self.name} is not fitted")
        x = self._scaler.transform(data.values[data.reported])
        if len(x) == 0:
            return on_grid(np.zeros(0), data.reported)
        reconstructed = self._pca.inverse_transform(self._pca.transform(x))
        return on_grid(np.sum((x - reconstructed) ** 2, axis=1), data.reported)
