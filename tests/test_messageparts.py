"""A stream message in parts: one period's message whole, a replay's in parts with their records, raw reports
cut only between node-periods."""

from __future__ import annotations

import numpy as np

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from xapp.messageparts import PART_INDICATIONS, message_parts

PERIOD_MS = 60_000


def compact(periods: int, nodes: int, cells: int = 3, k: int = 2) -> tuple[pb.IndicationBatch, bytes]:
    """A batch of `periods` periods of `nodes` nodes, and its records as the wire carries them."""
    batch = pb.IndicationBatch()
    values = np.arange(periods * nodes * cells * k, dtype="<f4")
    at = 0
    for period in range(periods):
        for node in range(nodes):
            indication = batch.indications.add(cell_ids=[f"n{node}-c{c}" for c in range(cells)])
            indication.values.extend(values[at : at + cells * k].tolist())
            at += cells * k
            header = indication.header
            header.node_id, header.collection_start_ms, header.sequence_number = f"n{node}", period * PERIOD_MS, period
            header.granularity_period_ms = PERIOD_MS
    return batch, values.tobytes()


def test_one_periods_message_goes_whole() -> None:
    batch, records = compact(1, 3 * PART_INDICATIONS)
    assert [(part is batch, part_records is records) for part, part_records in message_parts(batch, records)] == [
        (True, True)
    ]


def test_a_replays_message_goes_in_parts_with_their_records() -> None:
    batch, records = compact(300, 2)
    parts = list(message_parts(batch, records))
    assert [len(part.indications) for part, _ in parts] == [256, 256, 88]
    assert [i for part, _ in parts for i in part.indications] == list(batch.indications)
    assert b"".join(part_records for _, part_records in parts) == records
    for part, part_records in parts:
        expected = np.array([v for i in part.indications for v in i.values], dtype="<f4")
        np.testing.assert_array_equal(np.frombuffer(part_records, dtype="<f4"), expected)


def test_records_the_wire_did_not_carry_whole_are_left_to_the_indications() -> None:
    batch, records = compact(300, 2)
    assert {part_records for _, part_records in message_parts(batch, records[:-4])} == {b""}


def test_raw_reports_are_cut_between_node_periods_only() -> None:
    batch = pb.IndicationBatch()
    for period in range(120):
        for node in range(2):
            for cell in range(3):
                batch.raw.add(node_id=f"n{node}", cell_id=f"n{node}-c{cell}", sequence_number=period)
    batch.indications.add().header.node_id = "compact"
    parts = [part for part, _ in message_parts(batch, b"")]
    assert len(parts) == 3 and all(len(part.raw) >= PART_INDICATIONS for part in parts[:-1])
    assert [r for part in parts for r in part.raw] == list(batch.raw)
    for part, after in zip(parts, parts[1:], strict=False):
        assert (part.raw[-1].node_id, part.raw[-1].sequence_number) != (
            after.raw[0].node_id,
            after.raw[0].sequence_number,
        )
    assert [len(part.indications) for part in parts] == [0, 0, 1], "compact indications ride with the last part"
