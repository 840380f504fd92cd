"""Values outside their measurement's possible range: masked as "no value", counted, and watched per cell.

The ranges are the contracts' (ranomaly_contracts.measurements); measurements without one are not checked.
A measurement of a cell that stays out of range for `incident_periods` reported periods in a row opens a
data-quality incident: logged (at a bounded rate), counted per measurement and listed in health until the
measurement is back in range or the cell is released.
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
        self.incident_periods = incident_periods
        self.run = np.zeros((0, len(self.measurements)), dtype=np.int32)  # reported periods out of range in a row
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
        for k in range(len(self.measurements)):
            if self.incidents.pop((slot, k), None) is not None:
                self._metrics.data_quality_open.dec()

    def in_range(self, slots: np.ndarray) -> None:
        """Rows of these slots came with every value in range: runs going on them end."""
        if self.flagged_count and self.flagged[slots].any():
            self._runs(slots, np.zeros((len(slots), len(self.measurements)), dtype=bool), None)

    def mask(self, slots: np.ndarray, values: np.ndarray, table: CellTable) -> np.ndarray | None:
        """Set out-of-range values of rows [n, K] (about to be scored) to NaN in place; where (None: nowhere).

        Counts them, and moves each cell's runs and data-quality incidents on.
        """
        if not self.checked:
            return None
        outside = (values < self.low) | (values > self.high)
        if not outside.any():
            self.in_range(slots)
            return None
        values[outside] = np.nan
        per_measurement = outside.sum(axis=0)
        for k in np.flatnonzero(per_measurement).tolist():
            self._masked[k].inc(int(per_measurement[k]))
        first = int(slots[int(np.argmax(outside.any(axis=1)))])
        self._errors.warning("out_of_range", "values_masked", reason="out_of_range", values=int(per_measurement.sum()),
                             cell=table.cell_ids[first], node=table.node_ids[first])  # fmt: skip
        self._runs(slots, outside, table)
        return outside

    def _runs(self, slots: np.ndarray, outside: np.ndarray, table: CellTable | None) -> None:
        """Runs go on where outside [n, K], end elsewhere; incidents open at incident_periods, close at the end."""
        run = self.run[slots]
        if self.incidents:
            for i, k in zip(*np.nonzero((run > 0) & ~outside), strict=True):
                self._close(int(slots[i]), int(k))
        run = (run + 1) * outside
        self.run[slots] = run
        flagged = run.any(axis=1)
        self.flagged_count += int(flagged.sum()) - int(self.flagged[slots].sum())
        self.flagged[slots] = flagged
        if table is not None:
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
