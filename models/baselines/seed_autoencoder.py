"""The seed designs' autoencoder: one standardised KPM row in, its reconstruction out, scored by MSE."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from models.baselines._common import PooledScaler, on_grid
from ranomaly_contracts.dataset import KpmArrays


class _Network(nn.Module):
    """K -> 64 -> 32 -> 64 -> K with ReLU, dropout after the wide layers."""

    def __init__(self, n_inputs: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_inputs, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, n_inputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SeedAutoencoder:
    """Per-sample autoencoder on pooled-standardised rows (missing values as 0); score = row MSE.

    fit() keeps the last validation_fraction of the training periods for early stopping, learning-rate
    scheduling (ReduceLROnPlateau) and own_threshold, the 95th percentile of the reconstruction error
    there (the seed's own alarm threshold). The scaler is fitted on the periods before that part. Training
    is deterministic for a seed: it runs in a forked torch RNG on one thread.
    """

    name: str = "seed-autoencoder"

    def __init__(
        self,
        seed: int = 0,
        epochs: int = 30,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        dropout: float = 0.1,
        patience: int = 5,
        lr_patience: int = 2,
        lr_factor: float = 0.5,
        max_grad_norm: float = 1.0,
        validation_fraction: float = 0.15,
    ) -> None:
        self.seed = seed
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.patience = patience
        self.lr_patience = lr_patience
        self.lr_factor = lr_factor
        self.max_grad_norm = max_grad_norm
        self.validation_fraction = validation_fraction
        self.own_threshold: float = float("nan")
        self.validation_losses: list[float] = []  # mean validation MSE after every epoch run
        self._scaler = PooledScaler()
        self._network: _Network | None = None

    def fit(self, train: KpmArrays) -> None:
        """Train on the first periods, stop early on the last validation_fraction of them."""
        n_periods = len(train.times_ms)
        cut = n_periods - round(n_periods * self.validation_fraction)
        if cut < 1 or cut >= n_periods:
            raise ValueError(f"{n_periods} periods cannot be split into training and validation parts")
        fit_rows = train.values[:cut][train.reported[:cut]]
        validation_rows = train.values[cut:][train.reported[cut:]]
        if len(fit_rows) == 0 or len(validation_rows) == 0:
            raise ValueError("the training or the validation part has no reported cell-period")
        self._scaler.fit(fit_rows)
        x_fit = torch.from_numpy(self._scaler.transform(fit_rows).astype(np.float32))
        x_validation = torch.from_numpy(self._scaler.transform(validation_rows).astype(np.float32))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._network = self._train(x_fit, x_validation)
        finally:
            torch.set_num_threads(threads)
        self.own_threshold = float(np.percentile(self._errors(x_validation), 95))

    def _train(self, x_fit: torch.Tensor, x_validation: torch.Tensor) -> _Network:
        network = _Network(x_fit.shape[1], self.dropout)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.lr_factor, patience=self.lr_patience
        )
        loss_fn = nn.MSELoss()
        order = torch.Generator().manual_seed(self.seed)
        best_loss, best_state, stale = float("inf"), copy.deepcopy(network.state_dict()), 0
        self.validation_losses = []
        for _ in range(self.epochs):
            network.train()
            permutation = torch.randperm(len(x_fit), generator=order)
            for start in range(0, len(x_fit), self.batch_size):
                xb = x_fit[permutation[start : start + self.batch_size]]
                optimizer.zero_grad()
                loss = loss_fn(network(xb), xb)
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), self.max_grad_norm)
                optimizer.step()
            network.eval()
            with torch.no_grad():
                validation_loss = float(loss_fn(network(x_validation), x_validation))
            self.validation_losses.append(validation_loss)
            scheduler.step(validation_loss)
            if validation_loss < best_loss:
                best_loss, best_state, stale = validation_loss, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        network.load_state_dict(best_state)
        network.eval()
        return network

    def _errors(self, x: torch.Tensor) -> np.ndarray:
        """Mean squared reconstruction error of every standardised row, float64."""
        if self._network is None:
            raise RuntimeError(f"{self.name} is not fitted")
        with torch.no_grad():
            parts = [self._network(x[start : start + 65536]) for start in range(0, len(x), 65536)]
            reconstructed = torch.cat(parts).numpy() if parts else np.zeros((0, x.shape[1]), dtype=np.float32)
        return np.mean((reconstructed.astype(np.float64) - x.numpy().astype(np.float64)) ** 2, axis=1)

    def score(self, data: KpmArrays) -> np.ndarray:
        """Reconstruction MSE of every reported cell-period's standardised row; NaN where unreported."""
        if self._network is None:
            raise RuntimeError(f"{self.name} is not fitted")
        rows = data.values[data.reported]
        x = torch.from_numpy(self._scaler.transform(rows).astype(np.float32))
        return on_grid(self._errors(x), data.reported)
