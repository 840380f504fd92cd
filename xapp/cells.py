"""Per-cell bookkeeping of the hot path: a slot per known cell in preallocated arrays.

A slot is an index into every per-cell array of the xApp (this table, the model state, the incident
tracker). Arrays grow by doubling; released slots are reused. Per cell the table keeps the next period
it expects (so late, duplicate and missing periods are recognised), rows that arrived early, and the node
that owns it (the node's slots are kept together, for the per-node clock; its number, for per-node sums).
"""

from __future__ import annotations

from array import array
from typing import Protocol

import numpy as np

NO_PERIOD = np.iinfo(np.int64).min


class CellTable:
    """Slots of known cells and their ordering state."""

    def __init__(self, capacity: int = 256) -> None:
        self.slot_of: dict[str, int] = {}
        self.cell_ids: list[str] = [""] * capacity
        self.node_ids: list[str] = [""] * capacity
        self.expected_ms = np.full(capacity, NO_PERIOD, dtype=np.int64)  # next period start this cell owes
        self.silent_periods = np.zeros(capacity, dtype=np.int32)  # consecutive periods filled as gaps
        self.active = np.zeros(capacity, dtype=bool)
        self.early: dict[int, dict[int, np.ndarray]] = {}  # slot -> period start -> values, arrived ahead
        self.generation = 0  # grows when a slot is released: slot lists cached elsewhere are stale then
        self.fresh: list[int] = []  # slots added since the owner last looked (policies to assign)
        self.by_node: dict[str, array[int]] = {}  # node -> slots of its cells (8 bytes a cell)
        self.node_number = np.zeros(capacity, dtype=np.int32)  # per slot: its node's index in node_names
        self.node_names: list[str] = []  # every node ever seen, in order (a number is never reused)
        self._numbers: dict[str, int] = {}
        self._free: list[int] = []
        self._listeners: list[SlotArrays] = []

    @property
    def capacity(self) -> int:
        """Slots allocated (in use or free)."""
        return int(self.active.shape[0])

    def __len__(self) -> int:
        return len(self.slot_of)

    def attach(self, listener: SlotArrays) -> None:
        """Have listener's per-slot arrays grow with the table (and be reset for reused slots)."""
        listener.resize(self.capacity)
        self._listeners.append(listener)

    def detach(self, listener: SlotArrays) -> None:
        """Stop growing listener's arrays."""
        self._listeners.remove(listener)

    def add(self, cell_id: str, node_id: str, first_period_ms: int) -> int:
        """A slot for a new cell that starts at first_period_ms."""
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self.slot_of[cell_id] = slot
        self.cell_ids[slot] = cell_id
        self.node_ids[slot] = node_id
        number = self._numbers.get(node_id)
        if number is None:
            number = self._numbers[node_id] = len(self.node_names)
            self.node_names.append(node_id)
        self.node_number[slot] = number
        self.expected_ms[slot] = first_period_ms
        self.silent_periods[slot] = 0
        self.active[slot] = True
        for listener in self._listeners:
            listener.reset(slot)
        self.fresh.append(slot)
        self.by_node.setdefault(node_id, array("q")).append(slot)
        return slot

    def release(self, slot: int) -> None:
        """Forget a cell; its slot is reused later."""
        del self.slot_of[self.cell_ids[slot]]
        node = self.node_ids[slot]
        self.by_node[node].remove(slot)
        self.early.pop(slot, None)
        self.active[slot] = False
        self.expected_ms[slot] = NO_PERIOD
        self._free.append(slot)
        self.generation += 1

    def node_cells(self, node_id: str) -> int:
        """Cells the node owns now."""
        return len(self.by_node.get(node_id, ()))

    def node_slots(self, node_id: str) -> np.ndarray:
        """Slots of the node's cells (a copy: the table may change while it is used)."""
        slots = self.by_node.get(node_id)
        return np.array(slots, dtype=np.int64) if slots else np.zeros(0, dtype=np.int64)

    def active_slots(self) -> np.ndarray:
        """Slots in use."""
        return np.flatnonzero(self.active)

    def _grow(self) -> None:
        old = self.capacity
        new = old + max(old // 4, 1024)  # modest steps: unused slots cost memory at 3.5 KB of model state each
        self.cell_ids.extend([""] * (new - old))
        self.node_ids.extend([""] * (new - old))
        self.expected_ms = extend_rows(self.expected_ms, new, NO_PERIOD)
        self.silent_periods = extend_rows(self.silent_periods, new, 0)
        self.node_number = extend_rows(self.node_number, new, 0)
        self.active = extend_rows(self.active, new, False)
        self._free.extend(range(new - 1, old - 1, -1))
        for listener in self._listeners:
            listener.resize(new)


class SlotArrays(Protocol):
    """What CellTable.attach takes: something with per-slot arrays."""

    def resize(self, capacity: int) -> None:
        """Grow per-slot arrays to capacity slots, keeping what they hold."""

    def reset(self, slot: int) -> None:
        """Clear one slot for a new cell."""


def extend_rows(array: np.ndarray, length: int, fill: object) -> np.ndarray:
    """array grown along its first axis to length, new entries set to fill.

    Zero-filled growth comes from calloc, so rows not yet used take no resident memory.
    """
    if fill == 0:
        grown = np.zeros((length, *array.shape[1:]), dtype=array.dtype)
    else:
        grown = np.empty((length, *array.shape[1:]), dtype=array.dtype)
        grown[array.shape[0] :] = fill
    grown[: array.shape[0]] = array
    return grown
