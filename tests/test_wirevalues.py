"""Stream messages read with their records as the wire carried them (xapp/wirevalues.py): the records are the
values, a message whose records travel unpacked or in pieces is read the ordinary way, and the verdicts are
the same whichever way a message's records were read."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import varint
from tests.xapp_helpers import PERIOD_MS, T0, accepted, batch, engine_on, indication
from xapp.datalayer.memory import MemoryDataLayer
from xapp.wirevalues import read_stream_message

NODES: dict[str, Sequence[str]] = {"n1": ["c1", "c2"], "n2": ["c3"]}


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _encoded(message: pb.SubscriptionMessage, values: Callable[[list[float]], bytes]) -> bytes:
    """The message with each indication's values (field 3) encoded by `values`, everything else as protobuf does."""
    indications = b""
    for item in message.batch.indications:
        rest = pb.Indication()
        rest.CopyFrom(item)
        rest.ClearField("values")
        indications += _field(1, rest.SerializeToString() + values(list(item.values)))
    return _field(2, indications)


def packed(message: pb.SubscriptionMessage) -> bytes:
    return message.SerializeToString()


def unpacked(message: pb.SubscriptionMessage) -> bytes:
    """Every value a field of its own (fixed32): legal for a packed field, and parsers must accept it."""
    return _encoded(message, lambda values: b"".join(b"\x1d" + struct.pack("<f", v) for v in values))


def in_two_runs(message: pb.SubscriptionMessage) -> bytes:
    """The packed run split in two: parsers must join them."""

    def runs(values: list[float]) -> bytes:
        half = len(values) // 2
        return b"".join(_field(3, struct.pack(f"<{len(part)}f", *part)) for part in (values[:half], values[half:]))

    return _encoded(message, runs)


def message(period: int, c1: tuple[float, float, float] = (10.0, 20.0, 30.0)) -> pb.SubscriptionMessage:
    cells: dict[str, Sequence[float]] = {"c1": c1, "c2": (11.0, math.nan, 31.0)}
    return pb.SubscriptionMessage(
        batch=batch(indication("n1", period, cells), indication("n2", period, {"c3": (1.0, 2.0, 3.0)}))
    )


def test_the_records_are_the_values_as_little_endian_float32() -> None:
    sent = message(0)
    received, records = read_stream_message(sent.SerializeToString())
    assert received == sent
    values = [v for item in sent.batch.indications for v in item.values]
    assert np.frombuffer(records, dtype="<f4").tolist() == values and len(values) == 9


@pytest.mark.parametrize("encode", [unpacked, in_two_runs])
def test_records_the_view_cannot_hold_whole_are_left_to_protobuf(
    encode: Callable[[pb.SubscriptionMessage], bytes],
) -> None:
    sent = message(0)
    received, records = read_stream_message(encode(sent))
    assert received == sent, "protobuf reads the values of either encoding"
    assert len(records) < 4 * 9, "the view holds less than every record: the caller reads them the ordinary way"


def test_a_message_without_indications_has_no_records() -> None:
    received, records = read_stream_message(pb.SubscriptionMessage(accepted=accepted(NODES)).SerializeToString())
    assert received.HasField("accepted") and records == b""


async def _verdicts(feed: Callable[[int], tuple[pb.IndicationBatch, bytes]]) -> list[tuple[str, int, float, int]]:
    """(cell, period start, score, status) of six periods fed through an engine, each message as `feed` gives it."""
    layer = MemoryDataLayer()
    await layer.start()
    engine = await engine_on(layer)
    engine.on_accepted(accepted(NODES))
    for period in range(6):
        received, records = feed(period)
        engine.on_batch(received, records=records)
    engine.flush()
    await layer.flush()
    return [(cell, int(vb.period_start_ms[i]), float(vb.scores[i]), int(vb.statuses[i]))
            for _, vb in await layer.read_verdicts() for i, cell in enumerate(vb.cell_ids)]  # fmt: skip


@pytest.mark.parametrize("encode", [packed, unpacked, in_two_runs])
async def test_the_verdicts_are_the_same_whichever_way_the_records_were_read(
    encode: Callable[[pb.SubscriptionMessage], bytes],
) -> None:
    def ordinary(period: int) -> tuple[pb.IndicationBatch, bytes]:
        return message(period, (10.0 + period, 20.0, 30.0)).batch, b""

    def as_received(period: int) -> tuple[pb.IndicationBatch, bytes]:
        received, records = read_stream_message(encode(message(period, (10.0 + period, 20.0, 30.0))))
        return received.batch, records

    expected = await _verdicts(ordinary)
    assert len(expected) == 6 * 3
    assert await _verdicts(as_received) == expected


async def test_the_routine_path_scores_the_records_when_they_hold_every_value() -> None:
    """Records that disagree with the indications' values (never so on the wire) show which were scored."""

    def feed(period: int) -> tuple[pb.IndicationBatch, bytes]:
        sent = message(period)
        records = np.array([v for item in sent.batch.indications for v in item.values], dtype="<f4")
        records[0] += 7.0 * (period == 5)  # c1's first measurement moves by 7 in the last period, in the records only
        return sent.batch, records.tobytes()

    last = [row for row in await _verdicts(feed) if row[1] == T0 + 5 * PERIOD_MS]
    scores = {cell: score for cell, _, score, _ in last}
    assert scores["c1"] == pytest.approx(7.0) and scores["c2"] == scores["c3"] == 0.0
