"""`ranomaly bench xapp`'s in-process feed of the simulator's own messages, at a tiny size: it scores what it times."""

from __future__ import annotations

from e2sim.catalogue import MEASUREMENTS
from models.trivial import parsed_trivial
from ranomaly.bench_xapp import feed, simulator_messages


async def test_a_period_of_the_simulators_messages_is_scored_whole() -> None:
    periods, nodes = simulator_messages(300, 3, 60_000)
    artifact = parsed_trivial([m.name for m in MEASUREMENTS], 60.0)
    figures = await feed(artifact, periods, nodes, 1024, 0.5)
    sent = sum(len(indication.cell_ids) for message in periods[1] + periods[2] for indication in message.indications)
    gaps = sum(len(indication.no_value) for message in periods[1] for indication in message.indications)
    assert gaps > 0, "the simulator's routine missing values are in the messages"
    assert figures["cell_reports"] == sent > 500, "every cell-report of the timed periods, none of the first"
    assert figures["periods_timed"] == 2 and figures["ms_per_period"] > 0
