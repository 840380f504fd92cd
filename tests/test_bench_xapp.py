"""`ranomaly bench xapp`'s in-process feed of the simulator's own messages, at a tiny size: it scores what it times;
and its count of garbage collections."""

from __future__ import annotations

import gc

from e2sim.catalogue import MEASUREMENTS
from models.trivial import parsed_trivial
from ranomaly.bench_xapp import GcPauses, feed, simulator_messages
from ranomaly_contracts.e2.v1 import e2_pb2 as pb


async def test_a_period_of_the_simulators_messages_is_scored_whole() -> None:
    periods, nodes = simulator_messages(300, 3, 60_000)
    artifact = parsed_trivial([m.name for m in MEASUREMENTS], 60.0)
    figures = await feed(artifact, periods, nodes, 1024, 0.5)
    batches = [pb.SubscriptionMessage.FromString(raw).batch for raw in periods[1] + periods[2]]
    sent = sum(len(indication.cell_ids) for batch in batches for indication in batch.indications)
    gaps = sum(len(indication.no_value) for batch in batches for indication in batch.indications)
    assert gaps > 0, "the simulator's routine missing values are in the messages"
    assert figures["cell_reports"] == sent > 500, "every cell-report of the timed periods, none of the first"
    assert figures["periods_timed"] == 2 and figures["ms_per_period"] > 0


def test_garbage_collections_in_the_window_are_counted_by_generation() -> None:
    automatic = gc.isenabled()
    gc.disable()  # only the collections made here
    try:
        with GcPauses() as pauses:
            gc.collect(0)
            gc.collect(2)
        gc.collect(1)  # after the window: not counted
    finally:
        if automatic:
            gc.enable()
    figures = pauses.figures(periods=2)
    assert figures["collections_by_generation"] == [1, 0, 1]
    assert 0 < figures["longest_ms"] <= 2 * figures["ms_per_period"]
