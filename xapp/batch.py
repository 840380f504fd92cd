"""Rows waiting for one scoring call: preallocated buffers, one row per cell at most."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xapp.cells import extend_rows


@dataclass(frozen=True)
class Rows:
    """The rows of one scoring call, taken out of the batch (which fills again meanwhile)."""

    slots: np.ndarray
    x: np.ndarray
    mask: np.ndarray
    period_ms: np.ndarray
    gap: np.ndarray
    masked: list[tuple[int, np.ndarray]]
    received_ns: list[int]

    def __len__(self) -> int:
        return len(self.slots)


class RowBatch:
    """Up to `size` cell-period rows in subscription measurement order (x 0 and mask 0 where no value)."""

    def __init__(self, n_measurements: int, size: int) -> None:
        self.size = size
        self.x = np.zeros((size, n_measurements), dtype=np.float32)
        self.mask = np.zeros((size, n_measurements), dtype=np.float32)
        self.slots = np.zeros(size, dtype=np.int64)
        self.period_ms = np.zeros(size, dtype=np.int64)
        self.gap = np.zeros(size, dtype=bool)
        self.received_ns: list[int] = []  # one per added indication (for latency), not per row
        self.first_ns = 0  # receipt time of the oldest row waiting
        self.n = 0
        self.masked: list[tuple[int, np.ndarray]] = []  # (first row, [rows, K] values masked out of range)
        self._member = np.zeros(0, dtype=bool)  # per slot: has a row here

    def resize(self, capacity: int) -> None:
        """Track membership for capacity slots."""
        self._member = extend_rows(self._member, capacity, False)

    def reset(self, slot: int) -> None:
        """Nothing to clear per slot: membership ends with every take."""

    def room(self) -> int:
        """Rows that still fit."""
        return self.size - self.n

    def holds_any(self, slots: np.ndarray) -> bool:
        """Whether a row of any of these slots is waiting already."""
        return bool(self._member[slots].any())

    def add(
        self,
        slots: np.ndarray,
        values: np.ndarray,
        period_ms: int | np.ndarray,
        received_ns: int,
        masked: np.ndarray | None = None,
    ) -> None:
        """Rows received together: values [n, K] with NaN where no value, period_ms one for all or per row.

        masked [n, K]: the values that were out of range (NaN in values). The caller checks room and members.
        """
        n = len(slots)
        lo, hi = self.n, self.n + n
        present = ~np.isnan(values)
        self.x[lo:hi] = np.where(present, values, 0.0)
        self.mask[lo:hi] = present
        self.slots[lo:hi] = slots
        self.period_ms[lo:hi] = period_ms
        self.gap[lo:hi] = False
        self._member[slots] = True
        if self.n == 0:
            self.first_ns = received_ns
        self.received_ns.append(received_ns)
        if masked is not None:
            self.masked.append((lo, masked))
        self.n = hi

    def add_gap(self, slot: int, period_ms: int, now_ns: int) -> None:
        """A period the cell did not report: every record is "no value"."""
        at = self.n
        self.x[at] = 0.0
        self.mask[at] = 0.0
        self.slots[at] = slot
        self.period_ms[at] = period_ms
        self.gap[at] = True
        self._member[slot] = True
        if self.n == 0:
            self.first_ns = now_ns
        self.n = at + 1

    def take(self) -> Rows:
        """The waiting rows (copies), the batch emptied."""
        n = self.n
        rows = Rows(self.slots[:n].copy(), self.x[:n].copy(), self.mask[:n].copy(), self.period_ms[:n].copy(),
                    self.gap[:n].copy(), self.masked, self.received_ns)  # fmt: skip
        self._member[rows.slots] = False
        self.received_ns, self.masked = [], []
        self.n = 0
        return rows
