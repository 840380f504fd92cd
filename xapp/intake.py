"""From decoded indications to rows in scoring order: who may report what and when, lateness, gaps, release.

A cell belongs to the node the subscription lists it under, else to the node that first reported it; rows
of it from another node are refused. Each node has a clock (xapp/clocks.py): the newest collection start
it delivered, bounded by its own recent times and, when its stream is paced in real time, by the receiving
clock; a silent node's clock follows the network's time (the lower median of the node clocks), so no one
node moves another's. A row for period P is accepted while its node's clock is at most P + L periods
(L = max_lateness_periods); one that comes ahead of a missing earlier period waits for it. Once a period
falls behind that bound, a cell that has not delivered it gets a gap row (every record "no value"), which
the model sees, and rows that waited behind it follow. A cell that misses more than `max_gap_periods` at
once (or more than the gap rows left to one message) restarts its period count there instead. A cell that
only produces gaps for `release_after` periods is released. Cells are capped in total, per node and per
message. Whatever is refused is counted under its reason and logged at a bounded rate; values outside
their measurement's range are masked (xapp/quality.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import structlog

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.indications import MAX_COLLECTION_START_MS, DecodedIndication
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.batch import RowBatch
from xapp.cells import CellTable
from xapp.clocks import NO_TIME, ClockBounds, NodeClock, advance_all, all_within_limits, lower_median
from xapp.metrics import XappMetrics
from xapp.quality import RangeCheck

log = structlog.get_logger(__name__)

_NO_SLOTS = np.zeros(0, dtype=np.int64)
_NO_SLOTS.flags.writeable = False
_MAX_PENDING = 4096  # nodes whose first starts were refused, remembered to recognise a timeline of their own


@dataclass(frozen=True)
class IntakeLimits:
    """What one node or message may make the intake do (settings)."""

    max_cells: int = 100_000
    max_cells_per_node: int = 1024
    max_cells_per_message: int = 16_384  # rows of one stream message; also its budget of gap rows
    max_gap_periods: int = 10
    max_clock_jump_periods: int = 10
    clock_slack_ms: int = 10_000
    clock_reanchor_after: int = 3
    quality_incident_periods: int = 10


class Taken(NamedTuple):
    """The rows of an indication that were accepted (None: all) and their values as they will be scored."""

    rows: np.ndarray | None
    values: np.ndarray
    masked: bool  # some values were out of range: NaN in values


class Routine(NamedTuple):
    """What a routine stream message held, indication by indication."""

    nodes: list[str]
    starts: list[int]  # collection start, ms
    sequences: list[int]


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
        self.owner: dict[str, str] = {}  # cell -> the node a subscription lists it under
        self.explicit_cells = False

    def problem(self, node_id: str, cell_id: str) -> str | None:
        """None if a new cell's rows belong to a subscription; else the reason they do not."""
        owner = self.owner.get(cell_id)
        if owner is not None and owner != node_id:
            return "wrong_node"
        if self.explicit_cells:
            return None if cell_id in self.cells else "unknown_cell"
        return None if node_id in self.nodes else "unknown_cell"


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
        measurements: Sequence[str],
        limits: IntakeLimits,
    ) -> None:
        self.table = table
        self.batch = batch
        self.period_ms = period_ms
        self.lateness_ms = max_lateness_periods * period_ms
        self.release_after = release_after
        self.limits = limits
        self.bounds = ClockBounds(period_ms, limits.max_clock_jump_periods, limits.clock_slack_ms,
                                  limits.clock_reanchor_after)  # fmt: skip
        self.cell_filter = CellFilter()
        self.counts = IntakeCounts()
        self.clocks: dict[str, NodeClock] = {}
        self._pending: dict[str, NodeClock] = {}  # nodes whose first starts were refused, judged from the network
        self.ranges = RangeCheck(measurements, limits.quality_incident_periods, metrics, errors)
        table.attach(self.ranges)
        self.gap_budget = limits.max_cells_per_message  # gap rows the current message or tick may still add
        self._routine_rows = limits.max_cells_per_message  # most rows a routine message holds
        self._network_ms = NO_TIME
        self._clocks_moved = False
        self.newest_ms = NO_TIME  # the newest collection start accepted from any node
        self._judging_ms: int | None = None  # the network's time new nodes are judged by, once per message
        self._node_slots: dict[str, tuple[list[str], np.ndarray]] = {}  # see _slot_cache
        self._slot_generation = table.generation
        self._flush = flush
        self._release = release  # (slot, period_ms of the release) -> None, before the slot is freed
        self._metrics = metrics
        self._errors = errors

    @property
    def watermark_ms(self) -> int:
        """The network's time: the lower median of the node clocks (never moves back)."""
        if self._clocks_moved:
            self._clocks_moved = False
            self._network_ms = max(self._network_ms, lower_median(self.clocks))
        return self._network_ms

    def begin(self) -> None:
        """A new message or tick: its budget of gap rows starts afresh."""
        self.gap_budget = self.limits.max_cells_per_message
        self._judging_ms = None

    def take(self, indication: DecodedIndication, received_ns: int) -> Taken | None:
        """Accept one decoded indication (values NaN where no value); what was accepted, None if nothing."""
        node, start, cells = indication.node_id, indication.collection_start_ms, indication.cell_ids
        if not self._timely(indication, received_ns):
            return None
        if not cells:  # a node that reports no cells: nothing to place, but its clock runs and it is routine
            self._start_clock(node, start, received_ns)
            self._slot_cache()[node] = (cells, _NO_SLOTS)
            self.counts.indications += 1
            return None
        cached = self._slot_cache().get(node)
        if cached is not None and cached[0] == cells:
            slot_array, rows, values = cached[1], None, indication.values  # the same cells as last time
        else:
            if len(set(cells)) != len(cells):
                self.refuse("repeated_cell", node, len(cells), "a cell appears twice")
                return None
            slots, kept = self._slots(node, cells, start)
            if not slots:
                return None
            slot_array = np.array(slots, dtype=np.int64)
            if len(kept) == len(cells):
                rows, values = None, indication.values
                self._slot_cache()[node] = (cells, slot_array)
            else:
                rows = np.array(kept, dtype=np.int64)
                values = indication.values[rows]
        self._start_clock(node, start, received_ns)
        masked = self.ranges.mask(values)
        expected = self.table.expected_ms[slot_array]
        on_time = expected == start
        self.counts.indications += 1
        self.counts.cell_reports += len(slot_array)
        if on_time.all():
            self._add(slot_array, values, start, received_ns, masked)
            return Taken(rows, values, masked is not None)
        placed = self._mixed(slot_array, values, start, received_ns, expected, on_time, node, masked)
        if not placed.any():
            return None
        return Taken(np.flatnonzero(placed) if rows is None else rows[placed], values[placed], masked is not None)

    def _start_clock(self, node: str, start: int, received_ns: int) -> None:
        """A node's first accepted start starts its clock; every accepted start may be the newest."""
        if node not in self.clocks:
            self.clocks[node] = NodeClock(start, received_ns)
            self._clocks_moved = True
        self.newest_ms = max(self.newest_ms, start)

    def take_routine(
        self, indications: Sequence[pb.Indication], k: int, received_ns: int, records: bytes = b""
    ) -> Routine | None:
        """Accept a whole stream message at once if it is routine: what it held, or None (nothing taken).

        Routine: every indication comes from a node that reports the same cells as last time, at the
        subscribed period, well-formed, within its clock's bound, each cell's next period in line, no node
        twice. That is nearly every message in steady state; the rest go through `take` one indication at a
        time, which checks and reports everything. Both paths place rows identically. Values out of range
        are masked here too, and marked "no value" in the indications (which are forwarded as they are).
        Python touches each indication once, for its header and sizes; the values, the "no value" records
        and the period checks are whole-message array operations. `records`, when it holds every value of the
        message as little-endian float32 (xapp/wirevalues.py), is read instead of the indications' values.
        """
        table, cache, clocks, period, bounds = self.table, self._slot_cache(), self.clocks, self.period_ms, self.bounds
        routine = Routine([], [], [])
        nodes, starts, sequences = routine
        slot_parts: list[np.ndarray] = []
        counts: list[int] = []
        gaps: list[Sequence[int]] = []  # each indication's "no value" records
        moving: list[NodeClock] = []  # the clocks this message moves on, their starts, nodes and rows
        moving_starts: list[int] = []
        moving_nodes: list[str] = []
        moving_rows: list[int] = []
        for indication in indications:
            header = indication.header
            node = header.node_id
            cached = cache.get(node)
            start = header.collection_start_ms
            if (
                cached is None
                or header.granularity_period_ms != period
                or start % period
                or cached[0] != indication.cell_ids
            ):
                return None
            slots = cached[1]
            n = len(slots)
            if len(indication.values) != n * k:
                return None
            clock = clocks[node]
            if start > clock.ms:
                moving.append(clock)
                moving_starts.append(start)
                moving_nodes.append(node)
                moving_rows.append(n)
            nodes.append(node)
            starts.append(start)
            sequences.append(header.sequence_number)
            slot_parts.append(slots)
            counts.append(n)
            gaps.append(indication.no_value)
        rows = sum(counts)
        if not rows or rows > self._routine_rows or table.early or len(set(nodes)) != len(nodes):
            return None
        if not all_within_limits(moving, moving_starts, received_ns, bounds):
            return None
        if len(records) == rows * k * 4:
            values = np.frombuffer(bytearray(records), dtype="<f4").reshape(-1, k)
        else:
            flat = itertools.chain.from_iterable(indication.values for indication in indications)
            values = np.fromiter(flat, dtype=np.float32, count=rows * k).reshape(-1, k)
        within = self.ranges.within(values)  # finite and in range: nearly always, and one pass
        if not within and not np.isfinite(values).all():
            return None
        if not _blank_no_value(gaps, values, counts, k):
            return None
        slots = np.concatenate(slot_parts)
        period_rows = np.repeat(np.array(starts, dtype=np.int64), counts)
        if not np.array_equal(table.expected_ms[slots], period_rows):
            return None
        if moving:  # the message's rows are in line: no closing touches them
            advance_all(moving, moving_starts, received_ns, bounds)
            by_node = table.by_node
            for node, n, clock in zip(moving_nodes, moving_rows, moving, strict=True):
                if len(by_node.get(node, ())) > n:  # the node has cells this message does not report
                    self._close_node(node, clock.ms, received_ns)
            self._clocks_moved = True
        masked = None if within else self.ranges.mask(values)
        if masked is not None:
            _mark_no_value(indications, masked.reshape(-1), counts, k)
        self._add(slots, values, period_rows, received_ns, masked, drain=False)  # no early rows: nothing to drain
        self.counts.indications += len(starts)
        self.newest_ms = max(self.newest_ms, *starts)
        self.counts.cell_reports += len(slots)
        return routine

    def _slot_cache(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Node -> (the cells it reported last time, their slots); emptied when a slot was released since."""
        if self._slot_generation != self.table.generation:
            self._node_slots.clear()
            self._slot_generation = self.table.generation
        return self._node_slots

    def advance(self, watermark_ms: int, now_ns: int) -> None:
        """Time moved on without indications (every stream quiet): every node's clock is at least watermark_ms."""
        self._pull(watermark_ms, now_ns)

    def follow_network(self, now_ns: int) -> None:
        """Silent nodes' clocks catch up with the network's time: their cells' missing periods close."""
        self._pull(self.watermark_ms, now_ns)

    def refuse(self, reason: str, node_id: str, rows: int, problem: str) -> None:
        """Rows not scored, counted under reason, with a log line at a bounded rate."""
        self._metrics.decode_errors.labels(reason).inc()
        self._metrics.refused_rows.labels(reason).inc(rows)
        self._errors.warning(reason, "indication_rows_dropped", reason=reason, node=node_id, rows=rows,
                             problem=problem)  # fmt: skip

    def _timely(self, indication: DecodedIndication, received_ns: int) -> bool:
        """Whether the indication's period and time are acceptable; moves its node's clock if they are."""
        node, start, rows = indication.node_id, indication.collection_start_ms, len(indication.cell_ids)
        if indication.period_ms != self.period_ms:
            self.refuse("wrong_period", node, rows, f"granularity {indication.period_ms} ms, expected {self.period_ms}")
            return False
        if not 0 <= start < MAX_COLLECTION_START_MS:
            self.refuse("time_out_of_range", node, rows, f"collection start {start} ms is not a time")
            return False
        if start % self.period_ms:
            self.refuse("unaligned_period", node, rows, f"collection start {start} is not a multiple of the period")
            return False
        clock = self.clocks.get(node)
        if clock is None:
            return self._first_start_timely(node, start, rows, received_ns)
        if start <= clock.ms:
            return True
        if not self._within_bound(node, clock, start, rows, received_ns):
            return False
        self._advance_node(node, clock, start, received_ns)
        return True

    def _first_start_timely(self, node: str, start: int, rows: int, received_ns: int) -> bool:
        """A new node's start is bounded as if its clock were at the network's time (the first node's is free)."""
        if not self.clocks:
            return True
        if self._judging_ms is None:  # the lower median costs O(nodes): once per message, not per new node
            self._judging_ms = self.watermark_ms
        clock = self._pending.pop(node, None) or NodeClock(self._judging_ms, received_ns)
        if start <= clock.ms or self._within_bound(node, clock, start, rows, received_ns):
            return True
        if len(self._pending) >= _MAX_PENDING:
            self._pending.clear()
        self._pending[node] = clock  # refused for now: its next starts may show a timeline of its own
        return False

    def _within_bound(self, node: str, clock: NodeClock, start: int, rows: int, received_ns: int) -> bool:
        """Whether a start ahead of the clock is within its bound, or restarts the node there; refusals counted."""
        limit = clock.limit(received_ns, self.bounds)
        reason = clock.check(start, received_ns, self.bounds)
        if reason is not None:
            self.refuse(reason, node, rows, f"collection start {start} is beyond the node's bound {limit}")
            return False
        if start > limit:
            self._metrics.clock_restarts.inc()
            log.warning("node_clock_restarted", node=node, clock_ms=clock.ms, start_ms=start)
        return True

    def _slots(self, node: str, cells: list[str], start: int) -> tuple[list[int], list[int]]:
        """Slots of the indication's cells (new cells get one) and the rows they came in; refusals counted."""
        table = self.table
        slots: list[int] = []
        rows: list[int] = []
        refused: dict[str, list[str]] = {}
        for row, cell in enumerate(cells):
            slot = table.slot_of.get(cell)
            if slot is None:
                reason = self._new_cell_problem(node, cell)
                if reason is not None:
                    refused.setdefault(reason, []).append(cell)
                    continue
                slot = table.add(cell, node, start)
            elif table.node_ids[slot] != node:
                refused.setdefault("wrong_node", []).append(cell)
                continue
            slots.append(slot)
            rows.append(row)
        self._metrics.cells.set(len(table))
        for reason, refused_cells in refused.items():
            self.refuse(reason, node, len(refused_cells), f"{len(refused_cells)} cells, the first {refused_cells[0]!r}")
        return slots, rows

    def _new_cell_problem(self, node: str, cell: str) -> str | None:
        if not cell:
            return "empty_cell"
        reason = self.cell_filter.problem(node, cell)
        if reason is not None:
            return reason
        if len(self.table) >= self.limits.max_cells:
            return "cell_cap"
        if self.table.node_cells(node) >= self.limits.max_cells_per_node:
            return "node_cell_cap"
        return None

    def _add(
        self,
        slots: np.ndarray,
        values: np.ndarray,
        start: int | np.ndarray,
        received_ns: int,
        masked: np.ndarray | None = None,
        drain: bool = True,
    ) -> None:
        """Rows that are next in line for their cells (start: one collection start for all, or one a row); then
        rows that waited behind them, if drain."""
        batch = self.batch
        if batch.room() < len(slots) or batch.holds_any(slots):
            self._flush()
        if len(slots) > batch.size:  # more rows than a batch (an indication, a routine message): in parts
            starts = np.broadcast_to(start, len(slots))
            for lo in range(0, len(slots), batch.size):
                part = slice(lo, lo + batch.size)
                self._add(slots[part], values[part], starts[part], received_ns,
                          None if masked is None else masked[part], drain)  # fmt: skip
            return
        batch.add(slots, values, start, received_ns, masked)
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
        node: str,
        masked: np.ndarray | None,
    ) -> np.ndarray:
        """Rows of which some are late (dropped) or early (held); which rows were placed or held."""
        if on_time.any():
            self._add(slots[on_time], values[on_time], start, received_ns, None if masked is None else masked[on_time])
        late = expected > start
        if late.any():
            n = int(late.sum())
            self.counts.late_rows += n
            self._metrics.refused_rows.labels("late").inc(n)
            problem = f"period {start} is behind its cells' next period (late or repeated)"
            self._errors.warning("late", "indication_rows_dropped", reason="late", node=node, rows=n, problem=problem)
        for i in np.flatnonzero(~on_time & ~late).tolist():
            self.table.early.setdefault(int(slots[i]), {})[start] = values[i].copy()
        return ~late

    def _drain_early(self, slot: int, now_ns: int) -> None:
        """Rows that waited for this cell's missing period, now in line."""
        early = self.table.early[slot]
        one = np.array([slot], dtype=np.int64)
        while (start := int(self.table.expected_ms[slot])) in early:
            values = early.pop(start)
            self._add(one, values[None, :], start, now_ns, drain=False)
        if not early:
            self.table.early.pop(slot, None)

    def _advance_node(self, node: str, clock: NodeClock, start: int, now_ns: int) -> None:
        """The node delivered start: its clock moves, and its cells' periods now overdue close."""
        clock.advance(start, now_ns, self.bounds)
        self._clocks_moved = True
        self._close_node(node, clock.ms, now_ns)

    def _pull(self, watermark_ms: int, now_ns: int) -> None:
        behind = []
        for node, clock in self.clocks.items():
            if clock.ms < watermark_ms:
                clock.ms = watermark_ms
                behind.append(self.table.node_slots(node))
        if behind:
            self._close_slots(np.concatenate(behind), watermark_ms - self.lateness_ms, now_ns)
        self._clocks_moved = True

    def _close_node(self, node: str, clock_ms: int, now_ns: int) -> None:
        self._close_slots(self.table.node_slots(node), clock_ms - self.lateness_ms, now_ns)

    def _close_slots(self, slots: np.ndarray, closed_before: int, now_ns: int) -> None:
        """Gap rows for the cells' periods before closed_before that never came (or a restart past them).

        Period by period across the cells, so that a batch takes one gap row of every cell before it must go
        (a cell has one row in a batch at most): cells owing k periods cost k batches, not k per cell.
        """
        table = self.table
        owing = slots[table.expected_ms[slots] < closed_before].tolist()
        filling = []
        for slot in owing:
            owed = -((int(table.expected_ms[slot]) - closed_before) // self.period_ms)  # periods before closed_before
            if owed > min(self.limits.max_gap_periods, self.gap_budget):
                self._restart(slot, owed, now_ns)
            else:
                self.gap_budget -= owed
                filling.append(slot)
        while filling:
            if self.batch.holds_any(np.array(filling, dtype=np.int64)):
                self._flush()
            filling = [slot for slot in filling if self._gap_row(slot, closed_before, now_ns)]

    def _gap_row(self, slot: int, closed_before: int, now_ns: int) -> bool:
        """The cell's next owed period: its rows that waited, else a gap row (or its release); whether it still
        owes periods before closed_before."""
        table = self.table
        start = int(table.expected_ms[slot])
        early = table.early.get(slot)
        if early and start in early:
            self._drain_early(slot, now_ns)
        else:
            table.silent_periods[slot] += 1
            if table.silent_periods[slot] > self.release_after:
                self._release_slot(slot, start)
                return False
            if self.batch.room() < 1:
                self._flush()
            self.batch.add_gap(slot, start, now_ns)
            table.expected_ms[slot] = start + self.period_ms
            self.counts.gap_rows += 1
        if table.active[slot] and int(table.expected_ms[slot]) < closed_before:
            return True
        if slot in table.early:  # rows that waited behind the gaps are in line now
            self._drain_early(slot, now_ns)
        return False

    def _restart(self, slot: int, owed: int, now_ns: int) -> None:
        """Too many periods owed to fill: the cell's period count restarts after them (or it is released)."""
        table = self.table
        start = int(table.expected_ms[slot])
        table.silent_periods[slot] += owed
        if table.silent_periods[slot] > self.release_after:
            self._release_slot(slot, start)
            return
        resume = start + owed * self.period_ms
        early = table.early.get(slot)
        if early:
            skipped = [period for period in early if period < resume]
            for period in skipped:
                del early[period]
            self.counts.late_rows += len(skipped)
        table.expected_ms[slot] = resume
        self._metrics.gap_restarts.inc()
        if slot in table.early:
            self._drain_early(slot, now_ns)

    def _release_slot(self, slot: int, period_ms: int) -> None:
        self._release(slot, period_ms)
        self.table.release(slot)
        self._metrics.released_cells.inc()
        self._metrics.cells.set(len(self.table))


def _blank_no_value(gaps: Sequence[Sequence[int]], values: np.ndarray, counts: list[int], k: int) -> bool:
    """Set the indications' "no value" records (gaps, one container per indication) to NaN in values (rows of
    the whole message); False if one names a record its indication does not have."""
    flat: list[int] = []
    for records in gaps:  # extend: a container's records without a Python step each
        flat.extend(records)
    if not flat:
        return True
    gap_counts = list(map(len, gaps))
    sizes = np.array(counts, dtype=np.int64) * k
    firsts = np.cumsum(sizes) - sizes  # each indication's first record in the message
    named = np.array(flat, dtype=np.int64)
    if (named >= np.repeat(sizes, gap_counts)).any():
        return False
    values.reshape(-1)[named + np.repeat(firsts, gap_counts)] = np.nan
    return True


def _mark_no_value(indications: Sequence[pb.Indication], outside: np.ndarray, counts: list[int], k: int) -> None:
    """Add the masked records (outside, flat over the message's rows) to each indication's no_value."""
    where = np.flatnonzero(outside)
    if len(counts) == 1:
        indications[0].no_value.extend(where.tolist())
        return
    ends = np.cumsum(counts) * k  # each indication's records end here
    cuts = np.searchsorted(where, ends).tolist()
    lo, first = 0, 0
    for indication, hi, end in zip(indications, cuts, ends.tolist(), strict=True):
        if hi > lo:
            indication.no_value.extend((where[lo:hi] - first).tolist())
        lo, first = hi, end
