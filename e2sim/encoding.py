"""Subscriptions and the E2 wire: check a SubscriptionRequest, then turn KPM blocks into stream messages."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from e2sim.source import KpmBlock, KpmSource
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2sm.kpm import encode_indication_header, encode_indication_message_format1

KPM_VERSION = 3

MAX_INDICATIONS_PER_MESSAGE = 4096


class SubscriptionError(ValueError):
    """A subscription the node cannot serve; the message names the field and the value."""


@dataclass(frozen=True)
class SubscriptionPlan:
    """A checked subscription: which cells of which nodes, which measurements, how often."""

    subscriber_id: str
    period_ms: int
    measurement_index: np.ndarray  # int64, source catalogue positions in subscribed order
    measurement_names: tuple[str, ...]
    node_ids: tuple[str, ...]
    node_cells: tuple[np.ndarray, ...]  # source cell indices of every subscribed node
    max_per_message: int
    max_cells_per_message: int = 0  # besides max_per_message (0: no other bound); one larger indication goes alone
    raw: bool = False  # E2SM-KPM bytes (RawKpmIndication) instead of the compact form
    resume_after_ms: tuple[int, ...] = ()  # per node of node_ids: send only later periods (0: from the start)

    @property
    def n_cells(self) -> int:
        """Cells covered by the subscription."""
        return sum(len(cells) for cells in self.node_cells)

    def node_first_periods(self, first_period: int) -> tuple[int, ...]:
        """Each node's first period to send: the stream's first, or the first after its resume point."""
        resume = self.resume_after_ms or (0,) * len(self.node_ids)
        return tuple(max(first_period, after // self.period_ms + 1) if after else first_period for after in resume)


def _unique(values: list[str], field: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise SubscriptionError(f"{field}: {value!r} is listed twice")
        seen.add(value)
    return values


def plan_subscription(source: KpmSource, request: pb.SubscriptionRequest, default_per_message: int) -> SubscriptionPlan:
    """Check a request against what the source offers; raise SubscriptionError naming what is wrong."""
    if request.reporting_period_ms == 0:
        raise SubscriptionError("reporting_period_ms: a reporting period is required")
    low, high = source.period_range_ms
    if not low <= request.reporting_period_ms <= high:
        raise SubscriptionError(
            f"reporting_period_ms: {request.reporting_period_ms} ms is outside the node's range [{low}, {high}] ms"
        )

    catalogue = {m.name: i for i, m in enumerate(source.measurements)}
    names = _unique(list(request.measurements), "measurements") or list(catalogue)
    for name in names:
        if name not in catalogue:
            raise SubscriptionError(
                f"measurements: unknown measurement {name!r}; the node reports {', '.join(catalogue)}"
            )

    node_index = {node: i for i, node in enumerate(source.node_ids)}
    cell_index = {cell: i for i, cell in enumerate(source.cell_ids)}
    for node in _unique(list(request.node_ids), "node_ids"):
        if node not in node_index:
            raise SubscriptionError(f"node_ids: unknown node {node!r}")
    for cell in _unique(list(request.cell_ids), "cell_ids"):
        if cell not in cell_index:
            raise SubscriptionError(f"cell_ids: unknown cell {cell!r}")

    cell_node = source.cell_node
    wanted_nodes = {node_index[n] for n in request.node_ids}
    if request.cell_ids:
        wanted_cells = np.array(sorted(cell_index[c] for c in request.cell_ids), dtype=np.int64)
        if wanted_nodes:
            for cell in wanted_cells:
                if int(cell_node[cell]) not in wanted_nodes:
                    raise SubscriptionError(
                        f"cell_ids: cell {source.cell_ids[cell]!r} belongs to node "
                        f"{source.node_ids[int(cell_node[cell])]!r}, which node_ids does not select"
                    )
    elif wanted_nodes:
        wanted_cells = np.flatnonzero(np.isin(cell_node, sorted(wanted_nodes)))
    else:
        wanted_cells = np.arange(len(source.cell_ids), dtype=np.int64)

    nodes = sorted({int(cell_node[c]) for c in wanted_cells})
    node_ids = tuple(source.node_ids[n] for n in nodes)
    # resume points of nodes the subscription does not cover are ignored: a node set that changed is no error
    resume = tuple(request.resume_after_ms.get(node, 0) for node in node_ids)
    per_message = request.max_indications_per_message or default_per_message
    if per_message > MAX_INDICATIONS_PER_MESSAGE:
        raise SubscriptionError(
            f"max_indications_per_message: {per_message} is above the limit of {MAX_INDICATIONS_PER_MESSAGE}"
        )
    return SubscriptionPlan(
        subscriber_id=request.subscriber_id,
        period_ms=request.reporting_period_ms,
        measurement_index=np.array([catalogue[n] for n in names], dtype=np.int64),
        measurement_names=tuple(names),
        node_ids=node_ids,
        node_cells=tuple(wanted_cells[cell_node[wanted_cells] == n] for n in nodes),
        max_per_message=per_message,
        max_cells_per_message=request.max_cells_per_message,
        raw=request.raw_e2sm_kpm,
        resume_after_ms=resume if any(resume) else (),
    )


def accepted_message(plan: SubscriptionPlan, source: KpmSource, subscription_id: str) -> pb.SubscriptionMessage:
    """The first message of a stream: the resolved measurement order and the covered cells."""
    message = pb.SubscriptionMessage()
    accepted = message.accepted
    accepted.subscription_id = subscription_id
    accepted.measurements.extend(plan.measurement_names)
    accepted.reporting_period_ms = plan.period_ms
    for node_id, cells in zip(plan.node_ids, plan.node_cells, strict=True):
        accepted.nodes.add(node_id=node_id, cells=[pb.CellInfo(cell_id=source.cell_ids[c]) for c in cells])
    return message


class IndicationEncoder:
    """Turns blocks into IndicationBatch messages for one subscription, numbering periods per node from the
    node's first period (a resumed node skips the periods up to its resume point)."""

    def __init__(self, plan: SubscriptionPlan, source: KpmSource, first_period: int) -> None:
        self._plan = plan
        self._node_first = plan.node_first_periods(first_period)
        self._cells = np.concatenate(plan.node_cells)
        self._bounds = np.cumsum([0, *(len(c) for c in plan.node_cells)])
        self._cell_ids = [[source.cell_ids[c] for c in cells] for cells in plan.node_cells]

    def messages(self, block: KpmBlock) -> Iterator[pb.SubscriptionMessage]:
        """Stream messages for a block, period by period and node by node, plan.max_per_message indications and
        plan.max_cells_per_message cells a message at most."""
        plan = self._plan
        cell_room = plan.max_cells_per_message or sys.maxsize
        m = len(plan.measurement_index)
        n_periods = len(block.times_ms)
        selected = block.values[:, self._cells][:, :, plan.measurement_index]
        missing = np.isnan(selected)
        values = np.where(missing, np.float32(0.0), selected).reshape(n_periods, -1)
        cells_with_gaps = missing.any(axis=2)  # [T, C]
        nodes_with_gaps = np.logical_or.reduceat(cells_with_gaps, self._bounds[:-1], axis=1).tolist()
        missing = missing.reshape(n_periods, -1)
        reported = None if block.reported is None else block.reported[:, self._cells]
        bounds = self._bounds.tolist()
        message, count, cells = pb.SubscriptionMessage(), 0, 0
        node_first = self._node_first
        for row, time_ms in enumerate(block.times_ms.tolist()):
            period = time_ms // plan.period_ms
            row_values = values[row].tolist()
            row_gaps = nodes_with_gaps[row]
            row_missing = missing[row].tolist() if any(row_gaps) else []
            absent = set() if reported is None else set(np.flatnonzero(~reported[row]).tolist())
            for node, node_id in enumerate(plan.node_ids):
                if period < node_first[node]:
                    continue
                lo, hi = bounds[node], bounds[node + 1]
                kept = [c for c in range(lo, hi) if c not in absent] if absent else range(lo, hi)
                if count and cells + len(kept) > cell_room:
                    yield message
                    message, count, cells = pb.SubscriptionMessage(), 0, 0
                indication = message.batch.indications.add()
                header = indication.header
                header.node_id = node_id
                header.collection_start_ms = time_ms
                header.granularity_period_ms = plan.period_ms
                header.sequence_number = period - node_first[node]
                if len(kept) == hi - lo:
                    indication.cell_ids.extend(self._cell_ids[node])
                    indication.values.extend(row_values[lo * m : hi * m])
                else:
                    indication.cell_ids.extend(self._cell_ids[node][c - lo] for c in kept)
                    for c in kept:
                        indication.values.extend(row_values[c * m : (c + 1) * m])
                if row_gaps[node]:
                    flat = [c * m + j for c in kept for j in range(m)]
                    indication.no_value.extend(k for k, at in enumerate(flat) if row_missing[at])
                count += 1
                cells += len(kept)
                if count == plan.max_per_message:
                    yield message
                    message, count, cells = pb.SubscriptionMessage(), 0, 0
        if count:
            yield message


