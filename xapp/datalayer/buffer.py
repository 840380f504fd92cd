"""The bounded write buffer between the hot path and a data layer's store, and the writer that drains it.

Hot-path writes append to one FIFO per kind and return: no encoding, no I/O. The buffers are bounded in
the kind's own unit: verdicts in cell-periods, incidents in events, KPM forwards in indications. A write
that would pass its bound is dropped whole and counted per kind in the same unit; incidents have their own
bound, so a flood of verdicts never evicts an incident event. A write stays in its buffer, counting
against the bound, until the store has taken it.

Verdicts and incident events go out as soon as the writer is free. KPM forwards (history for the rApp, read
seconds later) wait for a gap between a period's bursts, so that encoding and sending them never holds back a
verdict; they go out with the verdicts instead once one has waited `KPM_WAIT_S` or they fill half their buffer
(a stream without gaps), and at once when the writer flushes or Redis is away (the backlog goes out in order).

The default bounds assume the simulator's default network (60 cells in about 20 nodes, 60 s periods) and
the end-to-end budget (40,000 cell-reports/s, about 13,000 indications/s):
- buffers: 200,000 cell-periods of verdicts (about 5 s of a store outage at the budget rate, 55 hours at the
  default network; some 80 bytes a cell-period), 50,000 KPM indications (about 4 s, 40 hours), 10,000
  incident events;
- streams: in bytes, see `xapp.datalayer.bounds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import structlog

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.ratelog import RateLimitedLog
from ranomaly_contracts.sdl import IncidentEvent, VerdictBatch
from xapp.datalayer.base import DataLayerHealth
from xapp.datalayer.bounds import StreamBudget

log = structlog.get_logger(__name__)

DEFAULT_VERDICT_BUFFER = 200_000  # cell-periods
DEFAULT_INCIDENT_BUFFER = 10_000  # events
DEFAULT_KPM_BUFFER = 50_000  # indications

# What one drain cycle takes at most, so that a backlog goes out in pieces of bounded size.
DRAIN_VERDICT_CELLS = 65_536
DRAIN_INCIDENTS = 4_096
DRAIN_KPM_INDICATIONS = 4_096  # also the most indications one KPM stream entry holds

KINDS = ("verdicts", "incidents", "kpm")

KpmItem = tuple[Sequence[str], Sequence[pb.Indication]]
EntryId = tuple[int, int]


def parse_entry_id(entry_id: str | bytes) -> EntryId:
    """A stream entry id ("<ms>-<seq>", or "<ms>") as a comparable pair."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise ValueError(f"{text!r} is not a stream entry id ('<ms>-<seq>')") from None


@dataclass(frozen=True, slots=True)
class Drain:
    """The oldest buffered writes of each kind, taken for one write to the store."""

    verdicts: list[VerdictBatch]
    incidents: list[IncidentEvent]
    kpm: list[KpmItem]

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not (self.verdicts or self.incidents or self.kpm)

    def kpm_entries(self) -> list[tuple[tuple[str, ...], list[pb.Indication]]]:
        """The KPM stream entries to write: consecutive forwards with the same measurements share one."""
        entries: list[tuple[tuple[str, ...], list[pb.Indication]]] = []
        last: Sequence[str] | None = None
        for measurements, indications in self.kpm:
            if entries and (measurements is last or tuple(measurements) == entries[-1][0]):
                entries[-1][1].extend(indications)
            else:
                entries.append((tuple(measurements), list(indications)))
            last = measurements
        return entries


