"""Blocks to E2 messages and back: records, no-value, absent cells, batching, sequence numbers."""

from __future__ import annotations

import numpy as np

from e2sim.encoding import IndicationEncoder, plan_subscription
from e2sim.source import KpmBlock
from e2sim.world import World
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.indications import decode_indication


def test_encoded_block_decodes_to_the_same_records(small_world: World) -> None:
    period_ms = 60_000
    request = pb.SubscriptionRequest(
        reporting_period_ms=period_ms, measurements=["RRC.ConnMean", "DRB.UEThpDl"], max_indications_per_message=3
    )
    plan = plan_subscription(small_world, request, 64)
    n_periods, n_cells = 4, len(small_world.cell_ids)
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 100, (n_periods, n_cells, 12)).astype(np.float32)
    values[1, 2, :] = np.nan  # a silent cell
    values[2, 5, 4] = np.nan  # one record with no value
    reported = np.ones((n_periods, n_cells), dtype=bool)
    reported[3, 0] = False  # a cell that did not report
    first = 29_000_000
    block = KpmBlock(times_ms=np.arange(first, first + n_periods) * period_ms, values=values, reported=reported)

    messages = list(IndicationEncoder(plan, small_world, first).messages(block))
    assert all(len(m.batch.indications) <= 3 for m in messages)
    wire = [pb.SubscriptionMessage.FromString(m.SerializeToString()) for m in messages]
    decoded = [decode_indication(i, 2) for m in wire for i in m.batch.indications]
    assert len(decoded) == n_periods * len(small_world.node_ids)

    index = {c: k for k, c in enumerate(small_world.cell_ids)}
    columns = [4, 2]  # RRC.ConnMean, DRB.UEThpDl in catalogue order
    seen = np.zeros((n_periods, n_cells), dtype=bool)
    for indication in decoded:
        row = indication.collection_start_ms // period_ms - first
        assert indication.sequence == row and indication.period_ms == period_ms
        cells = [index[c] for c in indication.cell_ids]
        seen[row, cells] = True
        np.testing.assert_array_equal(indication.values, values[row][cells][:, columns])
    np.testing.assert_array_equal(seen, reported)
    assert sum(int(np.isnan(d.values).sum()) for d in decoded) == 3, "two from the silent cell, one record"


def test_a_cell_bound_packs_whole_indications_in_order(small_world: World) -> None:
    period_ms = 60_000
    first = 29_000_000
    block = small_world.block(first, 3, period_ms)
    unbounded = pb.SubscriptionRequest(reporting_period_ms=period_ms, max_indications_per_message=4096)
    expected = [
        i for m in IndicationEncoder(plan_subscription(small_world, unbounded, 64), small_world, first).messages(block)
        for i in m.batch.indications
    ]  # fmt: skip
    largest = max(len(i.cell_ids) for i in expected)
    assert largest > 1 and len({len(i.cell_ids) for i in expected}) > 1, "nodes of several sizes"
    for bound in (1, largest, largest + 1, 2 * largest + 1):
        request = pb.SubscriptionRequest(
            reporting_period_ms=period_ms, max_indications_per_message=4096, max_cells_per_message=bound
        )
        plan = plan_subscription(small_world, request, 64)
        messages = [m.batch.indications for m in IndicationEncoder(plan, small_world, first).messages(block)]
        sizes = [[len(i.cell_ids) for i in indications] for indications in messages]
        assert [i for indications in messages for i in indications] == expected, f"bound {bound}: same order"
        assert all(sum(s) <= bound or len(s) == 1 for s in sizes), f"bound {bound}: {sizes}"
        # full: no message could have taken the next one's first indication
        assert all(sum(a) + b[0] > bound for a, b in zip(sizes, sizes[1:], strict=False)), f"bound {bound}: {sizes}"
