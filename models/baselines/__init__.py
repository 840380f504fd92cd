"""Baselines that `ranomaly eval` compares the main detector against: the seed designs' detectors and
two trivial references. Each implements models.api.Detector.
"""

from __future__ import annotations

from models.api import Detector
from models.baselines.isolation_forest import IsolationForestDetector, causal_features
from models.baselines.pca import PcaDetector
from models.baselines.seed_autoencoder import SeedAutoencoder
from models.baselines.three_sigma import ThreeSigmaDetector
from models.baselines.trivial import AlwaysAlarmDetector, RandomDetector

__all__ = [
    "AlwaysAlarmDetector",
    "IsolationForestDetector",
    "PcaDetector",
    "RandomDetector",
    "SeedAutoencoder",
    "ThreeSigmaDetector",
    "all_baselines",
    "causal_features",
]


def all_baselines(seed: int = 0, fast: bool = False) -> list[Detector]:
    """One of each baseline in a fixed order; fast: tiny training settings, for tests."""
    return [
        SeedAutoencoder(seed=seed, epochs=3, batch_size=256) if fast else SeedAutoencoder(seed=seed),
        IsolationForestDetector(seed=seed, n_estimators=25) if fast else IsolationForestDetector(seed=seed),
        PcaDetector(),
        ThreeSigmaDetector(),
        RandomDetector(seed=seed),
        AlwaysAlarmDetector(),
    ]
