"""The simulator's gRPC server: the E2Node service (proto/ ranomaly.e2.v1) and, beside it, GroundTruth."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import structlog

from e2sim.encoding import (
    IndicationEncoder,
    RawIndicationEncoder,
    SubscriptionError,
    SubscriptionPlan,
    accepted_message,
    plan_subscription,
)
from e2sim.source import KpmSource, nr_cell_identities
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2 as gt
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2_grpc as gt_grpc
from ranomaly_contracts.tls import ServerTls

log = structlog.get_logger(__name__)

SERVICE_MODEL_OID = "1.3.6.1.4.1.53148.1.3.2.2"  # E2SM-KPM v3


@dataclass(frozen=True)
class StreamOptions:
    """How subscriptions are served."""

    realtime: bool = True  # pace periods on the wall clock; False: as fast as the subscriber reads
    periods: int = 0  # periods per subscription before the stream ends; 0: never
    # periods from the stream's start after which every subscription ends, a resumed one too (a fixed span that
    # a reconnect never lengthens: the demo's hours); 0: none
    span: int = 0
    max_indications_per_message: int = 64
    chunk_cell_reports: int = 50_000  # accelerated mode computes about this many cell-reports at once
    plmn_id: str = "00101"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class E2NodeService(pb_grpc.E2NodeServicer):
    """Serves a KpmSource as E2 nodes: node listing and KPM subscriptions."""

    def __init__(self, source: KpmSource, options: StreamOptions) -> None:
        self._source = source
        self._options = options
        self._ids = itertools.count(1)
        self.active: dict[str, SubscriptionPlan] = {}  # open subscriptions, by id

    async def ListNodes(self, request: pb.ListNodesRequest, context: grpc.aio.ServicerContext) -> pb.ListNodesResponse:
        """Nodes, cells and the RAN function definition."""
        src = self._source
        response = pb.ListNodesResponse()
        nci = nr_cell_identities(src).tolist()
        infos = [response.nodes.add(node_id=node_id, plmn_id=self._options.plmn_id) for node_id in src.node_ids]
        for cell_id, node, identity in zip(src.cell_ids, src.cell_node.tolist(), nci, strict=True):
            infos[node].cells.add(cell_id=cell_id, nr_cell_identity=identity)
        ran = response.ran_function
        ran.short_name = "ORAN-E2SM-KPM"
        ran.service_model_oid = SERVICE_MODEL_OID
        ran.description = "KPM monitor (RANomaly e2sim)"
        for i, m in enumerate(src.measurements, start=1):
            ran.measurements.add(name=m.name, id=i, unit=m.unit, description=m.description, integer=m.integer)
        ran.report_styles.add(
            style_type=1, name="E2 Node Measurement", indication_header_format=1, indication_message_format=1
        )
        ran.min_reporting_period_ms, ran.max_reporting_period_ms = src.period_range_ms
        return response

    async def Subscribe(
        self, request: pb.SubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscriptionMessage]:
        """Check the subscription, then stream its indications until it ends or the subscriber leaves."""
        try:
            plan = plan_subscription(self._source, request, self._options.max_indications_per_message)
        except SubscriptionError as exc:
            log.info("subscription refused", subscriber=request.subscriber_id, reason=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        subscription_id = f"sub-{next(self._ids)}"
        self.active[subscription_id] = plan
        log.info(
            "subscription opened",
            subscription=subscription_id,
            subscriber=plan.subscriber_id,
            nodes=len(plan.node_ids),
            cells=plan.n_cells,
            period_ms=plan.period_ms,
            resumed=sum(1 for after in plan.resume_after_ms if after),
        )
        try:
            yield accepted_message(plan, self._source, subscription_id)
            async for message in self._indications(plan):
                yield message
        finally:
            del self.active[subscription_id]
            log.info("subscription closed", subscription=subscription_id)

    async def _indications(self, plan: SubscriptionPlan) -> AsyncIterator[pb.SubscriptionMessage]:
        opts = self._options
        start = self._source.stream_start(plan.period_ms, _now_ms(), opts.realtime)
        first = min(plan.node_first_periods(start.first_period), default=start.first_period)  # resumed: later
        last = start.last_period
        if opts.periods:
            limit = first + opts.periods - 1
            last = limit if last is None else min(last, limit)
        if opts.span:
            end = start.first_period + opts.span - 1
            last = end if last is None else min(last, end)
        kind = RawIndicationEncoder if plan.raw else IndicationEncoder
        encoder = kind(plan, self._source, start.first_period)
        step = 1 if opts.realtime else max(1, opts.chunk_cell_reports // max(plan.n_cells, 1))
        chunks = iter(_chunks(first, last, step))
        # Prepare one chunk ahead, off the event loop, while the current one is sent.
        chunk = next(chunks, None)
        job = self._submit(encoder, plan, chunk)
        try:
            while chunk is not None and job is not None:
                messages = await job
                period, count = chunk
                chunk = next(chunks, None)
                job = self._submit(encoder, plan, chunk)
                if opts.realtime:
                    due_ms = (period + count) * plan.period_ms + start.wall_offset_ms
                    await asyncio.sleep(max(0.0, (due_ms - _now_ms()) / 1000.0))
                for message in messages:
                    yield message
        finally:
            if job is not None:
                job.cancel()

    def _submit(
        self, encoder: IndicationEncoder | RawIndicationEncoder, plan: SubscriptionPlan, chunk: tuple[int, int] | None
    ) -> asyncio.Future[list[pb.SubscriptionMessage]] | None:
        if chunk is None:
            return None
        return asyncio.ensure_future(asyncio.to_thread(self._prepare, encoder, plan, *chunk))

    def _prepare(
        self, encoder: IndicationEncoder | RawIndicationEncoder, plan: SubscriptionPlan, period: int, count: int
    ) -> list[pb.SubscriptionMessage]:
        block = self._source.block(period, count, plan.period_ms)
        return list(encoder.messages(block))


def _chunks(first: int, last: int | None, step: int) -> Iterator[tuple[int, int]]:
    """(first period, count) of consecutive chunks up to last (inclusive; None: forever)."""
    period = first
    while last is None or period <= last:
        count = step if last is None else min(step, last - period + 1)
        yield period, count
        period += count


class GroundTruthService(gt_grpc.GroundTruthServicer):
    """Serves the labels of a KpmSource, beside (never inside) the E2 stream."""

    def __init__(self, source: KpmSource) -> None:
        self._source = source

    async def ListAnomalies(
        self, request: gt.ListAnomaliesRequest, context: grpc.aio.ServicerContext
    ) -> gt.ListAnomaliesResponse:
        """Labels of the periods whose collection starts in [start_ms, end_ms)."""
        if request.reporting_period_ms == 0 or request.end_ms <= request.start_ms:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "a reporting period and start_ms < end_ms are required"
            )
        labels = await asyncio.to_thread(
            self._source.labels, request.start_ms, request.end_ms, request.reporting_period_ms
        )
        response = gt.ListAnomaliesResponse()
        for lb in labels:
            response.anomalies.add(
                node_id=lb.node_id,
                cell_id=lb.cell_id,
                kind=lb.kind,
                first_ms=lb.first_ms,
                last_ms=lb.last_ms,
                intensity=lb.intensity,
                measurements=list(lb.measurements),
            )
        return response


class SimServer:
    """A running gRPC server with both services; over TLS with `tls` (mutual TLS with its client CA)."""

    def __init__(self, source: KpmSource, options: StreamOptions, tls: ServerTls | None = None) -> None:
        self._credentials = None if tls is None else tls.grpc_credentials()
        self.e2 = E2NodeService(source, options)
        self.ground_truth = GroundTruthService(source)
        self._server = grpc.aio.server()
        pb_grpc.add_E2NodeServicer_to_server(self.e2, self._server)
        gt_grpc.add_GroundTruthServicer_to_server(self.ground_truth, self._server)
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a free port); return the bound port."""
        address = f"{host}:{port}"
        if self._credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, self._credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        await self._server.start()
        log.info("e2sim listening", host=host, port=self.port, tls=self._credentials is not None)
        return self.port

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop accepting and end open streams."""
        await self._server.stop(grace_s)

    async def wait(self) -> None:
        """Block until the server stops."""
        await self._server.wait_for_termination()