class WriteBuffer:
    """Bounded FIFOs of hot-path writes, one per kind; `wake` is set whenever a verdict batch or an incident
    event arrives, and when a KPM forward arrives to none buffered."""

    def __init__(self, *, verdict_cells: int, incident_events: int, kpm_indications: int) -> None:
        for name, bound in (("verdict", verdict_cells), ("incident", incident_events), ("kpm", kpm_indications)):
            if bound < 1:
                raise ValueError(f"the {name} buffer bound must be at least 1, got {bound}")
        self._verdict_bound = verdict_cells
        self._incident_bound = incident_events
        self._kpm_bound = kpm_indications
        self._verdicts: deque[VerdictBatch] = deque()
        self._incidents: deque[IncidentEvent] = deque()
        self._kpm: deque[KpmItem] = deque()
        self._kpm_added: deque[float] = deque()  # when each KPM forward was buffered (time.monotonic)
        self._verdict_cells = 0
        self._kpm_indications = 0
        self.dropped = dict.fromkeys(KINDS, 0)
        self.wake = asyncio.Event()
        self._dropped_log = RateLimitedLog(log, 5.0)

    @property
    def pending(self) -> int:
        """Writes waiting to be written, all kinds together."""
        return len(self._verdicts) + len(self._incidents) + len(self._kpm)

    @property
    def urgent(self) -> bool:
        """Verdicts or incident events are waiting (what a period's burst must not hold back)."""
        return bool(self._verdicts or self._incidents)

    def kpm_due(self) -> bool:
        """KPM forwards have waited KPM_WAIT_S, or fill half their buffer: they go out with the next drain."""
        return bool(self._kpm_added) and (
            time.monotonic() - self._kpm_added[0] >= KPM_WAIT_S or 2 * self._kpm_indications >= self._kpm_bound
        )

    @property
    def total_dropped(self) -> int:
        """Everything dropped since start, all kinds together (in each kind's unit)."""
        return sum(self.dropped.values())

    def add_verdicts(self, batch: VerdictBatch) -> None:
        """Buffer a verdict batch, or drop it if its cell-periods do not fit."""
        n = len(batch.cell_ids)
        if self._verdict_cells + n > self._verdict_bound:
            self._drop("verdicts", n)
            return
        self._verdicts.append(batch)
        self._verdict_cells += n
        self.wake.set()

    def add_incident(self, event: IncidentEvent) -> None:
        """Buffer an incident event, or drop it if the incident buffer is full."""
        if len(self._incidents) >= self._incident_bound:
            self._drop("incidents", 1)
            return
        self._incidents.append(event)
        self.wake.set()

    def add_kpm(self, measurements: Sequence[str], indications: Sequence[pb.Indication]) -> None:
        """Buffer a KPM forward, or drop it if its indications do not fit."""
        n = len(indications)
        if self._kpm_indications + n > self._kpm_bound:
            self._drop("kpm", n)
            return
        if not self._kpm:  # a writer already holding forwards waits for a gap: more of them must not wake it
            self.wake.set()
        self._kpm.append((measurements, indications))
        self._kpm_added.append(time.monotonic())
        self._kpm_indications += n

    def _drop(self, kind: str, units: int) -> None:
        self.dropped[kind] += units
        self._dropped_log.warning(
            "dropped", "sdl_write_dropped", kind=kind, dropped=self.dropped[kind], buffered=self.pending
        )

    def take(self, kpm: bool = True) -> Drain:
        """The oldest writes, up to one drain's worth of each kind (no KPM forwards unless `kpm`); they stay
        buffered until `done`."""
        verdicts: list[VerdictBatch] = []
        cells = 0
        for batch in self._verdicts:
            cells += len(batch.cell_ids)
            if verdicts and cells > DRAIN_VERDICT_CELLS:
                break
            verdicts.append(batch)
        forwards: list[KpmItem] = []
        indications = 0
        for item in self._kpm if kpm else ():
            indications += len(item[1])
            if forwards and indications > DRAIN_KPM_INDICATIONS:
                break
            forwards.append(item)
        return Drain(verdicts, list(itertools.islice(self._incidents, DRAIN_INCIDENTS)), forwards)

    def done(self, drain: Drain) -> None:
        """Forget the writes of a drain the store has taken (they are the oldest buffered)."""
        for _ in drain.verdicts:
            self._verdict_cells -= len(self._verdicts.popleft().cell_ids)
        for _ in drain.incidents:
            self._incidents.popleft()
        for _ in drain.kpm:
            self._kpm_indications -= len(self._kpm.popleft()[1])
            self._kpm_added.popleft()

    def discard(self, drain: Drain) -> None:
        """Forget the writes of a drain the store refused, counting them as dropped."""
        self.done(drain)
        self.dropped["verdicts"] += sum(len(batch.cell_ids) for batch in drain.verdicts)
        self.dropped["incidents"] += len(drain.incidents)
        self.dropped["kpm"] += sum(len(indications) for _, indications in drain.kpm)

    def discard_all(self) -> int:
        """Drop everything buffered, counting it; the number of writes dropped."""
        pending = self.pending
        self.discard(Drain(list(self._verdicts), list(self._incidents), list(self._kpm)))
        return pending


