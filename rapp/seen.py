"""Which (cell, period) KPM rows the history holds already, so that a write stores each at most once: the
second guard against duplicate rows (the first is the xApp forwarding only what it scored).

Keys are kept per UTC day as sorted int64 arrays (cell index << 27 | milliseconds into the day), loaded from
the day's complete batches on disk when a write first touches the day; the `days_kept` days used last stay
in memory (a day of 10,000 cells at 60 s is 14.4 million keys, 115 MB). Only what is on disk is ever a key:
`add` follows a durable write, and `forget` drops everything after a failed one, so a batch written again
whole is never refused as its own duplicate.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

DAY_MS = 86_400_000
_OFFSET_BITS = 27  # 2**27 ms > one day
_CHUNKS_MAX = 8  # sorted arrays per day before they are merged into one


class _DayKeys:
    """The keys of one day: a few sorted arrays, merged now and then."""

    def __init__(self, keys: np.ndarray) -> None:
        self.chunks = [np.unique(keys)]

    def contains(self, keys: np.ndarray) -> np.ndarray:
        found = np.zeros(keys.size, dtype=bool)
        for chunk in self.chunks:
            if chunk.size:
                at = np.minimum(np.searchsorted(chunk, keys), chunk.size - 1)
                found |= chunk[at] == keys
        return found

    def add(self, keys: np.ndarray) -> None:
        self.chunks.append(np.unique(keys))
        if len(self.chunks) > _CHUNKS_MAX:
            self.chunks = [np.unique(np.concatenate(self.chunks))]


class SeenRows:
    """The (cell, period) keys of the stored rows, per day; `load(day)` gives the stored (cell ids, times ms)
    of a day's complete batches."""

    def __init__(self, load: Callable[[int], tuple[Sequence[str], np.ndarray]], days_kept: int = 2) -> None:
        self._load = load
        self._days_kept = days_kept
        self._cells: dict[str, int] = {}
        self._days: OrderedDict[int, _DayKeys] = OrderedDict()

    def fresh(self, day: int, cell_ids: Sequence[str], times_ms: np.ndarray) -> np.ndarray:
        """A mask of the rows of one day whose (cell, period) is neither stored nor earlier in these rows."""
        keys = self._keys(day, cell_ids, times_ms)
        fresh = ~self._day(day).contains(keys)
        _, first = np.unique(keys, return_index=True)
        once = np.zeros(keys.size, dtype=bool)
        once[first] = True
        return fresh & once

    def add(self, day: int, cell_ids: Sequence[str], times_ms: np.ndarray) -> None:
        """Note rows of one day as stored (after their durable write)."""
        if day in self._days:
            self._days[day].add(self._keys(day, cell_ids, times_ms))

    def forget(self) -> None:
        """Drop every day held (after a failed write, or days dropped from disk): they load again from disk."""
        self._days.clear()

    def _day(self, day: int) -> _DayKeys:
        if day in self._days:
            self._days.move_to_end(day)
        else:
            cells, times = self._load(day)
            self._days[day] = _DayKeys(self._keys(day, cells, times))
            while len(self._days) > self._days_kept:
                self._days.popitem(last=False)
        return self._days[day]

    def _keys(self, day: int, cell_ids: Sequence[str], times_ms: np.ndarray) -> np.ndarray:
        index = np.fromiter((self._cells.setdefault(cell, len(self._cells)) for cell in cell_ids), np.int64,
                            len(cell_ids))  # fmt: skip
        return (index << _OFFSET_BITS) | (np.asarray(times_ms, dtype=np.int64) - day * DAY_MS)
