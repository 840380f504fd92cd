"""A minimal E2 subscriber for tests: subscribe, decode, collect."""

from __future__ import annotations

import grpc

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.indications import DecodedIndication, decode_indication


async def collect(
    channel: grpc.aio.Channel, request: pb.SubscriptionRequest
) -> tuple[pb.SubscriptionAccepted, list[DecodedIndication], list[int]]:
    """Read a whole stream: the acceptance, every decoded indication, and the size of every batch."""
    accepted: pb.SubscriptionAccepted | None = None
    indications: list[DecodedIndication] = []
    batch_sizes: list[int] = []
    async for message in pb_grpc.E2NodeStub(channel).Subscribe(request):
        if message.HasField("accepted"):
            accepted = message.accepted
            continue
        assert accepted is not None, "indications before the acceptance"
        batch_sizes.append(len(message.batch.indications))
        indications.extend(decode_indication(i, len(accepted.measurements)) for i in message.batch.indications)
    assert accepted is not None
    return accepted, indications, batch_sizes
