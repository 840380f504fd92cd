"""Each replica's share of the per-period network summary (STREAM_NETWORK_SUMMARY), for network context.

Per period, per node this replica holds, per measurement: the mean of the values its cells reported and how
many there were (`ranomaly_contracts.network_summary` has the entry's format). It is fed with the rows the
engine scores, as each batch goes to scoring: no second decode of the stream messages, and sums in numpy by
node number. Rows with no value and values masked out of range are not counted; gap rows (periods a cell did
not report) are not rows of the summary. A period is written once it is `settle_periods` behind the newest
period seen, so rows that arrive late within the lateness bound are in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ranomaly_contracts.network_summary import SummaryEntry
from xapp.batch import Rows
from xapp.cells import CellTable

_MAX_OPEN_PERIODS = 64  # periods kept open at most (a node far behind the others is dropped, not buffered)


class _PeriodSums:
    """Sums and counts of one period by node number (rows) and measurement (columns)."""

    def __init__(self, nodes: int, k: int) -> None:
        self.sums = np.zeros((nodes, k))
        self.counts = np.zeros((nodes, k), dtype=np.int32)
        self.seen = np.zeros(nodes, dtype=bool)

    def add(self, nodes: np.ndarray, values: np.ndarray, present: np.ndarray) -> None:
        if nodes.max() >= len(self.seen):  # nodes added since the period opened
            grow = int(nodes.max()) + 1 - len(self.seen)
            self.sums = np.pad(self.sums, ((0, grow), (0, 0)))
            self.counts = np.pad(self.counts, ((0, grow), (0, 0)))
            self.seen = np.pad(self.seen, (0, grow))
        if not (nodes[1:] >= nodes[:-1]).all():  # a batch's rows come node by node, nearly always in order
            order = np.argsort(nodes, kind="stable")
            nodes, values, present = nodes[order], values[order], present[order]
        starts = np.flatnonzero(np.concatenate(([True], nodes[1:] != nodes[:-1])))
        held = nodes[starts]  # each node once: its rows are summed first, then added
        self.sums[held] += np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
        self.counts[held] += np.add.reduceat(present, starts, axis=0, dtype=np.int32)
        self.seen[held] = True


class NetworkSummary:
    """Sums and counts per (period, node), fed with the scored rows, handed out once a period settled."""

    def __init__(
        self, replica: int, table: CellTable, measurements: Sequence[str], period_ms: int, settle_periods: int
    ) -> None:
        self.replica = replica
        self.table = table
        self.measurements = list(measurements)
        self.period_ms = period_ms
        self.settle_ms = settle_periods * period_ms
        self._open: dict[int, _PeriodSums] = {}
        self._newest = 0
        self._written = -1  # the newest period written

    def observe(self, rows: Rows) -> None:
        """Add the reported rows of one scoring batch (nearly always of one period, and without gap rows)."""
        slots, periods, values, present = rows.slots, rows.period_ms, rows.x, rows.mask > 0
        if rows.gap.any():
            reported = ~rows.gap
            slots, periods, values, present = slots[reported], periods[reported], values[reported], present[reported]
        if not len(slots):
            return
        nodes = self.table.node_number[slots]
        for period, pick in _by_period(periods):
            if period <= self._written:
                continue  # too late: its entry was written
            sums = self._open.get(period)
            if sums is None:
                sums = self._open[period] = _PeriodSums(len(self.table.node_names), len(self.measurements))
            sums.add(nodes[pick], values[pick], present[pick])
            self._newest = max(self._newest, period)
        while len(self._open) > _MAX_OPEN_PERIODS:
            del self._open[min(self._open)]

    def settled(self) -> list[bytes]:
        """The entries of the periods now `settle_periods` behind the newest, oldest first (each once)."""
        due = sorted(period for period in self._open if period <= self._newest - self.settle_ms)
        if due:
            self._written = max(self._written, due[-1])
        return [self._entry(period, self._open.pop(period)) for period in due]

    def _entry(self, period: int, sums: _PeriodSums) -> bytes:
        held = np.flatnonzero(sums.seen)
        counts = sums.counts[held]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums.sums[held] / counts, np.nan)
        names = self.table.node_names
        return SummaryEntry(self.replica, period, self.period_ms, self.measurements, [names[i] for i in held],
                            counts, means).encode()  # fmt: skip


def _by_period(periods: np.ndarray) -> list[tuple[int, slice | np.ndarray]]:
    """Each period of the rows and which rows are of it (a slice of all of them when there is one)."""
    first = int(periods[0])
    if (periods == first).all():
        return [(first, slice(None))]
    return [(period, periods == period) for period in np.unique(periods).tolist()]
