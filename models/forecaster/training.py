"""Training the forecaster on KPM arrays, and the trained forecaster's torch predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.forecaster.config import ForecasterConfig
from models.forecaster.features import (
    OUTPUT_NAMES,
    ModelInputs,
    gather_windows,
    prepare_inputs,
    time_features,
    window_origins,
)
from models.forecaster.network import ForecastNet
from ranomaly_contracts.dataset import KpmArrays

_STATS_WINDOWS = 4096  # training windows sampled to fit the normalisation buffers
_FLOOR_SHARE = 0.2  # scale floor: this share of the median window standard deviation


@dataclass
class Forecaster:
    """A trained forecaster: the network and what it was trained for."""

    net: ForecastNet
    config: ForecasterConfig
    measurements: tuple[str, ...]
    period_ms: int

    @property
    def window(self) -> int:
        """History periods the network reads."""
        return self.config.window

    @property
    def horizon(self) -> int:
        """Periods forecast, H."""
        return self.config.horizon

    def run(self, inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Every network output (see features.OUTPUT_NAMES) for prepared inputs."""
        self.net.eval()
        with torch.inference_mode():
            outputs = self.net(*(torch.from_numpy(a) for a in (inputs.values, inputs.mask, inputs.time_features)))
        return {name: out.numpy() for name, out in zip(OUTPUT_NAMES, outputs, strict=True)}

    def predict(self, values: np.ndarray, times_ms: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Raw-unit forecasts float32 [B, H, K] of histories values [B, L, K] (NaN where missing) at times_ms [B, L]."""
        inputs = prepare_inputs(values, times_ms, mask, self.window, self.horizon, self.period_ms)
        return self.run(inputs)["forecast"]


def _fit_normalisation(net: ForecastNet, history: np.ndarray, log_transform: np.ndarray) -> None:
    """Set the network's normalisation buffers from sample training histories [S, W, K]."""
    net.log_transform.copy_(torch.from_numpy(log_transform))
    net.scale_floor.fill_(0.0)
    mask = np.isfinite(history)
    with torch.no_grad():
        center, scale = net.window_stats(torch.from_numpy(np.where(mask, history, 0.0)), torch.from_numpy(mask).float())
    usable = mask.sum(axis=1) >= 2  # [S, K]
    floor = np.empty(len(log_transform), dtype=np.float32)
    for k in range(len(floor)):
        spread = scale[usable[:, k], k].numpy()
        floor[k] = max(_FLOOR_SHARE * float(np.median(spread)), 1e-4) if spread.size else 1.0
    net.scale_floor.copy_(torch.from_numpy(floor))
    scale = torch.sqrt(scale**2 + net.scale_floor**2)
    rows = torch.from_numpy(usable.all(axis=1))
    for buffer_mean, buffer_std, stat in (
        (net.center_mean, net.center_std, center[rows]),
        (net.log_scale_mean, net.log_scale_std, torch.log(scale[rows])),
    ):
        if len(stat) >= 2:
            buffer_mean.copy_(stat.mean(dim=0))
            buffer_std.copy_(stat.std(dim=0).clamp(min=1e-3))


def _add_gaps(mask: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Mark a random span of each chosen history [B, W, K] as missing, as a silent cell would be."""
    batch, window, _ = mask.shape
    chosen = np.flatnonzero(rng.random(batch) < probability)
    lengths = rng.integers(1, window // 2 + 1, size=len(chosen))
    starts = rng.integers(0, window - lengths + 1)
    steps = np.arange(window)
    gaps = (steps >= starts[:, None]) & (steps < (starts + lengths)[:, None])
    mask[chosen] &= ~gaps[:, :, None]
    return mask


def _batch_loss(
    net: ForecastNet, values: np.ndarray, features: np.ndarray, config: ForecasterConfig, rng: np.random.Generator
) -> torch.Tensor:
    """Masked mean absolute error in the normalised space for windows values [B, W + H, K]."""
    history, target = values[:, : config.window], values[:, config.window :]
    mask = _add_gaps(np.isfinite(history), config.gap_probability, rng)
    _, forecast_norm, center, scale = net(
        torch.from_numpy(np.where(mask, history, 0.0)), torch.from_numpy(mask).float(), torch.from_numpy(features)
    )
    present = torch.from_numpy(np.isfinite(target))
    target_norm = (net.transform(torch.from_numpy(np.nan_to_num(target))) - center[:, None]) / scale[:, None]
    errors = torch.where(present, (forecast_norm - target_norm).abs(), torch.zeros_like(forecast_norm))
    return errors.sum() / present.sum().clamp(min=1)


def train_forecaster(
    arrays: KpmArrays,
    config: ForecasterConfig | None = None,
    train_rows: slice | None = None,
    train_cells: np.ndarray | None = None,
) -> Forecaster:
    """Train one forecaster for all cells on some periods (rows of the grid) and cells of arrays."""
    config = config or ForecasterConfig()
    if len(arrays.times_ms) < 2:
        raise ValueError("need at least two periods to know the reporting period")
    period_ms = int(arrays.times_ms[1] - arrays.times_ms[0])
    rows = train_rows if train_rows is not None else slice(None)
    cells = np.arange(len(arrays.cell_ids)) if train_cells is None else np.asarray(train_cells, dtype=np.int64)
    values = arrays.values[rows][:, cells].astype(np.float32)
    features = time_features(arrays.times_ms[rows])
    origins = window_origins(slice(None), len(values), config.window, config.horizon, 0, 1)
    if not len(origins) or not len(cells):
        raise ValueError(
            f"{len(values)} periods of {len(cells)} cells hold no window of {config.window}+{config.horizon}"
        )
    # log1p where no training value is negative (NaN compares False, so missing values do not count)
    log_transform = ~np.asarray((values < 0).any(axis=(0, 1)))
    rng = np.random.default_rng(config.seed)

    def sample(count: int) -> tuple[np.ndarray, np.ndarray]:
        picked, cell = rng.choice(origins, count), rng.integers(0, len(cells), count)
        windows = gather_windows(values, picked, cell, config.window, config.horizon)
        return windows, features[picked[:, None] + np.arange(-config.window, config.horizon)]

    previous_threads = torch.get_num_threads()
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = ForecastNet(len(arrays.measurements), config)
        _fit_normalisation(net, sample(_STATS_WINDOWS)[0][:, : config.window], log_transform)
        steps = -(-config.windows_per_epoch // config.batch_size)
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, config.learning_rate, total_steps=config.epochs * steps
        )
        net.train()
        for _ in range(config.epochs * steps):
            loss = _batch_loss(net, *sample(config.batch_size), config, rng)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
        net.eval()
    finally:
        torch.set_num_threads(previous_threads)
    return Forecaster(net=net, config=config, measurements=tuple(arrays.measurements), period_ms=period_ms)
