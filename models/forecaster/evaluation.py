"""Forecast accuracy of a forecaster against seasonal naive and persistence, on the same test windows.

Every method forecasts the H periods after each origin of the test rows, for every cell. A point (cell,
period, measurement) counts when its actual value, the seasonal naive forecast and the persistence
forecast all exist, so that every method is scored on the same points.

- seasonal naive: the value one day (86 400 s) before the forecast period;
- persistence: the last value present in the forecaster's history window;
- MAE: mean |actual - forecast| per measurement, in the measurement's unit;
- nMAE (overall MAE): the mean over measurements of MAE / mean |actual|, so that kbit/s and dB weigh alike;
- sMAPE: mean of 200 |actual - forecast| / (|actual| + |forecast|) in percent (0 to 200), a term being 0
  when actual and forecast are both 0; per measurement, and overall as the mean over measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.forecaster.features import DAY_MS, gather_windows, window_origins
from ranomaly_contracts.dataset import KpmArrays

METHODS = ("model", "seasonal_naive", "persistence")


class Predictor(Protocol):
    """A forecaster, torch or ONNX."""

    @property
    def period_ms(self) -> int: ...

    @property
    def window(self) -> int: ...

    @property
    def horizon(self) -> int: ...

    def predict(self, values: np.ndarray, times_ms: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Scores:
    """Accuracy of one method."""

    mae: dict[str, float]  # per measurement, in its unit
    smape: dict[str, float]  # per measurement, percent
    nmae: float  # overall: mean over measurements of MAE / mean |actual|
    smape_overall: float  # mean over measurements of sMAPE
    n_points: int  # scored (cell, period, measurement) points


def smape_terms(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """200 |actual - forecast| / (|actual| + |forecast|) elementwise, 0 where both are 0."""
    denominator = np.abs(actual) + np.abs(forecast)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, 200.0 * np.abs(actual - forecast) / safe, 0.0)


def last_present(history: np.ndarray) -> np.ndarray:
    """The last finite value of each history [B, W, K] along W: [B, K], NaN where there is none."""
    steps = np.where(np.isfinite(history), np.arange(history.shape[1])[None, :, None], 0).max(axis=1)
    return np.take_along_axis(history, steps[:, None], axis=1)[:, 0]  # step 0 is NaN where none is finite


class _Totals:
    """Running sums of absolute errors and sMAPE terms per method and measurement."""

    def __init__(self, n_measurements: int) -> None:
        self.abs_error = {m: np.zeros(n_measurements) for m in METHODS}
        self.smape = {m: np.zeros(n_measurements) for m in METHODS}
        self.abs_actual = np.zeros(n_measurements)
        self.count = np.zeros(n_measurements)

    def add(self, actual: np.ndarray, forecasts: dict[str, np.ndarray]) -> None:
        valid = np.isfinite(actual) & np.isfinite(forecasts["seasonal_naive"]) & np.isfinite(forecasts["persistence"])
        axes = tuple(range(actual.ndim - 1))
        self.count += valid.sum(axis=axes)
        self.abs_actual += np.where(valid, np.abs(actual), 0.0).sum(axis=axes)
        for method, forecast in forecasts.items():
            error = np.where(valid, np.abs(actual - forecast), 0.0)
            if not np.isfinite(error).all():
                raise ValueError(f"{method} gave a non-finite forecast where the actual value exists")
            self.abs_error[method] += error.sum(axis=axes)
            self.smape[method] += np.where(valid, smape_terms(actual, forecast), 0.0).sum(axis=axes)

    def scores(self, measurements: tuple[str, ...]) -> dict[str, Scores]:
        if not self.count.any():
            raise ValueError("no test point has an actual value and both baselines")
        count = np.where(self.count > 0, self.count, np.nan)
        out = {}
        for method in METHODS:
            mae, smape = self.abs_error[method] / count, self.smape[method] / count
            out[method] = Scores(
                mae=dict(zip(measurements, mae.tolist(), strict=True)),
                smape=dict(zip(measurements, smape.tolist(), strict=True)),
                nmae=float(np.nanmean(mae / np.where(self.abs_actual > 0, self.abs_actual / count, np.nan))),
                smape_overall=float(np.nanmean(smape)),
                n_points=int(self.count.sum()),
            )
        return out


def evaluate_forecaster(
    forecaster: Predictor,
    arrays: KpmArrays,
    test_rows: slice,
    cells: np.ndarray | None = None,
    stride: int | None = None,
    batch_windows: int = 4096,
) -> dict[str, Scores]:
    """Scores of the forecaster, seasonal naive and persistence (keys of METHODS) on the test rows.

    Origins are every stride periods (default H) such that the H forecast periods lie in test_rows; the
    history before an origin may come from earlier rows. cells: column indices (default all).
    """
    period_ms = int(arrays.times_ms[1] - arrays.times_ms[0])
    if period_ms != forecaster.period_ms:
        raise ValueError(f"the data's period is {period_ms} ms, the forecaster's {forecaster.period_ms} ms")
    if DAY_MS % period_ms:
        raise ValueError(f"a day is not a whole number of {period_ms} ms periods")
    lag, window, horizon = DAY_MS // period_ms, forecaster.window, forecaster.horizon
    n_periods = len(arrays.times_ms)
    origins = window_origins(test_rows, n_periods, window, horizon, lag, stride or horizon)
    cell_index = np.arange(len(arrays.cell_ids)) if cells is None else np.asarray(cells, dtype=np.int64)
    pairs_origin = np.repeat(origins, len(cell_index))
    pairs_cell = np.tile(cell_index, len(origins))
    totals = _Totals(len(arrays.measurements))
    for start in range(0, len(pairs_origin), batch_windows):
        origin, cell = pairs_origin[start : start + batch_windows], pairs_cell[start : start + batch_windows]
        windows = gather_windows(arrays.values, origin, cell, window, horizon)
        history, actual = windows[:, :window], windows[:, window:].astype(np.float64)
        times = arrays.times_ms[origin[:, None] + np.arange(-window, 0)]
        forecasts = {
            "model": forecaster.predict(history, times).astype(np.float64),
            "seasonal_naive": gather_windows(arrays.values, origin - lag, cell, 0, horizon).astype(np.float64),
            "persistence": np.repeat(last_present(history)[:, None], horizon, axis=1).astype(np.float64),
        }
        totals.add(actual, forecasts)
    return totals.scores(tuple(arrays.measurements))