def kpm_records(row: list[float], integer: tuple[bool, ...]) -> list[float | int | None]:
    """One cell's values as E2SM-KPM records: None (noValue) for NaN, integers where the standard has them."""
    return [None if v != v else (int(v) if is_int else v) for v, is_int in zip(row, integer, strict=True)]


class RawIndicationEncoder:
    """Turns blocks into IndicationBatch messages of RawKpmIndication: one per cell and period, E2SM-KPM bytes.

    Encoding goes through asn1tools (about 0.3 ms a cell-report): for tests and E2 terminations that forward
    E2SM payloads, not for load.
    """

    def __init__(self, plan: SubscriptionPlan, source: KpmSource, first_period: int) -> None:
        self._plan = plan
        self._node_first = plan.node_first_periods(first_period)
        self._integer = tuple(source.measurements[i].integer for i in plan.measurement_index.tolist())
        self._nodes = [
            (node_id, [(int(c), source.cell_ids[c]) for c in cells.tolist()])
            for node_id, cells in zip(plan.node_ids, plan.node_cells, strict=True)
        ]

    def messages(self, block: KpmBlock) -> Iterator[pb.SubscriptionMessage]:
        """Stream messages for a block, period by period and cell by cell, plan.max_per_message a message (or
        plan.max_cells_per_message, if fewer: each report is one cell's)."""
        plan = self._plan
        per_message = min(plan.max_per_message, plan.max_cells_per_message or plan.max_per_message)
        message, count = pb.SubscriptionMessage(), 0
        for row, time_ms in enumerate(block.times_ms.tolist()):
            header = encode_indication_header(time_ms, version=KPM_VERSION)
            period = time_ms // plan.period_ms
            values = block.values[row][:, plan.measurement_index]
            for (node_id, cells), first in zip(self._nodes, self._node_first, strict=True):
                if period < first:
                    continue
                sequence = period - first
                for cell, cell_id in cells:
                    if block.reported is not None and not block.reported[row, cell]:
                        continue
                    records = kpm_records(values[cell].tolist(), self._integer)
                    message.batch.raw.add(
                        node_id=node_id, cell_id=cell_id, sequence_number=sequence, kpm_version=KPM_VERSION,
                        indication_header=header,
                        indication_message=encode_indication_message_format1(
                            plan.measurement_names, records, plan.period_ms
                        ),
                    )  # fmt: skip
                    count += 1
                    if count == per_message:
                        yield message
                        message, count = pb.SubscriptionMessage(), 0
        if count:
            yield message
