"""Each replica's share of the per-period network summary (STREAM_NETWORK_SUMMARY), for network context.

Per period, per node this replica holds, per measurement: the mean of the values its cells reported and how
many there were (records with no value, and values that are not finite, are not counted). One stream entry
per replica and period, JSON: `{"replica": int, "period_start_ms": int, "period_ms": int, "measurements":
[str], "nodes": {node id: {"count": [int], "mean": [float | null]}}}` (lists in `measurements` order; null
where count is 0). A period is written once it is `settle_periods` behind the newest period seen, so rows
that arrive late within the lateness bound are in it. A reader joins the replicas' entries of a period.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import numpy as np

from ranomaly_contracts.e2.v1 import e2_pb2 as pb

_MAX_OPEN_PERIODS = 64  # periods kept open at most (a node far behind the others is dropped, not buffered)


class NetworkSummary:
    """Sums and counts per (period, node), fed with the stream messages, handed out once a period settled."""

    def __init__(self, replica: int, measurements: Sequence[str], period_ms: int, settle_periods: int) -> None:
        self.replica = replica
        self.measurements = list(measurements)
        self.period_ms = period_ms
        self.settle_ms = settle_periods * period_ms
        self._open: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}  # period -> node -> (sum, count)
        self._newest = 0
        self._written = -1  # the newest period written

    def observe(self, message: pb.IndicationBatch) -> None:
        """Add one stream message's values (compact indications with the subscription's k measurements)."""
        k = len(self.measurements)
        indications = [ind for ind in message.indications if ind.cell_ids and len(ind.values) == len(ind.cell_ids) * k]
        if not indications:
            return
        total = sum(len(ind.values) for ind in indications)
        values = np.fromiter(itertools.chain.from_iterable(ind.values for ind in indications), np.float64, total)
        offset = 0
        for ind in indications:
            if ind.no_value:
                values[offset + np.asarray(ind.no_value, dtype=np.int64)] = np.nan
            offset += len(ind.values)
        rows = values.reshape(-1, k)
        valid = np.isfinite(rows)
        starts = np.cumsum([0] + [len(ind.cell_ids) for ind in indications[:-1]])
        sums = np.add.reduceat(np.where(valid, rows, 0.0), starts, axis=0)
        counts = np.add.reduceat(valid.astype(np.int64), starts, axis=0)
        for i, ind in enumerate(indications):
            period = ind.header.collection_start_ms
            if period <= self._written:
                continue  # too late: its entry was written
            nodes = self._open.setdefault(period, {})
            node = ind.header.node_id
            if node in nodes:
                nodes[node][0][:] += sums[i]
                nodes[node][1][:] += counts[i]
            else:
                nodes[node] = (sums[i].copy(), counts[i].copy())
            self._newest = max(self._newest, period)
        while len(self._open) > _MAX_OPEN_PERIODS:
            del self._open[min(self._open)]

    def settled(self) -> list[bytes]:
        """The entries of the periods now `settle_periods` behind the newest, oldest first (each once)."""
        due = sorted(period for period in self._open if period <= self._newest - self.settle_ms)
        if due:
            self._written = max(self._written, due[-1])
        return [self._entry(period, self._open.pop(period)) for period in due]

    def _entry(self, period: int, nodes: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
        out: dict[str, dict[str, list[int] | list[float | None]]] = {}
        for node, (sums, counts) in sorted(nodes.items()):
            means = [None if n == 0 else float(s / n) for s, n in zip(sums.tolist(), counts.tolist(), strict=True)]
            out[node] = {"count": counts.tolist(), "mean": means}
        return json.dumps({"replica": self.replica, "period_start_ms": period, "period_ms": self.period_ms,
                           "measurements": self.measurements, "nodes": out}).encode()  # fmt: skip
