"""From decoded indications to rows in scoring order: cell slots, lateness, gaps and release.

Each cell owes its periods in order. Time is the newest collection start seen on any stream (the
watermark), so accelerated and real-time streams behave alike. A row for period P is accepted while
the watermark is at most P + L periods (L = max_lateness_periods); one that comes ahead of a missing
earlier period waits for it. Once a period falls behind that bound, a cell that has not delivered it
gets a gap row (every record "no value"), which the model sees, and rows that waited behind it follow.
A cell that only produces gaps for `release_after` periods is released.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import structlog

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.indications import DecodedIndication
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.batch import RowBatch
from xapp.cells import NO_PERIOD, CellTable
from xapp.metrics import XappMetrics

log = structlog.get_logger(__name__)


class IntakeCounts:
    """Counts kept as plain integers on the per-indication path, moved to Prometheus once per batch."""

    __slots__ = ("indications", "cell_reports", "late_rows", "gap_rows")

    def __init__(self) -> None:
        self.indications = self.cell_reports = self.late_rows = self.gap_rows = 0

    def publish(self, metrics: XappMetrics) -> None:
        """Add what was counted since the last call to the metrics."""
        for name in self.__slots__:
            count = getattr(self, name)
            if count:
                getattr(metrics, name).inc(count)
                setattr(self, name, 0)


class CellFilter:
    """Which cells the subscriptions cover: named cells, or every cell (also new ones) of the named nodes."""

    def __init__(self) -> None:
        self.nodes: set[str] = set()
        self.cells: set[str] = set()
        self.explicit_cells = False

    def accepts(self, node_id: str, cell_id: str) -> bool:
        """Whether a cell's rows belong to a subscription."""
        if self.explicit_cells:
            return cell_id in self.cells
        return node_id in self.nodes


