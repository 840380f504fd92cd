"""Values outside their measurement's possible range: masked as "no value", counted, and watched per cell.

The ranges are the contracts' (ranomaly_contracts.measurements); measurements without one are not checked.
Values are masked as rows arrive; what was masked is counted, and each cell's runs move on, once per scored
batch. A measurement of a cell that stays out of range for `incident_periods` reported periods in a row
opens a data-quality incident: logged (at a bounded rate), counted per measurement and listed in health
until the measurement is back in range or the cell is released. Rows that waited for an earlier period
are scored masked, but neither counted nor watched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog

from ranomaly_contracts.measurements import value_bounds
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.cells import CellTable, extend_rows
from xapp.metrics import XappMetrics

log = structlog.get_logger(__name__)


class RangeCheck:
    """Masks out-of-range values of rows about to be scored and tracks how long each stays out."""

    def __init__(
        self, measurements: Sequence[str], incident_periods: int, metrics: XappMetrics, errors: RateLimitedLog
    ) -> None:
        self.measurements = tuple(measurements)
        self.low, self.high = value_bounds(self.measurements)
        self.checked = bool(np.isfinite(self.low).any() or np.isfinite(self.high).any())
        largest = np.finfo(np.float32).max  # bounds of `within`: infinite values fail them too
        self._within_low, self._within_high = np.maximum(self.low, -largest), np.minimum(self.high, largest)
        self.incident_periods = incident_periods
        # reported periods out of range in a row, up to incident_periods + 1 (one byte a value at the default)
        self.run = np.zeros((0, len(self.measurements)), dtype=np.min_scalar_type(incident_periods + 1))
        self.flagged = np.zeros(0, dtype=bool)  # slots with a run going
        self.flagged_count = 0
        self.incidents: dict[tuple[int, int], str] = {}  # (slot, measurement index) -> cell id, open now
        self._masked = [metrics.masked_values.labels(name) for name in self.measurements]
        self._metrics = metrics
        self._errors = errors

    def resize(self, capacity: int) -> None:
        """Grow to capacity slots."""
        self.run = extend_rows(self.run, capacity, 0)
        self.flagged = extend_rows(self.flagged, capacity, False)

    def reset(self, slot: int) -> None:
        """A new cell in this slot: no run, no incident."""
        self.run[slot] = 0
        self.flagged_count -= int(self.flagged[slot])
        self.flagged[slot] = False
        if self.incidents:
            for k in range(len(self.measurements)):
                if self.incidents.pop((slot, k), None) is not None:
                    self._metrics.data_quality_open.dec()

    def within(self, values: np.ndarray) -> bool:
        """Whether every value of values [n, K] is finite and in range (one pass, for the routine path)."""
        return bool(((values >= self._within_low) & (values <= self._within_high)).all())

    def mask(self, values: np.ndarray) -> np.ndarray | None:
        """Set out-of-range values of rows [n, K] to NaN in place; where they were (None: nowhere)."""
        if not self.checked:
            return None
        outside = (values < self.low) | (values > self.high)
        if not outside.any():
            return None
        values[outside] = np.nan
        return outside

    def observe(
        self, slots: np.ndarray, gap: np.ndarray, masked: list[tuple[int, np.ndarray]], table: CellTable
    ) -> None:
        """A scored batch: rows of slots [n] (gap [n]: not reported), with masked [(first row, [rows, K])]."""
        if not masked and not self.flagged_count:
            return
        outside = np.zeros((len(slots), len(self.measurements)), dtype=bool)
        for first, part in masked:
            outside[first : first + len(part)] = part
        if masked:
            per_measurement = outside.sum(axis=0)
            for k in np.flatnonzero(per_measurement).tolist():
                self._masked[k].inc(int(per_measurement[k]))
            row = int(np.argmax(outside.any(axis=1)))
            self._errors.warning("out_of_range", "values_masked", reason="out_of_range",
                                 values=int(per_measurement.sum()), cell=table.cell_ids[int(slots[row])],
                                 node=table.node_ids[int(slots[row])])  # fmt: skip
        reported = ~gap
        self._runs(slots[reported], outside[reported], table)

    def _runs(self, slots: np.ndarray, outside: np.ndarray, table: CellTable) -> None:
        """Runs go on where outside [n, K], end elsewhere; incidents open at incident_periods, close at the end."""
        run = self.run[slots]
        if self.incidents:
            for i, k in zip(*np.nonzero((run > 0) & ~outside), strict=True):
                self._close(int(slots[i]), int(k))
        run = np.where(outside, np.minimum(run, self.incident_periods) + 1, 0).astype(self.run.dtype)
        self.run[slots] = run
        flagged = run.any(axis=1)
        self.flagged_count += int(flagged.sum()) - int(self.flagged[slots].sum())
        self.flagged[slots] = flagged
        for i, k in zip(*np.nonzero(run == self.incident_periods), strict=True):
            self._open(int(slots[i]), int(k), table)

    def _open(self, slot: int, k: int, table: CellTable) -> None:
        cell = self.incidents[(slot, k)] = table.cell_ids[slot]
        measurement = self.measurements[k]
        self._metrics.data_quality_incidents.labels(measurement).inc()
        self._metrics.data_quality_open.inc()
        node = table.node_ids[slot]
        self._errors.warning(f"data_quality:{measurement}", "data_quality_incident_opened", cell=cell, node=node,
                             measurement=measurement, periods=self.incident_periods)  # fmt: skip

    def _close(self, slot: int, k: int) -> None:
        cell = self.incidents.pop((slot, k), None)
        if cell is not None:
            self._metrics.data_quality_open.dec()
            self._errors.warning(f"data_quality_closed:{self.measurements[k]}", "data_quality_incident_closed",
                                 cell=cell, measurement=self.measurements[k])  # fmt: skip
