"""The torch network, normalisation included, so that the exported graph maps raw values to raw forecasts."""

from __future__ import annotations

import torch
from torch import nn

from models.forecaster.config import ForecasterConfig
from models.forecaster.features import N_TIME_FEATURES

_Z_CLIP = 10.0  # normalised inputs beyond this many window scales are clipped
_LOG_MAX = 40.0  # transformed forecasts are capped here before expm1


class ForecastNet(nn.Module):
    """Per-window normalisation, an LSTM encoder over patches of the history and an MLP head for H x K outputs.

    Buffers set by training: which measurements are log1p-transformed, the scale floor, and the mean and
    standard deviation of window centres and log scales over training windows (for the head's cell context).
    """

    log_transform: torch.Tensor
    scale_floor: torch.Tensor
    center_mean: torch.Tensor
    center_std: torch.Tensor
    log_scale_mean: torch.Tensor
    log_scale_std: torch.Tensor

    def __init__(self, n_measurements: int, config: ForecasterConfig) -> None:
        super().__init__()
        k, hidden = n_measurements, config.hidden
        self.window, self.horizon, self.patch, self.n_measurements = config.window, config.horizon, config.patch, k
        self.register_buffer("log_transform", torch.zeros(k, dtype=torch.bool))
        self.register_buffer("scale_floor", torch.full((k,), 1e-3))
        self.register_buffer("center_mean", torch.zeros(k))
        self.register_buffer("center_std", torch.ones(k))
        self.register_buffer("log_scale_mean", torch.zeros(k))
        self.register_buffer("log_scale_std", torch.ones(k))
        self.lstm = nn.LSTM(config.patch * 2 * k + N_TIME_FEATURES, hidden, num_layers=config.layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden + 2 * k + config.horizon * N_TIME_FEATURES, config.head_hidden),
            nn.GELU(),
            nn.Linear(config.head_hidden, config.horizon * k),
        )

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        """log1p for non-negative measurements (negatives clamped to 0), identity for the others; [..., K]."""
        return torch.where(self.log_transform, torch.log1p(values.clamp(min=0.0)), values)

    def untransform(self, transformed: torch.Tensor) -> torch.Tensor:
        """The inverse of transform, into raw units (exp - 1 rather than expm1, which the ONNX exporter lacks:
        they differ by under 1e-7 in raw units)."""
        raw = (torch.exp(transformed.clamp(max=_LOG_MAX)) - 1.0).clamp(min=0.0)
        return torch.where(self.log_transform, raw, transformed)

    def window_stats(self, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked mean and floored standard deviation [B, K] of the transformed history [B, W, K]."""
        x = self.transform(values) * mask
        count = mask.sum(dim=1).clamp(min=1.0)
        center = x.sum(dim=1) / count
        variance = (((x - center[:, None]) * mask) ** 2).sum(dim=1) / count
        return center, torch.sqrt(variance + self.scale_floor**2)

    def forward(
        self, values: torch.Tensor, mask: torch.Tensor, time_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forecast [B, H, K] in raw units and normalised, with the window's centre and scale [B, K]."""
        values = torch.where(mask > 0.5, values, torch.zeros_like(values))
        center, scale = self.window_stats(values, mask)
        z = ((self.transform(values) - center[:, None]) / scale[:, None]).clamp(-_Z_CLIP, _Z_CLIP) * mask
        n_steps = self.window // self.patch  # the LSTM reads patches of periods: values and masks, then the last time
        patches = torch.cat([z, mask], dim=-1).reshape(-1, n_steps, self.patch * 2 * self.n_measurements)
        steps = torch.cat([patches, time_features[:, self.patch - 1 : self.window : self.patch]], dim=-1)
        encoded, _ = self.lstm(steps)
        context = torch.cat(
            [
                (center - self.center_mean) / self.center_std,
                (torch.log(scale) - self.log_scale_mean) / self.log_scale_std,
            ],
            dim=-1,
        )
        head_input = torch.cat([encoded[:, -1], context, time_features[:, self.window :].flatten(1)], dim=-1)
        forecast_norm = self.head(head_input).reshape(-1, self.horizon, self.n_measurements)
        forecast = self.untransform(center[:, None] + scale[:, None] * forecast_norm)
        return forecast, forecast_norm, center, scale
