"""Settings of the forecaster: window and horizon, network size, training schedule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForecasterConfig:
    """How the forecaster looks and learns.

    window and horizon count periods of the training data's period (60 s: 2 hours in, 12 minutes out).
    """

    window: int = 120  # input periods
    horizon: int = 12  # forecast periods, H
    patch: int = 4  # consecutive periods the LSTM reads as one step; divides window
    hidden: int = 64  # LSTM state size
    layers: int = 1  # stacked LSTM layers
    head_hidden: int = 128  # width of the head's hidden layer
    epochs: int = 6
    windows_per_epoch: int = 24_576  # training windows sampled (cell, origin) per epoch
    batch_size: int = 256
    learning_rate: float = 3e-3  # peak of a one-cycle schedule
    weight_decay: float = 1e-4
    gap_probability: float = 0.15  # share of training windows given an artificial gap of missing values
    seed: int = 0
    # torch CPU threads while training; None leaves torch's setting alone. The network is small: a second
    # thread gains little and, on cores shared with other work, slows training by orders of magnitude.
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.window < 2 or self.horizon < 1:
            raise ValueError(f"window must be >= 2 and horizon >= 1, got {self.window} and {self.horizon}")
        if self.patch < 1 or self.window % self.patch:
            raise ValueError(f"patch {self.patch} does not divide window {self.window}")
        if self.epochs < 1 or self.windows_per_epoch < 1 or self.batch_size < 1:
            raise ValueError("epochs, windows_per_epoch and batch_size must be positive")
