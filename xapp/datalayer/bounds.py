"""Stream bounds from byte budgets: a stream's entry limit is its budget over the measured mean entry size.

The mean entry size is the mean encoded payload of the entries written (following about the last
`MEAN_WINDOW` entries) plus a per-entry overhead: `ENTRY_OVERHEAD_BYTES` until the store measures it,
then, in Redis, `MEMORY USAGE` over `XLEN` of the stream less the mean payload (sampled with the writes, off
the hot path, once the stream holds `CALIBRATE_MIN_ENTRIES` entries, so that the stream's fixed cost does
not count as a per-entry one). The limit follows the entries: ten times larger entries, a tenth as many.

Default budgets hold an hour of rApp outage at 10,000 cells at the default 60 s reporting period, that is
600,000 cell-periods, with half as much again for smaller entries and the allocator's rounding (measured
by `scripts/stream_budget.py`: redis-server 6.2, 12 measurements, scoring batches of 1,024 cells):
- KPM: 72 bytes a cell-period (values, cell id, indication headers, stream overhead), 43 MB an hour: 64 MiB;
- verdicts: 93 bytes a cell-period (ids, period, score, status, 12 deviations, receipt time), 56 MB an
  hour: 80 MiB;
- incidents: 560 bytes an event. An incident makes an open, an update each time its peak grows by a
  quarter, and a close, so even one incident an hour on every tenth cell (some 4,000 events) takes about
  2 MB: 16 MiB keep some 30,000 events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_VERDICT_STREAM_BYTES = 80 << 20
DEFAULT_INCIDENT_STREAM_BYTES = 16 << 20
DEFAULT_KPM_STREAM_BYTES = 64 << 20

ENTRY_OVERHEAD_BYTES = 64  # an entry's cost beyond its payload until the store measures it
CALIBRATE_MIN_ENTRIES = 100
MEAN_WINDOW = 1000  # entries the mean payload follows


@dataclass(frozen=True)
class StreamStats:
    """What one stream takes and may take."""

    memory_bytes: int  # Redis: MEMORY USAGE, sampled; memory backend: the entries' estimated bytes
    entries: int  # when memory_bytes was measured
    entry_limit: int  # the stream is trimmed to this many entries
    entry_bytes: float  # the mean entry size the limit is derived from


class StreamBudget:
    """The entry limit of one stream, derived from its byte budget and its measured entries."""

    def __init__(self, name: str, budget_bytes: int) -> None:
        if budget_bytes < 1:
            raise ValueError(f"the {name} stream budget must be at least 1 byte, got {budget_bytes}")
        self.name = name
        self.budget_bytes = budget_bytes
        self.overhead_bytes = float(ENTRY_OVERHEAD_BYTES)
        self.memory_bytes = 0
        self.entries = 0
        self._payload = 0.0  # mean payload bytes
        self._seen = 0  # entries observed

    @property
    def entry_bytes(self) -> float:
        """The mean size of one entry, overhead included."""
        return self._payload + self.overhead_bytes

    @property
    def limit(self) -> int:
        """Entries the budget holds (at least one)."""
        return max(1, int(self.budget_bytes // self.entry_bytes))

    def observe(self, sizes: Iterable[int]) -> None:
        """Payload sizes of entries written, oldest first."""
        for size in sizes:
            self._seen += 1
            self._payload += (size - self._payload) / min(self._seen, MEAN_WINDOW)

    def measured(self, memory_bytes: int, entries: int) -> None:
        """What the stream takes now."""
        self.memory_bytes, self.entries = memory_bytes, entries

    def calibrate(self, memory_bytes: int, entries: int) -> None:
        """The store's own measure of the stream; sets the per-entry overhead once the stream holds enough."""
        self.measured(memory_bytes, entries)
        if entries >= CALIBRATE_MIN_ENTRIES and self._seen:
            self.overhead_bytes = max(0.0, memory_bytes / entries - self._payload)

    def stats(self) -> StreamStats:
        """The stream's figures for health and metrics."""
        return StreamStats(self.memory_bytes, self.entries, self.limit, self.entry_bytes)
