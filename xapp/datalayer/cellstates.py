"""The latest state of each cell (HASH_CELLS), written in rounds that stay out of a period's burst of reports.

One HSET field per cell per period would cost more than the rest of the writes together at tens of thousands
of cell-reports per second, so a round begins at most every `interval_s` and writes the newest state of every
cell that changed since the last one. A round costs the event loop's thread about 4 µs a cell (40 ms at 10,000
cells), so it goes out `CELL_STATE_PART` cells at a time in the writer's quiet gaps (xapp/datalayer/buffer.py
QuietWork), where it delays no verdict; a round still unfinished one interval after it began (the writer never
quiet) goes out a part with each drain instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from ranomaly_contracts.sdl import VerdictBatch, encode_cell_states

CELL_STATE_PART = 1024  # cells a part of a round holds
_ROW_BITS = 32  # a verdict batch holds fewer rows than this many bits count
_ROW_MASK = (1 << _ROW_BITS) - 1


class CellStateRounds:
    """The cells whose newest verdict is not in HASH_CELLS yet, and the round that writes them.

    A cell's newest verdict is kept as one int (the batch's number and the row in it), not a tuple: ten
    thousand tuples a period, each living until the next period, would be the garbage collector's main work.
    """

    def __init__(self, interval_s: float, incidents: Mapping[str, str]) -> None:
        self._interval_s = interval_s
        self._incidents = incidents  # cell -> the incident open on it, as the writer last applied them
        self._pending: dict[str, int] = {}  # cell -> its newest verdict: batch number << _ROW_BITS | row
        self._batches: dict[int, VerdictBatch] = {}  # by number: the batches pending cells name (and a few more)
        self._numbered = 0  # batches numbered so far
        self._round: list[str] = []  # cells of the current round not written yet
        self._began_at = 0.0  # when the last round began

    @property
    def pending(self) -> int:
        """Cells with a state not written yet."""
        return len(self._pending)

    def note(self, batch: VerdictBatch) -> None:
        """A verdict batch is being written: its rows are its cells' newest states."""
        first = self._numbered << _ROW_BITS
        self._batches[self._numbered] = batch
        self._numbered += 1
        self._pending.update(zip(batch.cell_ids, range(first, first + len(batch.cell_ids)), strict=True))

    def due(self) -> bool:
        """Whether a round is under way (one begins if the last is done and the interval has passed)."""
        now = time.monotonic()
        if not self._round and now - self._began_at >= self._interval_s:
            self._round, self._began_at = list(self._pending), now
            self._forget_batches()
        return bool(self._round)

    def overdue(self) -> bool:
        """A round is under way that began at least an interval ago: its parts ride with the drains."""
        return self.due() and time.monotonic() - self._began_at >= self._interval_s

    def next_part(self) -> list[str]:
        """The cells of the round's next part."""
        return self._round[-CELL_STATE_PART:]

    def fields(self, cells: Iterable[str] | None = None) -> dict[str, bytes]:
        """HASH_CELLS fields of the given cells (default: every pending one) that are still pending."""
        pending = self._pending
        newest = pending.values() if cells is None else (pending[cell] for cell in cells if cell in pending)
        rows: dict[int, list[int]] = {}
        for verdict in newest:
            rows.setdefault(verdict >> _ROW_BITS, []).append(verdict & _ROW_MASK)
        out: dict[str, bytes] = {}
        for number, picked in rows.items():
            out.update(encode_cell_states(self._batches[number], self._incidents, picked))
        return out

    def written(self, part: list[str]) -> None:
        """The round's next part (as `next_part` gave it) is in Redis."""
        if part:
            del self._round[-len(part) :]
            for cell in part:
                self._pending.pop(cell, None)

    def abandon(self) -> None:
        """A part could not be written: end the round; its cells stay pending for the next one."""
        self._round.clear()

    def all_written(self, fields: Mapping[str, bytes]) -> None:
        """Every pending state (as `fields()` gave them) is in Redis."""
        for cell in fields:
            self._pending.pop(cell, None)
        self._round.clear()
        self._began_at = time.monotonic()
        self._forget_batches()

    def _forget_batches(self) -> None:
        """Let go of the batches no pending cell names any more."""
        named = {verdict >> _ROW_BITS for verdict in self._pending.values()}
        self._batches = {number: batch for number, batch in self._batches.items() if number in named}
