"""Cell reports decoded from E2SM-KPM bytes, gathered into the indications the engine takes.

Reports of one node for one period become one indication, so the engine's per-node fast path applies as
for the compact gRPC form. Records follow the model's measurement order: a report that names its
measurements is mapped by name (a measurement it lacks is "no value"); one that does not name them is
taken in the subscribed order, which is the model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ranomaly_contracts.e2.v1 import e2_pb2 as pb


class IndicationAssembler:
    """Builds one engine batch at a time from cell reports."""

    def __init__(self, measurements: Sequence[str]) -> None:
        self.measurements = tuple(measurements)
        self._positions: dict[tuple[str, ...], np.ndarray] = {}  # report order -> model order, -1: absent
        self._by_node: dict[tuple[str, int], pb.Indication] = {}
        self._batch = pb.IndicationBatch()

    def add(
        self,
        node_id: str,
        start_ms: int,
        period_ms: int,
        sequence: int,
        cell_id: str,
        names: tuple[str, ...] | None,
        values: np.ndarray,
    ) -> bool:
        """Add one cell's report; False (nothing added) if its records do not fit the measurements."""
        row = self._in_model_order(names, values)
        if row is None:
            return False
        indication = self._by_node.get((node_id, start_ms))
        if indication is None:
            indication = self._batch.indications.add()
            header = indication.header
            header.node_id, header.collection_start_ms = node_id, start_ms
            header.granularity_period_ms, header.sequence_number = period_ms, sequence
            self._by_node[(node_id, start_ms)] = indication
        missing = np.isnan(row)
        if missing.any():
            indication.no_value.extend((np.flatnonzero(missing) + len(indication.cell_ids) * len(row)).tolist())
            row = np.where(missing, 0.0, row)
        indication.cell_ids.append(cell_id)
        indication.values.extend(row.tolist())
        return True

    def take(self) -> pb.IndicationBatch:
        """The batch built so far; the next add starts a new one."""
        batch, self._batch = self._batch, pb.IndicationBatch()
        self._by_node.clear()
        return batch

    def _in_model_order(self, names: tuple[str, ...] | None, values: np.ndarray) -> np.ndarray | None:
        if names is None or names == self.measurements:
            return values if len(values) == len(self.measurements) else None
        if len(names) != len(values):
            return None
        positions = self._positions.get(names)
        if positions is None:
            where = {name: i for i, name in enumerate(names)}
            positions = np.array([where.get(name, -1) for name in self.measurements], dtype=np.int64)
            self._positions[names] = positions
        return np.where(positions >= 0, values[positions], np.nan)
