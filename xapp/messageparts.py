"""A stream message in parts the event loop can run between.

A stream paced in real time sends one period a message, which the engine takes whole (`Intake.take_routine`).
A replay or a catch-up packs many periods into one message, and the engine scores each of a cell's periods in
its own call, so a message of thousands of periods would hold the event loop for hundreds of milliseconds
(the A1 API's answers, Redis handshakes and the duties tick wait meanwhile). Such a message goes to the
engine `PART_INDICATIONS` indications at a time. Raw E2SM-KPM reports (one cell each, decoded one by one)
always go in parts, cut only where the node or its period changes, so that a node's period is merged whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from ranomaly_contracts.e2.v1 import e2_pb2 as pb

PART_INDICATIONS = 256  # indications (or raw reports) of a message handed to the engine at once, at least
_FLOAT32 = 4  # bytes a record takes on the wire


def message_parts(batch: pb.IndicationBatch, records: bytes) -> Iterator[tuple[pb.IndicationBatch, bytes]]:
    """The batch whole when it holds one period's indications (or few), else in parts of PART_INDICATIONS
    indications, each with its records when `records` holds the whole batch's (xapp/wirevalues.py)."""
    if batch.raw:
        yield from _raw_parts(batch)
        return
    indications = batch.indications
    if len(indications) <= PART_INDICATIONS or (
        indications[0].header.collection_start_ms == indications[-1].header.collection_start_ms
    ):
        yield batch, records
        return
    sizes = [len(indication.values) * _FLOAT32 for indication in indications]
    whole = len(records) == sum(sizes)
    offset = 0
    for at in range(0, len(indications), PART_INDICATIONS):
        size = sum(sizes[at : at + PART_INDICATIONS])
        part = pb.IndicationBatch(indications=indications[at : at + PART_INDICATIONS])
        yield part, records[offset : offset + size] if whole else b""
        offset += size


def _raw_parts(batch: pb.IndicationBatch) -> Iterator[tuple[pb.IndicationBatch, bytes]]:
    """Raw reports at least PART_INDICATIONS a part, cut where the node or its sequence number changes; the
    batch's compact indications ride with the last part."""
    raw = batch.raw
    begin = 0
    for at in range(PART_INDICATIONS, len(raw)):
        if at - begin >= PART_INDICATIONS and _node_period(raw[at]) != _node_period(raw[at - 1]):
            yield pb.IndicationBatch(raw=raw[begin:at]), b""
            begin = at
    if begin == 0:
        yield batch, b""
    else:
        yield pb.IndicationBatch(raw=raw[begin:], indications=batch.indications), b""


def _node_period(report: pb.RawKpmIndication) -> tuple[str, int]:
    """The node and period (its sequence number) a raw report belongs to."""
    return report.node_id, report.sequence_number
