"""The incident page's plot data: each attributed measurement of the cell over the hours before and during
the incident, against a normal level and band.

The model does not export the level it expects (its ONNX outputs are a score and a deviation per
measurement), so the band is derived from the cell's own history, honestly named as such: for each hour of
the day, the median (the level) and the 5th and 95th percentiles (the band) of the cell's values at that hour
over the `band_days` before the incident opened, leaving out the periods of the cell's recorded incidents. An
hour with fewer than `MIN_SAMPLES` values takes the quantiles of the whole lookback instead; no lookback, no
band."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rapp.console.incidents import Incident
from rapp.history import read_history
from rapp.reports.facts import HEADLINE_MEASUREMENTS
from rapp.reports.vocabulary import measurement_unit

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
QUANTILES = (0.05, 0.5, 0.95)
MIN_SAMPLES = 10
BAND_METHOD = (
    "the cell's own history: per hour of day, the median (level) and 5th to 95th percentile (band) of its "
    "values over the {days:g} days before the incident, its recorded incidents left out"
)


def _utc(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _column(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values.tolist()]


def _band(times: np.ndarray, normal_times: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, ...]:
    """(low, level, high) at each time from the normal values by hour of day; NaN without any."""
    out = np.full((len(QUANTILES), times.size), np.nan)
    present = ~np.isnan(normal)
    if not present.any():
        return tuple(out)
    hours, normal_hours = (times // HOUR_MS) % 24, (normal_times[present] // HOUR_MS) % 24
    kept = normal[present]
    overall = np.quantile(kept, QUANTILES)
    for hour in np.unique(hours):
        at_hour = kept[normal_hours == hour]
        out[:, hours == hour] = (np.quantile(at_hour, QUANTILES) if at_hour.size >= MIN_SAMPLES else overall)[:, None]
    return tuple(out)


def incident_plot(
    history_dir: Path, incident: Incident, others: Sequence[Incident], before_h: float, band_days: float
) -> dict[str, Any]:
    """The plot data of one incident (`others`: the cell's recorded incidents, left out of the band)."""
    start = incident.opened_ms - int(before_h * HOUR_MS)
    lookback = incident.opened_ms - int(band_days * DAY_MS)
    end = incident.last_ms + HOUR_MS
    frame = read_history(history_dir, start=_utc(min(start, lookback)), end=_utc(end), cells=[incident.cell_id])
    times = frame["timestamp"].astype("int64").to_numpy()
    normal = times < incident.opened_ms
    for other in others:
        normal &= ~((times >= other.opened_ms) & (times <= other.last_ms))
    shown = times >= start
    names = [str(a["measurement"]) for a in incident.attribution] or list(HEADLINE_MEASUREMENTS)
    series = []
    for name in (n for n in names if n in frame.columns):
        values = frame[name].to_numpy(dtype=np.float64)
        low, level, high = _band(times[shown], times[normal], values[normal])
        series.append({"measurement": name, "unit": measurement_unit(name), "times_ms": times[shown].tolist(),
                       "values": _column(values[shown]), "level": _column(level), "low": _column(low),
                       "high": _column(high)})  # fmt: skip
    return {
        "incident_id": incident.incident_id,
        "opened_ms": incident.opened_ms,
        "last_ms": incident.last_ms,
        "series": series,
        "band": {"method": BAND_METHOD.format(days=band_days), "samples": int(normal.sum())},
    }
