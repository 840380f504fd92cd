"""The hot path: indications in, verdicts and incident events out, one ONNX Runtime call per batch.

decode -> Intake (slots, lateness, gaps) -> RowBatch -> ModelRuntime (state per slot) -> PolicyArrays
(verdicts) -> IncidentTracker -> data layer writes. Everything but the ONNX Runtime call runs on the event
loop's thread, between awaits, so a model swap or a policy change always falls between two batches: no
indication is dropped or scored twice because of them. With `overlap_scoring` the call runs on a scoring
thread of its own while the next batch fills (double buffering): one batch at most is in flight, and it is
published before the next one's state is gathered, so each cell's periods are scored strictly in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import numpy as np
import structlog

from models.artifact import Manifest
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.indications import DecodedIndication, IndicationError, decode_indication
from ranomaly_contracts.ratelog import RateLimitedLog
from ranomaly_contracts.sdl import VerdictBatch
from xapp.batch import RowBatch, Rows
from xapp.cells import CellTable
from xapp.clocks import NO_TIME
from xapp.datalayer.base import DataLayer
from xapp.errors import StreamError
from xapp.incidents import IncidentTracker
from xapp.intake import Intake, IntakeLimits, Routine, Taken
from xapp.malloc import keep_large_buffers_mapped
from xapp.metrics import XappMetrics
from xapp.policy.resolve import ResolvedPolicies
from xapp.runtime import Feeds, ModelRuntime, Outputs
from xapp.verdicts import PolicyArrays

log = structlog.get_logger(__name__)

_STATUS_NAMES = ("warming_up", "normal", "anomalous", "silenced")

_Scored: TypeAlias = tuple[Outputs, np.ndarray | None]  # the active model's outputs, the shadow's state after


@dataclass(frozen=True)
class _InFlight:
    """A batch handed to the scorer: its rows, the runtimes scoring it, and their outputs (or their future)."""

    rows: Rows
    model: ModelRuntime
    shadow: ModelRuntime | None
    watermark_ms: int  # the network's time when it was handed over (a due swap follows it)
    outputs: Future[_Scored] | _Scored


def _run(model: ModelRuntime, feeds: Feeds, shadow: ModelRuntime | None, shadow_feeds: Feeds | None) -> _Scored:
    """One batch through the active model and the shadow, if one runs beside it."""
    shadow_state = None if shadow is None or shadow_feeds is None else shadow.run(shadow_feeds)[2]
    return model.run(feeds), shadow_state


class PolicySource(Protocol):
    """What the engine needs of the A1 policies."""

    @property
    def revision(self) -> int:
        """Grows with every policy change."""

    def resolve(self, manifest: Manifest, cell_ids: Sequence[str], node_ids: Sequence[str]) -> ResolvedPolicies:
        """Effective thresholds, scope and debounce of these cells under the given model."""

    def applied(self, revision: int, model_version: str) -> None:
        """The engine now enforces this policy revision with this model version scoring."""


@dataclass(frozen=True)
class HotPathTuning:
    """Hot-path bounds from settings."""

    period_ms: int
    batch_window_ms: float = 2.0
    batch_max_cells: int = 1024
    max_lateness_periods: int = 2
    release_after_periods: int = 60
    forward_kpm: bool = True
    overlap_scoring: bool = False  # score on a thread of its own while the next batch fills (False: in turn)
    limits: IntakeLimits = field(default_factory=IntakeLimits)


class Engine:
    """Scores every cell every period with the active model and writes what it concludes."""

    def __init__(
        self,
        measurements: Sequence[str],
        model: ModelRuntime,
        policies: PolicySource,
        datalayer: DataLayer,
        metrics: XappMetrics,
        tuning: HotPathTuning,
        errors: RateLimitedLog,
    ) -> None:
        self.measurements = tuple(measurements)
        self.tuning = tuning
        self.datalayer = datalayer
        self.metrics = metrics
        self.policies = policies
        self.table = CellTable()
        self.batch = RowBatch(len(self.measurements), tuning.batch_max_cells)
        self.model = model
        self.shadow: ModelRuntime | None = None
        self._shadow_ready_ms = 0
        self.on_rows: Callable[[Rows], None] | None = None  # sees every batch as it goes to scoring
        self.policy_arrays = PolicyArrays(len(model.measurements))
        self.incidents = IncidentTracker(model.measurements)
        for part in (self.batch, model, self.policy_arrays, self.incidents):
            self.table.attach(part)
        self.intake = Intake(
            self.table,
            self.batch,
            tuning.period_ms,
            tuning.max_lateness_periods,
            tuning.release_after_periods,
            self._dispatch,
            self._release,
            metrics,
            errors,
            self.measurements,
            tuning.limits,
        )
        self.errors = errors  # one log line per kind of bad input and interval, for every intake of this engine
        self._next_sequence: dict[str, int] = {}
        self._accepted_ms: dict[str, int] = {}  # per node, the latest collection start it had rows accepted for
        self._policy_revision = -1
        self._scorer = None
        if tuning.overlap_scoring:
            keep_large_buffers_mapped()
            self._scorer = ThreadPoolExecutor(1, "scoring")
        self._in_flight: _InFlight | None = None  # the batch being scored: at most one
        self._timer: asyncio.TimerHandle | None = None
        # accepted rows by message, forwarded with the next batch's writes: a routine message's own container, so
        # that no Python object per indication lives on until the writer takes them
        self._forward: list[Sequence[pb.Indication]] = []
        self.scored_rows = 0
        self.last_received_ns = 0  # perf_counter_ns of the last stream message, and of the last scoring call
        self.last_scored_ns = time.perf_counter_ns()
        metrics.model_info.labels(model.version).set(1)

    # --- input -------------------------------------------------------------------------------------------

    def on_accepted(self, accepted: pb.SubscriptionAccepted) -> None:
        """A stream opened: its measurement order must be ours; its nodes and cells join the cell filter."""
        if tuple(accepted.measurements) != self.measurements:
            raise StreamError(f"subscription accepted with measurements {list(accepted.measurements)}, "
                              f"asked for {list(self.measurements)}")  # fmt: skip
        if accepted.reporting_period_ms != self.tuning.period_ms:
            raise StreamError(
                f"subscription accepted at {accepted.reporting_period_ms} ms periods, asked for {self.tuning.period_ms}"
            )
        cell_filter = self.intake.cell_filter
        for node in accepted.nodes:
            cell_filter.nodes.add(node.node_id)
            self._next_sequence.pop(node.node_id, None)  # a new subscription numbers from 0 again
            for cell in node.cells:
                cell_filter.cells.add(cell.cell_id)
                cell_filter.owner[cell.cell_id] = node.node_id

    def on_batch(self, message: pb.IndicationBatch, received_ns: int | None = None, *, records: bytes = b"") -> None:
        """One stream message of indications: decode, place, and score what must not wait longer.

        records: the message's values as the wire carried them (xapp/wirevalues.py), when the transport has them.
        Only the rows accepted (placed or waiting for an earlier period) are forwarded, as they are scored.
        """
        received_ns = time.perf_counter_ns() if received_ns is None else received_ns
        self.last_received_ns = received_ns
        intake = self.intake
        intake.begin()
        k = len(self.measurements)
        routine = intake.take_routine(message.indications, k, received_ns, records)
        if routine is not None:
            self._note_routine(routine)
            if self.tuning.forward_kpm:
                self._forward.append(message.indications)
            self._maybe_flush()
            return
        rows_left = self.tuning.limits.max_cells_per_message
        scored: list[pb.Indication] = []
        for indication in message.indications:
            rows = max(len(indication.cell_ids), 1)
            if rows > rows_left:
                intake.refuse("message_cap", indication.header.node_id, len(indication.cell_ids),
                              f"more than {self.tuning.limits.max_cells_per_message} cells in one message")  # fmt: skip
                continue
            rows_left -= rows
            try:
                decoded = decode_indication(indication, k)
            except IndicationError as exc:
                self.metrics.decode_errors.labels("malformed").inc()
                self.metrics.refused_rows.labels("malformed").inc(len(indication.cell_ids))
                self.errors.warning("malformed", "indication_dropped", reason="malformed", problem=str(exc))
                continue
            self._check_sequences((decoded.node_id,), (decoded.sequence,))
            taken = intake.take(decoded, received_ns)
            if taken is None:
                continue
            node, start = decoded.node_id, decoded.collection_start_ms
            self._accepted_ms[node] = max(start, self._accepted_ms.get(node, 0))
            if self.tuning.forward_kpm:
                scored.append(_as_scored(indication, decoded, taken))
        if scored:
            self._forward.append(scored)
        self._maybe_flush()

    def resume_points(self, nodes: Iterable[str]) -> dict[str, int]:
        """Per node of `nodes` that had rows accepted: the latest collection start accepted (where to resume)."""
        return {node: self._accepted_ms[node] for node in nodes if node in self._accepted_ms}

    def _note_routine(self, routine: Routine) -> None:
        """A routine message's sequence numbers and latest accepted starts, node by node."""
        self._check_sequences(routine.nodes, routine.sequences)
        accepted = self._accepted_ms
        for node, start in zip(routine.nodes, routine.starts, strict=True):
            if start > accepted.get(node, 0):
                accepted[node] = start

    def _check_sequences(self, nodes: Sequence[str], sequences: Sequence[int]) -> None:
        """Count the indications lost before these (a node's sequence number jumping ahead)."""
        following = self._next_sequence
        gaps = 0
        for node, sequence in zip(nodes, sequences, strict=True):
            expected = following.get(node, sequence)
            if sequence >= expected:  # else an old one: the next expected stays
                gaps += sequence - expected
                following[node] = sequence + 1
        if gaps:
            self.metrics.sequence_gaps.inc(gaps)

    def _maybe_flush(self) -> None:
        batch = self.batch
        if batch.n == 0:
            return
        waited_ms = (time.perf_counter_ns() - batch.first_ns) / 1e6
        window = self.tuning.batch_window_ms
        if waited_ms >= window or batch.room() == 0:
            self._dispatch()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later((window - waited_ms) / 1000, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def tick(self) -> None:
        """Periodic duties off the per-message path: policy changes, and gaps of nodes that fell silent."""
        self.refresh_policies()
        self.intake.begin()
        self.intake.follow_network(time.perf_counter_ns())
        self.flush()

    def advance_clock(self, watermark_ms: int) -> None:
        """Time moved on without indications (every stream quiet): close the periods now overdue."""
        self.intake.begin()
        self.intake.advance(watermark_ms, time.perf_counter_ns())
        self.flush()

    # --- scoring -----------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Score every waiting row and publish its verdicts and incident events before returning."""
        self._dispatch()
        self._settle()

    @property
    def pending_rows(self) -> int:
        """Rows accepted and not yet published: waiting in the batch or being scored."""
        return self.batch.n + (len(self._in_flight.rows) if self._in_flight is not None else 0)

    def close(self) -> None:
        """Publish what is being scored and stop the scoring thread (the engine scores no more)."""
        self._settle()
        if self._scorer is not None:
            self._scorer.shutdown()

    def _dispatch(self) -> None:
        """Hand the waiting rows to the scorer, after publishing the batch in flight (at most one is).

        With overlap_scoring the ONNX Runtime call runs on the scoring thread and this returns at once: the
        next batch fills while this one is scored, and its verdicts are published when the call returns.
        Every per-slot array is read and written on this thread only, between two batches in flight.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._forward:
            for forward in self._forward:
                self.datalayer.forward_kpm(self.measurements, forward)
            self._forward = []
        self.intake.counts.publish(self.metrics)
        if self.batch.n == 0:
            return
        self._settle()  # its verdicts, a swap it made due, before this batch's state is gathered
        if self.policies.revision != self._policy_revision:
            self._apply_policies()  # a change takes effect at the next batch, whatever the period
        elif self.table.fresh:
            self._assign_policies(np.array(self.table.fresh, dtype=np.int64))
        self.table.fresh.clear()
        rows = self.batch.take()
        if self.on_rows is not None:
            self.on_rows(rows)
        model, shadow = self.model, self.shadow
        nodes = self.table.node_number
        feeds = model.prepare(rows.slots, rows.x, rows.mask, rows.period_ms, nodes)
        shadow_feeds = None if shadow is None else shadow.prepare(rows.slots, rows.x, rows.mask, rows.period_ms, nodes)
        watermark = NO_TIME if shadow is None else self.intake.watermark_ms  # O(nodes): only when it is used
        if self._scorer is None:
            self._publish(_InFlight(rows, model, shadow, watermark, _run(model, feeds, shadow, shadow_feeds)))
            return
        future = self._scorer.submit(_run, model, feeds, shadow, shadow_feeds)
        self._in_flight = _InFlight(rows, model, shadow, watermark, future)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to tell: publish now
            self._settle()
            return
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._on_scored, done))

    def _on_scored(self, future: Future[_Scored]) -> None:
        """The scoring thread returned: publish, unless a flush on this thread already did."""
        if self._in_flight is not None and self._in_flight.outputs is future:
            self._settle()

    def _settle(self) -> None:
        """Wait for the batch in flight, if any, and publish it."""
        flight = self._in_flight
        if flight is None:
            return
        self._in_flight = None
        assert isinstance(flight.outputs, Future)
        self._publish(_InFlight(flight.rows, flight.model, flight.shadow, flight.watermark_ms, flight.outputs.result()))

    def _publish(self, flight: _InFlight) -> None:
        """A scored batch: advance the state, decide verdicts and incidents, write them, count."""
        assert not isinstance(flight.outputs, Future)
        (score, deviation, state_out), shadow_state = flight.outputs
        rows, model = flight.rows, flight.model
        slots, period_ms = rows.slots, rows.period_ms
        warm = model.commit(slots, state_out)
        if flight.shadow is not None and shadow_state is not None:
            flight.shadow.commit(slots, shadow_state)
        status, ratio = self.policy_arrays.decide(slots, score, deviation, warm)
        table = self.table
        cells = (table.cell_ids, table.node_ids)
        slot_list = slots.tolist()
        open_after, close_after = self.policy_arrays.debounce(slots)
        events = self.incidents.update(
            slots, status, score, ratio, period_ms, open_after, close_after, cells, model.version
        )
        self.datalayer.write_verdicts(
            VerdictBatch(
                model_version=model.version,
                measurements=model.measurements,
                cell_ids=list(map(table.cell_ids.__getitem__, slot_list)),
                node_ids=list(map(table.node_ids.__getitem__, slot_list)),
                period_start_ms=period_ms,
                scores=score,
                statuses=status,
                deviations=deviation,
            )
        )
        for event in events:
            self.datalayer.write_incident(event)
            self.metrics.incident_events.labels(event.event).inc()
        self.intake.ranges.observe(slots, rows.gap, rows.masked, table)
        done_ns = time.perf_counter_ns()
        for received in rows.received_ns:
            self.metrics.latency.observe((done_ns - received) / 1e9)
        self.scored_rows += len(rows)
        self.last_scored_ns = done_ns
        self.metrics.scoring_calls.inc()
        counts = np.bincount(status, minlength=4)
        for name, count in zip(_STATUS_NAMES, counts.tolist(), strict=True):
            if count:
                self.metrics.scored_rows.labels(name).inc(count)
        if events:
            self.metrics.open_incidents.set(self.incidents.open_count)
        if self.shadow is not None and flight.watermark_ms >= self._shadow_ready_ms:
            self._swap()

    def _release(self, slot: int, period_ms: int) -> None:
        """A cell silent too long is forgotten; its open incident closes first."""
        self.flush()
        event = self.incidents.close(slot, "released", period_ms, (self.table.cell_ids, self.table.node_ids),
                                     self.model.version)  # fmt: skip
        if event is not None:
            self.datalayer.write_incident(event)
            self.metrics.incident_events.labels("close").inc()
            self.metrics.open_incidents.set(self.incidents.open_count)

    def replay_incidents(self, verdicts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Advance restored cells' runs and incidents through verdicts another replica wrote, in its order:
        (slots, statuses, scores, period starts) each. Its events are written already: none is written again;
        the attribution excess of those periods is not known here."""
        if not verdicts:
            return
        self._assign_policies(np.unique(np.concatenate([slots for slots, *_ in verdicts])))  # their debounce, now
        cells, version = (self.table.cell_ids, self.table.node_ids), self.model.version
        for slots, status, score, period_ms in verdicts:
            open_after, close_after = self.policy_arrays.debounce(slots)
            ratio = np.zeros((len(slots), len(self.incidents.measurements)), dtype=np.float32)
            self.incidents.update(slots, status, score, ratio, period_ms, open_after, close_after, cells, version)
        self.metrics.open_incidents.set(self.incidents.open_count)

    def forget_node(self, node_id: str) -> int:
        """The node moved to another replica (its stream is closed): score what waits, close its cells' open
        incidents and forget them and the node's clock; how many cells were forgotten."""
        self.flush()
        slots = self.table.node_slots(node_id).tolist()
        for slot in slots:
            self._release(slot, int(self.table.expected_ms[slot]))
            self.table.release(slot)
        self.intake.clocks.pop(node_id, None)
        self.intake.cell_filter.nodes.discard(node_id)
        self._accepted_ms.pop(node_id, None)
        self.metrics.cells.set(len(self.table))
        return len(slots)

    # --- policies and models ----------------------------------------------------------------------------

    def refresh_policies(self) -> None:
        """Re-resolve every cell's policy if the policies changed since the last look."""
        if self.policies.revision != self._policy_revision:
            self.flush()  # applies the change before scoring what waits
        if self.policies.revision != self._policy_revision:  # nothing was waiting
            self._apply_policies()

    def _apply_policies(self) -> None:
        revision = self.policies.revision
        self._policy_revision = revision
        self._assign_policies(self.table.active_slots())
        self.policies.applied(revision, self.model.version)

    def _assign_policies(self, slots: np.ndarray) -> None:
        if slots.size == 0:
            return
        table = self.table
        ids = slots.tolist()
        resolved = self.policies.resolve(
            self.model.artifact.manifest, [table.cell_ids[s] for s in ids], [table.node_ids[s] for s in ids]
        )
        self.policy_arrays.assign(
            slots,
            resolved.enabled,
            resolved.score_threshold,
            resolved.verdict_deviation,
            resolved.attribution_deviation,
            resolved.open_after,
            resolved.close_after,
        )

    def stage(self, runtime: ModelRuntime, shadow_periods: int | None = None) -> None:
        """Run a new model beside the active one until its state is warm, then swap it in between batches.

        shadow_periods defaults to the new model's warm-up; 0 swaps at the next batch boundary.
        """
        self.flush()
        if self.shadow is not None:
            self.table.detach(self.shadow)
        self.table.attach(runtime)
        periods = runtime.warmup if shadow_periods is None else shadow_periods
        self.shadow = runtime
        self._shadow_ready_ms = self.intake.watermark_ms + periods * self.tuning.period_ms
        log.info("model_staged", version=runtime.version, shadow_periods=periods, active=self.model.version)
        if periods == 0:
            self._swap()

    def _swap(self) -> None:
        new = self.shadow
        assert new is not None
        old = self.model
        self.table.detach(old)
        self.model, self.shadow = new, None
        if len(new.measurements) != len(old.measurements):
            self.policy_arrays = PolicyArrays(len(new.measurements))
            self.table.attach(self.policy_arrays)
        self.incidents.remeasure(new.measurements)
        self._assign_policies(self.table.active_slots())
        self.policies.applied(self._policy_revision, new.version)
        self.metrics.model_info.labels(old.version).set(0)
        self.metrics.model_info.labels(new.version).set(1)
        self.metrics.model_swaps.inc()
        log.info("model_swapped", version=new.version, previous=old.version)


def _as_scored(indication: pb.Indication, decoded: DecodedIndication, taken: Taken) -> pb.Indication:
    """The indication as it is scored: only the accepted rows, masked values as "no value"."""
    if taken.rows is None and not taken.masked:
        return indication
    cells = decoded.cell_ids if taken.rows is None else [decoded.cell_ids[row] for row in taken.rows.tolist()]
    values = taken.values.ravel()
    missing = np.isnan(values)
    return pb.Indication(
        header=indication.header,
        cell_ids=cells,
        values=np.where(missing, np.float32(0.0), values).tolist(),
        no_value=np.flatnonzero(missing).tolist(),
    )
