"""The data layer's background writer: its quiet work goes between writes and never stops it."""

from __future__ import annotations

import asyncio

import pytest

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from tests.test_sdl_encoding import make_batch
from xapp.datalayer.buffer import BackgroundWriter, Drain, QuietWork, WriteBuffer


async def until(condition: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.01)


async def test_quiet_work_runs_once_writes_stop_and_a_failing_step_does_not_stop_the_writer() -> None:
    buffer = WriteBuffer(verdict_cells=1000, incident_events=10, kpm_indications=10)
    written: list[Drain] = []
    steps: list[int] = []

    async def write(drain: Drain) -> None:
        written.append(drain)

    async def probe() -> None:
        return None

    async def step() -> None:
        steps.append(len(written))
        if len(steps) == 1:
            raise RuntimeError("a step that fails")

    writer = BackgroundWriter(buffer, write, probe, quiet=QuietWork(lambda: len(steps) < 3, step))
    writer.start()
    buffer.add_verdicts(make_batch(4))
    await until(lambda: len(steps) == 3, "three quiet steps after the write")
    assert steps == [1, 1, 1], "each step after the one write, none before it"
    assert writer.errors == 1 and writer.running, "the failing step was counted and the writer goes on"
    buffer.add_verdicts(make_batch(4, seed=1))
    await until(lambda: len(written) == 2, "the next write")
    await writer.stop(5)


class Recorded:
    """A store that keeps every drain written to it."""

    def __init__(self) -> None:
        self.drains: list[Drain] = []

    async def write(self, drain: Drain) -> None:
        self.drains.append(drain)

    async def probe(self) -> None:
        return None

    def kpm_sizes(self) -> list[int]:
        return [len(drain.kpm) for drain in self.drains]


def kpm_writer(buffer: WriteBuffer, store: Recorded) -> BackgroundWriter:
    writer = BackgroundWriter(buffer, store.write, store.probe, defer_kpm_s=60.0)
    writer.start()
    return writer


async def test_kpm_forwards_wait_out_a_burst_and_go_in_the_first_quiet_gap() -> None:
    buffer, store = WriteBuffer(verdict_cells=1000, incident_events=10, kpm_indications=100), Recorded()
    writer = kpm_writer(buffer, store)
    buffer.add_kpm(("m.a",), [pb.Indication()])
    buffer.add_verdicts(make_batch(4))
    await until(lambda: sum(store.kpm_sizes()) == 1, "the KPM forward written once nothing else was")
    assert store.drains[0].verdicts and store.kpm_sizes() == [0, 1], "the verdicts first, without the forward"
    await writer.stop(5)


@pytest.mark.parametrize("why", ["waited", "half_full", "flush"])
async def test_kpm_forwards_go_with_the_verdicts_once_waited_half_full_or_flushed(why: str) -> None:
    buffer, store = WriteBuffer(verdict_cells=1000, incident_events=10, kpm_indications=4), Recorded()
    writer = kpm_writer(buffer, store)
    buffer.add_kpm(("m.a",), [pb.Indication()] * (2 if why == "half_full" else 1))
    if why == "waited":
        buffer.kpm_since -= 61.0  # the oldest forward waited longer than defer_kpm_s
    buffer.add_verdicts(make_batch(4))
    if why == "flush":
        assert await writer.flush(30)
    await until(lambda: store.drains, "the first drain")
    assert store.drains[0].verdicts and store.drains[0].kpm, "the forward went with the verdicts"
    await writer.stop(5)
