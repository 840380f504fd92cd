"""`ranomaly sim replay`: play a dataset folder (simulated or brought by a user) as E2 nodes.

The dataset's timestamps stay in the indication headers, so time-of-day features are those of the
data. In real time the periods are sent one per reporting period from the moment of subscription;
accelerated, as fast as the subscriber reads. A cell without a row at a period is left out of that
period's indication; a row with an empty value is a record with no value.
"""

from __future__ import annotations

import numpy as np

from e2sim.catalogue import Measurement
from e2sim.source import KpmBlock, Label, StreamStart
from ranomaly_contracts.dataset import Dataset, epoch_ms, to_arrays


class ReplaySource:
    """A dataset behind the KpmSource interface."""

    def __init__(self, dataset: Dataset) -> None:
        arrays = to_arrays(dataset)
        self._period_ms = round(dataset.period_s * 1000)
        self._first = int(arrays.times_ms[0]) // self._period_ms
        self._values = arrays.values
        self._reported = arrays.reported
        self._node_ids = tuple(dict.fromkeys(arrays.node_ids))
        node_index = {node: i for i, node in enumerate(self._node_ids)}
        self._cell_node = np.array([node_index[n] for n in arrays.node_ids], dtype=np.int64)
        self._cell_ids = arrays.cell_ids
        described = {m.get("name"): m for m in dataset.meta.get("measurements", []) if isinstance(m, dict)}
        self._measurements = tuple(
            Measurement(
                name=name,
                unit=dataset.units[name],
                integer=bool(described.get(name, {}).get("integer", False)),
                description=str(described.get(name, {}).get("description", "")),
            )
            for name in arrays.measurements
        )
        self._labels = self._read_labels(dataset)

    def _read_labels(self, dataset: Dataset) -> list[Label]:
        frame = dataset.labels
        if frame is None:
            return []
        measurements = frame["measurements"] if "measurements" in frame else None
        intensity = frame["intensity"] if "intensity" in frame else None
        starts, ends = epoch_ms(frame["start"]), epoch_ms(frame["end"])
        return [
            Label(
                node_id=str(frame["node_id"].iloc[i]),
                cell_id=str(frame["cell_id"].iloc[i]),
                kind=str(frame["kind"].iloc[i]),
                first_ms=int(starts[i]),
                last_ms=int(ends[i]),
                intensity=float(intensity.iloc[i]) if intensity is not None else 1.0,
                measurements=tuple(str(measurements.iloc[i]).split(";")) if measurements is not None else (),
            )
            for i in range(len(frame))
        ]

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Nodes of the dataset."""
        return self._node_ids

    @property
    def cell_ids(self) -> tuple[str, ...]:
        """Cells of the dataset, grouped by node."""
        return self._cell_ids

    @property
    def cell_node(self) -> np.ndarray:
        """Node index of every cell."""
        return self._cell_node

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """The dataset's measurement columns."""
        return self._measurements

    @property
    def period_range_ms(self) -> tuple[int, int]:
        """Only the dataset's own period."""
        return self._period_ms, self._period_ms

    def stream_start(self, period_ms: int, now_ms: int, realtime: bool) -> StreamStart:
        """From the dataset's first period to its last; in real time, the first is due one period from now."""
        offset = now_ms - self._first * period_ms if realtime else 0
        return StreamStart(self._first, offset, self._first + len(self._values) - 1)

    def block(self, first_period: int, count: int, period_ms: int) -> KpmBlock:
        """Rows of the dataset's periods first_period .. first_period + count - 1."""
        lo = first_period - self._first
        if lo < 0 or lo + count > len(self._values):
            raise IndexError(f"periods {first_period}..{first_period + count - 1} are outside the dataset")
        return KpmBlock(
            times_ms=(np.arange(first_period, first_period + count, dtype=np.int64) * period_ms),
            values=self._values[lo : lo + count],
            reported=self._reported[lo : lo + count],
        )

    def labels(self, start_ms: int, end_ms: int, period_ms: int) -> list[Label]:
        """The dataset's labels clipped to [start_ms, end_ms)."""
        return [
            Label(
                lb.node_id,
                lb.cell_id,
                lb.kind,
                max(lb.first_ms, start_ms),
                min(lb.last_ms, end_ms - 1),
                lb.intensity,
                lb.measurements,
            )
            for lb in self._labels
            if lb.first_ms < end_ms and lb.last_ms >= start_ms
        ]