class OpenIncidents:
    """The incident open on each cell, as the incident events say (for the cell states' incident_id)."""

    def __init__(self) -> None:
        self._by_cell: dict[str, str] = {}

    def apply(self, events: Iterable[IncidentEvent]) -> None:
        """Follow events in order; replaying a sequence again leaves the same state."""
        for event in events:
            if event.event == "close":
                self._by_cell.pop(event.cell_id, None)
            else:
                self._by_cell[event.cell_id] = event.incident_id

    def get(self, cell_id: str) -> str | None:
        """The incident open on a cell, if any."""
        return self._by_cell.get(cell_id)

    @property
    def by_cell(self) -> dict[str, str]:
        """Open incident per cell (read only)."""
        return self._by_cell


QUIET_S = 0.01  # no write for this long: a gap between bursts, where background work goes
KPM_WAIT_S = 1.0  # the longest a KPM forward waits for a gap while verdicts keep coming


class QuietWork(NamedTuple):
    """A store's own background work, done a step at a time in the writer's quiet gaps."""

    wanted: Callable[[], bool]  # whether a step is due
    step: Callable[[], Awaitable[None]]  # one step, handling its own errors


class BackgroundWriter:
    """Drains a WriteBuffer into a store: one `write` per drain cycle, bounded exponential backoff on the
    store's transient errors (`retryable`), a drain dropped and counted on any other error. KPM forwards wait
    for a gap of `QUIET_S` while verdicts or incident events are being written (see the module's docstring).

    `write(drain)` must write the whole drain or raise; `probe()` checks the store when there is nothing to
    write but the last attempt failed. `quiet`, when given, is the store's own background work: the writer
    does it a step at a time once nothing was buffered for `QUIET_S` (between the bursts of a period's
    reports, not inside them; the event loop runs between steps).
    """

    def __init__(
        self,
        buffer: WriteBuffer,
        write: Callable[[Drain], Awaitable[None]],
        probe: Callable[[], Awaitable[None]],
        *,
        retryable: tuple[type[BaseException], ...] = (),
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        quiet: QuietWork | None = None,
    ) -> None:
        self._buffer = buffer
        self._write = write
        self._probe = probe
        self._quiet = quiet
        self._retryable = retryable
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = max(retry_max_s, retry_initial_s)
        self._task: asyncio.Task[None] | None = None
        self._cycle = asyncio.Event()
        self._failing = False
        self._stopping = False
        self._flushing = 0  # flush calls waiting
        self._in_io = False
        self._drops_seen = 0
        self._failure_log = RateLimitedLog(log, 5.0)
        self.connected = True
        self.errors = 0
        self._degraded_since: float | None = None

    @property
    def running(self) -> bool:
        """The writer task is alive."""
        return self._task is not None and not self._task.done()

    @property
    def degraded(self) -> bool:
        """Disconnected, failing, or something was dropped since the buffer was last written out."""
        return not self.connected or self._failing or self._buffer.total_dropped != self._drops_seen

    @property
    def degraded_s(self) -> float:
        """How long the writer has been degraded without a break (0: it is not); a drop counts from when seen."""
        if not self.degraded:
            self._degraded_since = None
            return 0.0
        now = time.monotonic()
        if self._degraded_since is None:
            self._degraded_since = now
        return now - self._degraded_since

    def start(self) -> None:
        """Start draining (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sdl-writer")

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the buffer is written out; False after timeout_s, or at once if the writer is stopped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._flushing += 1  # KPM forwards go out now, not in a gap
        try:
            while self._buffer.pending:
                remaining = deadline - loop.time()
                if not self.running or remaining <= 0:
                    return False
                self._cycle.clear()
                self._buffer.wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cycle.wait(), remaining)
            return True
        finally:
            self._flushing -= 1

    async def stop(self, timeout_s: float) -> None:
        """Flush (bounded wait), stop the task and drop what is left, counted and logged.

        A write in progress is let finish (the store's own timeouts bound it) rather than cancelled:
        redis-py 8.1 on Python 3.11 can swallow a cancellation that arrives during a command.
        """
        flushed = await self.flush(timeout_s)
        if self._task is not None:
            self._stopping = True
            self._buffer.wake.set()
            if not self._in_io:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._stopping = False
        if not flushed and self._buffer.pending:
            lost = self._buffer.discard_all()
            log.warning("sdl_unflushed_at_close", writes=lost, dropped=dict(self._buffer.dropped))

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while not self._stopping:
            if self.connected and not self._buffer.pending:
                quiet = self._quiet is not None and self._quiet.wanted()
                try:
                    await asyncio.wait_for(self._buffer.wake.wait(), QUIET_S if quiet else None)
                except TimeoutError:  # nothing to write for QUIET_S: a gap for the background work
                    await self._quiet_step()
                else:
                    self._buffer.wake.clear()
                continue
            kpm = not self.connected or self._flushing > 0 or self._buffer.kpm_due()
            if not (kpm or self._buffer.urgent):  # only KPM forwards: they wait for a gap between bursts
                self._buffer.wake.clear()
                try:
                    await asyncio.wait_for(self._buffer.wake.wait(), QUIET_S)
                except TimeoutError:
                    kpm = True
                else:
                    continue
            self._buffer.wake.clear()
            drain = self._buffer.take(kpm=kpm)
            self._in_io = True
            try:
                await (self._probe() if drain.empty else self._write(drain))
            except self._retryable as error:
                self._in_io = False
                self._failed(error, delay)
                if not self._stopping:
                    await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
            except Exception as error:  # a store refusal or a malformed write must not stop the writer
                self.errors += 1
                self._buffer.discard(drain)
                log.error("sdl_write_refused", error=repr(error), dropped=dict(self._buffer.dropped))
            else:
                self._buffer.done(drain)
                self._succeeded()
                delay = self._retry_initial_s
            finally:
                self._in_io = False
            self._cycle.set()

    async def _quiet_step(self) -> None:
        assert self._quiet is not None
        self._in_io = True  # like a write: let it finish rather than cancel it (see stop)
        try:
            await self._quiet.step()
        except Exception as error:  # the step handles its own errors; whatever escapes must not stop the writer
            self.errors += 1
            self._failure_log.warning("quiet", "sdl_quiet_work_failed", error=repr(error))
        finally:
            self._in_io = False

    def _failed(self, error: BaseException, delay: float) -> None:
        self.errors += 1
        self.connected = False
        self._failing = True
        if self._degraded_since is None:
            self._degraded_since = time.monotonic()
        self._failure_log.warning(
            "write", "sdl_write_failed", error=str(error), retry_in_s=delay, buffered=self._buffer.pending
        )

    def _succeeded(self) -> None:
        if not self.connected:
            log.info("sdl_reconnected", buffered=self._buffer.pending)
        self.connected = True
        if not self._buffer.pending:
            self._failing = False
            self._drops_seen = self._buffer.total_dropped
            self._degraded_since = None


class BufferedWrites:
    """The hot-path half of a data layer, shared by every backend: writes go into `_buffer`, a
    `_writer` drains them, and health is read from both without I/O."""

    _buffer: WriteBuffer
    _writer: BackgroundWriter
    _trimmed_unread: int
    _budgets: dict[str, StreamBudget]  # per kind

    def write_verdicts(self, batch: VerdictBatch) -> None:
        """Buffer a verdict batch (kept by reference until written: do not change it afterwards)."""
        self._buffer.add_verdicts(batch)

    def write_incident(self, event: IncidentEvent) -> None:
        """Buffer an incident event."""
        self._buffer.add_incident(event)

    def forward_kpm(self, measurements: Sequence[str], indications: Sequence[pb.Indication]) -> None:
        """Buffer indications for the KPM stream (kept by reference until written)."""
        self._buffer.add_kpm(measurements, indications)

    def _health(self, backend: str, connected: bool, other_errors: int = 0) -> DataLayerHealth:
        return DataLayerHealth(
            backend=backend,
            connected=connected,
            degraded=self._writer.degraded,
            degraded_s=self._writer.degraded_s,
            buffered=self._buffer.pending,
            dropped=dict(self._buffer.dropped),
            errors=self._writer.errors + other_errors,
            trimmed_unread=self._trimmed_unread,
            streams={kind: budget.stats() for kind, budget in self._budgets.items()},
        )
