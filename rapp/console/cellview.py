"""The cell page's data: every measurement of one cell over a chosen span (ending at the cell's newest period,
not the wall clock), the spans of its recorded incidents to shade, and the latest round's forecast of the cell
(`rapp.forecasts`) with the breach limits in force on each measurement."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rapp.console.incidents import Incident
from rapp.forecasts import Forecasts, Limit
from rapp.history import read_history
from rapp.reports.vocabulary import measurement_unit

HOUR_MS = 3_600_000
SPANS_H = (1, 6, 24, 72, 168)  # the spans the page offers
_KEYS = ("timestamp", "node_id", "cell_id")


def _column(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values.tolist()]


def _forecast(forecasts: Forecasts | None, cell_id: str, measurement: str) -> dict[str, Any] | None:
    row = None if forecasts is None else forecasts.index.get(cell_id)
    if forecasts is None or row is None or measurement not in forecasts.measurements:
        return None
    values = forecasts.values[row, :, forecasts.measurements.index(measurement)].astype(np.float64)
    return {"times_ms": forecasts.times_ms.tolist(), "values": _column(values)}


def cell_plot(
    history_dir: Path,
    cell_id: str,
    end_ms: int,
    hours: float,
    incidents: Sequence[Incident],
    forecasts: Forecasts | None,
    limits: Sequence[Limit],
) -> dict[str, Any]:
    """The cell page's data over the `hours` before `end_ms` (its incidents: the cell's recorded ones)."""
    start_ms = end_ms - int(hours * HOUR_MS)
    frame = read_history(history_dir, start=pd.Timestamp(start_ms, unit="ms", tz="UTC"),
                         end=pd.Timestamp(end_ms, unit="ms", tz="UTC"), cells=[cell_id])  # fmt: skip
    times = frame["timestamp"].astype("int64").to_numpy()
    measurements = sorted(str(c) for c in frame.columns if c not in _KEYS)
    if forecasts is not None and cell_id in forecasts.index:
        measurements = sorted({*measurements, *forecasts.measurements})
    series = []
    for name in measurements:
        values = frame[name].to_numpy(dtype=np.float64) if name in frame.columns else np.full(times.size, np.nan)
        series.append({"measurement": name, "unit": measurement_unit(name), "times_ms": times.tolist(),
                       "values": _column(values), "forecast": _forecast(forecasts, cell_id, name),
                       "limits": [{"direction": lim.direction, "threshold": lim.threshold}
                                  for lim in limits if lim.measurement == name]})  # fmt: skip
    within = [i for i in incidents if i.cell_id == cell_id and i.last_ms >= start_ms and i.opened_ms <= end_ms]
    shaded = [{"incident_id": i.incident_id, "opened_ms": i.opened_ms, "last_ms": i.last_ms, "state": i.state}
              for i in within]  # fmt: skip
    return {
        "cell_id": cell_id,
        "node_id": str(frame["node_id"].iloc[-1]) if len(frame) else None,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "series": series,
        "incidents": shaded,
        "forecast_made_at_ms": None if forecasts is None or cell_id not in forecasts.index else forecasts.made_at_ms,
    }
