"""E2 over gRPC: subscribe to one endpoint and feed the engine; reconnect and resubscribe when the stream is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc
import structlog

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from xapp.e2raw import RawKpmIntake
from xapp.engine import Engine
from xapp.errors import StreamError
from xapp.messageparts import message_parts
from xapp.settings import DEFAULT_INDICATIONS_PER_MESSAGE
from xapp.wirevalues import read_stream_message

log = structlog.get_logger(__name__)

_SUBSCRIBE = pb.DESCRIPTOR.services_by_name["E2Node"].methods_by_name["Subscribe"]
_SUBSCRIBE_PATH = f"/{_SUBSCRIBE.containing_service.full_name}/{_SUBSCRIBE.name}"


@dataclass(frozen=True)
class Subscription:
    """What to ask every E2 endpoint for."""

    subscriber_id: str
    node_ids: Sequence[str]
    cell_ids: Sequence[str]
    measurements: Sequence[str]
    period_ms: int
    max_indications_per_message: int = DEFAULT_INDICATIONS_PER_MESSAGE
    max_cells_per_message: int = 0  # 0: bounded by indications only
    raw_e2sm_kpm: bool = False  # ask for E2SM-KPM bytes (RawKpmIndication) instead of the compact form

    def request(self, resume_after_ms: Mapping[str, int] | None = None) -> pb.SubscriptionRequest:
        """The gRPC subscription request; resume_after_ms: per node, the last collection start accepted."""
        return pb.SubscriptionRequest(
            subscriber_id=self.subscriber_id,
            node_ids=list(self.node_ids),
            cell_ids=list(self.cell_ids),
            measurements=list(self.measurements),
            reporting_period_ms=self.period_ms,
            max_indications_per_message=self.max_indications_per_message,
            max_cells_per_message=self.max_cells_per_message,
            raw_e2sm_kpm=self.raw_e2sm_kpm,
            resume_after_ms=resume_after_ms,
        )


@dataclass(frozen=True)
class Shard:
    """Sharded replicas (xapp.shard.replica): which of an endpoint's nodes to subscribe to, and when to reopen."""

    select: Callable[[list[str]], Awaitable[list[str]]]  # listed nodes -> ours (taken, their state restored)
    reshard: asyncio.Event  # set: reopen the subscription after the message in hand (the share changed)


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts: doubling from `first_s` up to `max_s`."""

    first_s: float = 0.2
    max_s: float = 10.0


async def follow(
    target: str,
    subscription: Subscription,
    engine: Engine,
    backoff: Backoff,
    stop: asyncio.Event,
    credentials: grpc.ChannelCredentials | None = None,
    shard: Shard | None = None,
) -> None:
    """Keep a subscription to `target` open until stop is set (over TLS with `credentials`, else plain).

    With `shard` (sharded replicas), each (re)subscription first lists the endpoint's nodes and subscribes only
    to those `shard.select` returns (of the subscription's own nodes, if it names some; none: nothing is asked
    for until `shard.reshard` is set); when `shard.reshard` is set, the stream closes after the message in
    hand (between two periods' messages, so none is in flight) and reopens with the new share.

    A refused subscription (INVALID_ARGUMENT) raises StreamError: the configuration is wrong and retrying
    will not fix it. Any other loss (endpoint down, stream ended or broken) is retried with backoff; the
    engine keeps every cell's state across reconnections, and a resubscription resumes each node after the
    last collection start the engine accepted from it, so that nothing is sent twice. Raw E2SM-KPM reports
    are decoded into the compact form before the engine takes them.
    """
    delay = backoff.first_s
    losses = 0  # in a row, since a stream last delivered: a warning at the 1st, 2nd, 4th, 8th, ...
    metrics = engine.metrics
    raw = RawKpmIntake(engine.measurements, engine.tuning.period_ms, metrics, engine.errors)
    nodes: list[str] = []  # of the last accepted subscription: they resume where they stopped
    while not stop.is_set():
        metrics.e2_reconnects.inc()
        connected = delivered = False
        resume = engine.resume_points(nodes)
        try:
            async with _channel(target, credentials) as channel:
                stub = pb_grpc.E2NodeStub(channel)
                if shard is not None:
                    shard.reshard.clear()
                wanted = subscription if shard is None else await _shared(stub, subscription, shard.select)
                if wanted is None:
                    log.info("e2_no_nodes_of_this_replica", target=target)
                    assert shard is not None
                    await _either(shard.reshard, stop, backoff.max_s)
                    delivered, delay = True, backoff.first_s  # nothing was lost: reopen at once
                else:
                    call = _subscribe(channel)(wanted.request(resume))
                    async for message, records in _until(call, stop):  # plain iteration: a task per read costs more
                        if message.HasField("batch"):
                            received_ns = time.perf_counter_ns()
                            for index, (part, part_records) in enumerate(message_parts(message.batch, records)):
                                if index:
                                    await asyncio.sleep(0)  # the event loop runs between a long message's parts
                                batch = raw.merged(part) if part.raw else part
                                engine.on_batch(batch, received_ns, records=part_records)
                            if not delivered:
                                delivered, delay, losses = True, backoff.first_s, 0
                        elif message.HasField("accepted"):
                            engine.on_accepted(message.accepted)
                            connected = True
                            metrics.e2_connected.inc()
                            nodes = [node.node_id for node in message.accepted.nodes]
                            log.info("e2_subscribed", target=target, nodes=len(nodes), resumed=len(resume))
                        if shard is not None and shard.reshard.is_set():
                            call.cancel()
                            delivered, delay = True, backoff.first_s
                            break
            if not stop.is_set():
                losses += not delivered  # a stream that ends with nothing (a source that ended) backs off
                quiet = log.debug if losses & (losses - 1) else log.warning
                (log.info if delivered else quiet)("e2_stream_ended", target=target, delivered=delivered,
                                                   in_a_row=losses)  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise StreamError(f"E2 endpoint {target} refused the subscription: {exc.details()}") from None
            losses += 1
            level = log.warning if losses & (losses - 1) == 0 else log.debug
            level("e2_stream_lost", target=target, code=exc.code().name, details=exc.details(), in_a_row=losses)
        finally:
            if connected:
                metrics.e2_connected.dec()
        engine.flush()
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, backoff.max_s)


async def _shared(
    stub: pb_grpc.E2NodeStub, subscription: Subscription, select: Callable[[list[str]], Awaitable[list[str]]]
) -> Subscription | None:
    """The subscription narrowed to this replica's share of the endpoint's nodes; None if it has none there."""
    listed = await stub.ListNodes(pb.ListNodesRequest())
    named = set(subscription.node_ids)
    mine = await select([node.node_id for node in listed.nodes if not named or node.node_id in named])
    return dataclasses.replace(subscription, node_ids=mine) if mine else None


async def _either(event: asyncio.Event, stop: asyncio.Event, timeout_s: float) -> None:
    """Wait until event or stop is set, at most timeout_s."""
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


Received = tuple[pb.SubscriptionMessage, bytes]  # a stream message and its records as the wire carried them


def _subscribe(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable[pb.SubscriptionRequest, Received]:
    """E2Node.Subscribe, each message read with its records as bytes (xapp/wirevalues.py)."""
    return channel.unary_stream(
        _SUBSCRIBE_PATH, request_serializer=pb.SubscriptionRequest.SerializeToString,
        response_deserializer=read_stream_message,
    )  # fmt: skip


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """A channel to `target`: TLS with credentials, else plain."""
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)


async def _until(
    call: grpc.aio.UnaryStreamCall[pb.SubscriptionRequest, Received], stop: asyncio.Event
) -> AsyncIterator[Received]:
    """The call's messages until it ends, or until stop is set (a watcher then cancels the call)."""
    watcher = asyncio.ensure_future(_cancel_when_set(call, stop))
    try:
        async for message in call:
            yield message
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
    finally:
        watcher.cancel()


async def _cancel_when_set(call: grpc.aio.Call, stop: asyncio.Event) -> None:
    await stop.wait()
    call.cancel()