class Intake:
    """Places indication rows into the batch in per-cell period order; calls `flush` when the batch must go."""

    def __init__(
        self,
        table: CellTable,
        batch: RowBatch,
        period_ms: int,
        max_lateness_periods: int,
        release_after: int,
        flush: Callable[[], None],
        release: Callable[[int, int], None],
        metrics: XappMetrics,
        errors: RateLimitedLog,
    ) -> None:
        self.table = table
        self.batch = batch
        self.period_ms = period_ms
        self.lateness_ms = max_lateness_periods * period_ms
        self.release_after = release_after
        self.cell_filter = CellFilter()
        self.counts = IntakeCounts()
        self.watermark_ms = NO_PERIOD
        self._node_slots: dict[str, tuple[int, list[str], np.ndarray]] = {}  # node -> (generation, cells, slots)
        self._flush = flush
        self._release = release  # (slot, period_ms of the release) -> None, before the slot is freed
        self._metrics = metrics
        self._errors = errors

    def take(self, indication: DecodedIndication, received_ns: int) -> None:
        """Accept one decoded indication (values NaN where no value)."""
        start = indication.collection_start_ms
        if indication.period_ms != self.period_ms:
            self._bad("wrong_period", indication, f"granularity {indication.period_ms} ms, expected {self.period_ms}")
            return
        if start % self.period_ms:
            self._bad("unaligned_period", indication, f"collection start {start} is not a multiple of the period")
            return
        if start > self.watermark_ms:
            self.advance(start, received_ns)
        cached = self._node_slots.get(indication.node_id)
        if cached is not None and cached[0] == self.table.generation and cached[1] == indication.cell_ids:
            slot_array, values = cached[2], indication.values  # the node reports the same cells as last time
        else:
            if len(set(indication.cell_ids)) != len(indication.cell_ids):
                self._bad("repeated_cell", indication, "a cell appears twice")
                return
            slots, rows = self._slots(indication, start)
            if not slots:
                return
            slot_array = np.array(slots, dtype=np.int64)
            if len(rows) == len(indication.cell_ids):
                values = indication.values
                self._node_slots[indication.node_id] = (self.table.generation, indication.cell_ids, slot_array)
            else:
                values = indication.values[rows]
        expected = self.table.expected_ms[slot_array]
        on_time = expected == start
        if on_time.all():
            self._add(slot_array, values, start, received_ns)
        else:
            self._mixed(slot_array, values, start, received_ns, expected, on_time)
        self.counts.indications += 1
        self.counts.cell_reports += len(slot_array)

    def take_routine(self, indications: Sequence[pb.Indication], k: int, received_ns: int) -> bool:
        """Accept a whole stream message at once if it is routine; False (nothing taken) if it is not.

        Routine: every indication comes from a node that reports the same cells as last time, at the
        subscribed period, well-formed, each cell's next period in line, no node twice. That is nearly
        every message in steady state; the rest go through `take` one indication at a time, which checks
        and reports everything. Both paths place rows identically.
        """
        table, cache, period = self.table, self._node_slots, self.period_ms
        generation = table.generation
        slot_parts: list[np.ndarray] = []
        starts: list[int] = []
        counts: list[int] = []
        nodes: set[str] = set()
        no_value: list[np.ndarray] = []
        offset = 0
        newest = self.watermark_ms
        for indication in indications:
            header = indication.header
            cached = cache.get(header.node_id)
            start = header.collection_start_ms
            if (
                cached is None
                or cached[0] != generation
                or header.node_id in nodes
                or header.granularity_period_ms != period
                or start % period
                or cached[1] != indication.cell_ids
            ):
                return False
            n = len(cached[2])
            if len(indication.values) != n * k:
                return False
            if indication.no_value:
                gaps = np.array(indication.no_value, dtype=np.int64)
                if gaps.max() >= n * k:
                    return False
                no_value.append(gaps + offset)
            nodes.add(header.node_id)
            slot_parts.append(cached[2])
            starts.append(start)
            counts.append(n)
            offset += n * k
            newest = max(newest, start)
        if not slot_parts or offset // k > self.batch.size or table.early:
            return False
        flat = itertools.chain.from_iterable(indication.values for indication in indications)
        values = np.fromiter(flat, dtype=np.float32, count=offset)
        if not np.isfinite(values).all():
            return False
        if newest > self.watermark_ms:
            self.advance(newest, received_ns)
            if table.generation != generation or table.early:
                return False
        slots = np.concatenate(slot_parts)
        period_rows = np.repeat(np.array(starts, dtype=np.int64), counts)
        if not np.array_equal(table.expected_ms[slots], period_rows):
            return False
        if no_value:
            values[np.concatenate(no_value)] = np.nan
        batch = self.batch
        if batch.room() < len(slots) or batch.holds_any(slots):
            self._flush()
        batch.add(slots, values.reshape(-1, k), period_rows, received_ns)
        table.expected_ms[slots] = period_rows + period
        table.silent_periods[slots] = 0
        self.counts.indications += len(starts)
        self.counts.cell_reports += len(slots)
        return True

    def advance(self, watermark_ms: int, now_ns: int) -> None:
        """Move time forward: every period now beyond the lateness bound is closed, with gaps where missing."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        closed_before = self.watermark_ms - self.lateness_ms
        table = self.table
        due = np.flatnonzero(table.active & (table.expected_ms < closed_before))
        for slot in due.tolist():
            self._close_periods(slot, closed_before, now_ns)

    def _slots(self, indication: DecodedIndication, start: int) -> tuple[list[int], list[int]]:
        """Slots of the indication's cells (new cells get one) and the rows they came in."""
        table = self.table
        slots: list[int] = []
        rows: list[int] = []
        for row, cell in enumerate(indication.cell_ids):
            slot = table.slot_of.get(cell)
            if slot is None:
                if not self.cell_filter.accepts(indication.node_id, cell):
                    self._bad("unknown_cell", indication, f"cell {cell!r} is in no subscription")
                    continue
                slot = table.add(cell, indication.node_id, start)
                self._metrics.cells.set(len(table))
            slots.append(slot)
            rows.append(row)
        return slots, rows

    def _add(self, slots: np.ndarray, values: np.ndarray, start: int, received_ns: int, drain: bool = True) -> None:
        """Rows that are next in line for their cells; then rows that waited behind them, if drain."""
        batch = self.batch
        if batch.room() < len(slots) or batch.holds_any(slots):
            self._flush()
        if len(slots) > batch.size:  # an indication larger than a batch: score it in parts
            for lo in range(0, len(slots), batch.size):
                self._add(slots[lo : lo + batch.size], values[lo : lo + batch.size], start, received_ns, drain)
            return
        batch.add(slots, values, start, received_ns)
        self.table.expected_ms[slots] = start + self.period_ms
        self.table.silent_periods[slots] = 0
        if drain and self.table.early:
            for slot in slots.tolist():
                if slot in self.table.early:
                    self._drain_early(slot, received_ns)

    def _mixed(
        self,
        slots: np.ndarray,
        values: np.ndarray,
        start: int,
        received_ns: int,
        expected: np.ndarray,
        on_time: np.ndarray,
    ) -> None:
        """Rows of which some are late (dropped) or early (held)."""
        if on_time.any():
            self._add(slots[on_time], values[on_time], start, received_ns)
        late = expected > start
        if late.any():
            self.counts.late_rows += int(late.sum())
        for i in np.flatnonzero(~on_time & ~late).tolist():
            self.table.early.setdefault(int(slots[i]), {})[start] = values[i].copy()

    def _drain_early(self, slot: int, now_ns: int) -> None:
        """Rows that waited for this cell's missing period, now in line."""
        early = self.table.early[slot]
        one = np.array([slot], dtype=np.int64)
        while (start := int(self.table.expected_ms[slot])) in early:
            values = early.pop(start)
            self._add(one, values[None, :], start, now_ns, drain=False)
        if not early:
            self.table.early.pop(slot, None)

    def _close_periods(self, slot: int, closed_before: int, now_ns: int) -> None:
        """Gap rows for the cell's periods before closed_before that never came."""
        table = self.table
        while table.active[slot] and (start := int(table.expected_ms[slot])) < closed_before:
            early = table.early.get(slot)
            if early and start in early:
                self._drain_early(slot, now_ns)
                continue
            table.silent_periods[slot] += 1
            if table.silent_periods[slot] > self.release_after:
                self._release(slot, start)
                table.release(slot)
                self._metrics.released_cells.inc()
                self._metrics.cells.set(len(table))
                return
            if self.batch.room() < 1 or self.batch.holds_any(np.array([slot])):
                self._flush()
            self.batch.add_gap(slot, start, now_ns)
            table.expected_ms[slot] = start + self.period_ms
            self.counts.gap_rows += 1
        if slot in table.early:  # rows that waited behind the gaps are in line now
            self._drain_early(slot, now_ns)

    def _bad(self, reason: str, indication: DecodedIndication, what: str) -> None:
        self._metrics.decode_errors.labels(reason).inc()
        self._errors.warning(reason, "indication_rows_dropped", reason=reason, node=indication.node_id, problem=what)
