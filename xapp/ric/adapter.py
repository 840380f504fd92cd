"""The xApp inside an O-RAN SC RIC: one RMR endpoint for E2 indications and A1 policies, subscriptions.

- RMR: the endpoint's receive fd wakes the event loop; each wake drains up to `_DRAIN` messages. E2
  indications (12050) of one drain become one engine batch; A1 policy requests (20010) are answered (20011)
  in arrival order by one task through the same handler as A1-P over HTTP. At start the xApp asks the
  mediator for its policy type's instances (20012), retried until the route exists.
- Subscriptions: one E2SM-KPM report subscription per configured cell through the subscription manager;
  the instance id the RIC assigns names the cell in every indication.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import structlog

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.engine import Engine
from xapp.metrics import XappMetrics
from xapp.policy.rmr import A1_POLICY_QUERY, A1_POLICY_REQ, A1_POLICY_RESP, A1RmrAdapter, encode_policy_query
from xapp.ric.cells import RicCell
from xapp.ric.kpm import KpmIntake
from xapp.ric.rmr import RmrEndpoint, RmrMessage
from xapp.ric.submgr import SubmgrClient, SubscriptionKeeper, SubscriptionNotification

log = structlog.get_logger(__name__)

RIC_INDICATION = 12050
_DRAIN = 4096  # messages taken per wake-up at most, so A1 and timers get their turn under load
_QUERY_RETRY_S = (0.5, 10.0)


class RicAdapter:
    """Feeds the engine from RMR and answers A1 over RMR; never raises out of the receive callback."""

    def __init__(self, endpoint: RmrEndpoint, a1: A1RmrAdapter, metrics: XappMetrics, errors: RateLimitedLog) -> None:
        self.endpoint = endpoint
        self.intake: KpmIntake | None = None
        self.a1_replies = 0
        self._a1 = a1
        self._metrics = metrics
        self._errors = errors
        self._engine: Engine | None = None
        self._a1_queue: asyncio.Queue[RmrMessage] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._keeper: SubscriptionKeeper[RicCell] | None = None
        self._submgr: SubmgrClient | None = None
        self.query_sent = asyncio.Event()

    def start(self) -> None:
        """Listen on the endpoint and ask the A1 mediator for the current policies."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self.endpoint.fileno(), self._readable)
        self._tasks = [
            asyncio.create_task(self._answer_a1(), name="a1 over rmr"),
            asyncio.create_task(self._query_policies(), name="a1 policy query"),
        ]

    def attach(self, engine: Engine, cells: Sequence[RicCell], kpm_version: int) -> KpmIntake:
        """Score indications of these cells with the engine from now on; the intake that names them."""
        accepted = pb.SubscriptionAccepted(
            subscription_id="ric", measurements=list(engine.measurements), reporting_period_ms=engine.tuning.period_ms
        )
        nodes: dict[str, pb.NodeInfo] = {}
        for cell in cells:
            node = nodes.get(cell.meid)
            if node is None:
                node = nodes[cell.meid] = accepted.nodes.add(node_id=cell.meid, plmn_id=cell.plmn)
            node.cells.add(cell_id=cell.cell_id, nr_cell_identity=cell.nci)
        engine.on_accepted(accepted)
        self.intake = KpmIntake(engine.measurements, engine.tuning.period_ms, kpm_version, self._metrics, self._errors)
        self._engine = engine
        return self.intake

    def health(self) -> dict[str, int | bool]:
        """What /healthz says about the RIC side."""
        endpoint = self.endpoint
        return {
            "subscribed_cells": len(self.intake.bound) if self.intake is not None else 0,
            "policy_query_sent": self.query_sent.is_set(),
            "rmr_received": endpoint.received, "rmr_sent": endpoint.sent, "rmr_send_failures": endpoint.send_failures,
            "a1_replies": self.a1_replies,
        }  # fmt: skip

    def keep(self, keeper: SubscriptionKeeper[RicCell], client: SubmgrClient) -> None:
        """The subscriptions of the attached cells: notifications go to the keeper, close deletes them."""
        self._keeper, self._submgr = keeper, client

    def on_notification(self, notification: SubscriptionNotification) -> None:
        """A subscription manager's notification (POSTed to the xApp's HTTP server)."""
        if self._keeper is None:
            log.warning("subscription_notification_unexpected", subscription_id=notification.subscription_id)
            return
        self._keeper.on_notification(notification)

    async def close(self) -> None:
        """Delete the subscriptions, stop listening and release the endpoint."""
        if self._keeper is not None and self._submgr is not None:
            try:
                await self._keeper.close()
            finally:
                await self._submgr.aclose()
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.endpoint.fileno())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.endpoint.close()

    def _readable(self) -> None:
        try:
            messages = self.endpoint.receive_many(_DRAIN)
        except Exception:  # a broken endpoint must not take the event loop down with it
            log.exception("rmr_receive_failed")
            return
        received_ns = time.perf_counter_ns()
        payloads: list[bytes] = []
        for message in messages:
            if message.mtype == RIC_INDICATION:
                payloads.append(message.payload)
            elif message.mtype == A1_POLICY_REQ:
                self._a1_queue.put_nowait(message)
            else:
                self._metrics.decode_errors.labels("unexpected_rmr_type").inc()
                self._errors.warning("rmr_type", "rmr_message_ignored", mtype=message.mtype, size=len(message.payload))
        if payloads:
            self._score(payloads, received_ns)

    def _score(self, payloads: list[bytes], received_ns: int) -> None:
        engine, intake = self._engine, self.intake
        if engine is None or intake is None:
            self._metrics.decode_errors.labels("not_scoring_yet").inc(len(payloads))
            return
        batch = intake.batch(payloads)
        if batch.indications:
            engine.on_batch(batch, received_ns)

    async def _answer_a1(self) -> None:
        while True:
            message = await self._a1_queue.get()
            reply = await self._a1.handle_request(message.payload)
            if reply is None:
                self._metrics.policy_rmr_errors.inc()
                continue
            if self.endpoint.reply(message, A1_POLICY_RESP, reply):
                self.a1_replies += 1
            else:
                self._metrics.policy_rmr_errors.inc()
                log.warning("a1_reply_not_sent", size=len(reply))

    async def _query_policies(self) -> None:
        delay, most = _QUERY_RETRY_S
        while not self.endpoint.send(A1_POLICY_QUERY, encode_policy_query()):
            log.info("a1_policy_query_not_routed", retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, most)
        self.query_sent.set()
        log.info("a1_policy_query_sent")
