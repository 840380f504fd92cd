"""Model inputs from KPM histories, in numpy only: the ONNX runner shares this module with training.

The network reads three arrays: ``values`` float32 [B, W, K] (raw units, 0 where missing), ``mask``
float32 [B, W, K] (1 where a value is present) and ``time_features`` float32 [B, W + H, 4] (the W history
periods, then the H forecast periods).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
_FIRST_MONDAY_MS = 4 * DAY_MS  # 1970-01-05, a Monday
N_TIME_FEATURES = 4
INPUT_NAMES = ("values", "mask", "time_features")
# raw-unit forecast [B, H, K]; the same in the normalised space [B, H, K]; the window's centre and scale [B, K]
OUTPUT_NAMES = ("forecast", "forecast_norm", "center", "scale")


@dataclass(frozen=True)
class ModelInputs:
    """What the network (torch or ONNX) is fed."""

    values: np.ndarray  # float32 [B, W, K], raw units, 0 where missing
    mask: np.ndarray  # float32 [B, W, K], 1 where a value is present
    time_features: np.ndarray  # float32 [B, W + H, 4]


def time_features(times_ms: np.ndarray) -> np.ndarray:
    """sin and cos of the time of day and of the time of week (UTC, week from Monday 00:00), float32 [..., 4]."""
    t = np.asarray(times_ms, dtype=np.int64)
    day = 2 * np.pi * (t % DAY_MS) / DAY_MS
    week = 2 * np.pi * ((t - _FIRST_MONDAY_MS) % WEEK_MS) / WEEK_MS
    return np.stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=-1).astype(np.float32)


def prepare_inputs(
    values: np.ndarray,
    times_ms: np.ndarray,
    mask: np.ndarray | None,
    window: int,
    horizon: int,
    period_ms: int,
) -> ModelInputs:
    """Inputs for histories values [B, L, K] (NaN where missing) collected at times_ms int64 [B, L].

    mask (bool [B, L, K]) may mark further values as missing. The last `window` periods are used; a
    shorter history is padded at its start with missing values. Forecast periods follow the last time.
    """
    if values.ndim != 3 or times_ms.shape != values.shape[:2]:
        raise ValueError(f"expected values [B, L, K] and times [B, L], got {values.shape} and {times_ms.shape}")
    present = np.isfinite(values) if mask is None else np.asarray(mask, dtype=bool) & np.isfinite(values)
    values, present, times = values[:, -window:], present[:, -window:], np.asarray(times_ms, np.int64)[:, -window:]
    batch, length, n_measurements = values.shape
    if length == 0:
        raise ValueError("the history holds no period")
    missing = window - length
    if missing:
        values = np.concatenate([np.zeros((batch, missing, n_measurements), values.dtype), values], axis=1)
        present = np.concatenate([np.zeros((batch, missing, n_measurements), bool), present], axis=1)
        before = times[:, :1] - period_ms * np.arange(missing, 0, -1, dtype=np.int64)
        times = np.concatenate([before, times], axis=1)
    after = times[:, -1:] + period_ms * np.arange(1, horizon + 1, dtype=np.int64)
    return ModelInputs(
        values=np.where(present, values, 0.0).astype(np.float32),
        mask=present.astype(np.float32),
        time_features=time_features(np.concatenate([times, after], axis=1)),
    )


def gather_windows(values: np.ndarray, origins: np.ndarray, cells: np.ndarray, before: int, after: int) -> np.ndarray:
    """Rows origin - before to origin + after - 1 of values [T, N, K] per (origin, cell): [B, before + after, K]."""
    rows = origins[:, None] + np.arange(-before, after)
    return values[rows, cells[:, None]]


def window_origins(rows: slice, n_periods: int, window: int, horizon: int, lag: int, stride: int) -> np.ndarray:
    """Origins, every stride periods, whose H targets lie in rows and which have window and lag periods before."""
    start, stop, _ = rows.indices(n_periods)
    first = max(start, window, lag)
    return np.arange(first, stop - horizon + 1, stride, dtype=np.int64)
