"""The data layer's background writer: its quiet work and the KPM forwards go between writes; a failing step never
stops it."""

from __future__ import annotations

import asyncio

import pytest

import xapp.datalayer.buffer as buffer_module
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


def kpm_forward(node: str) -> tuple[list[str], list[pb.Indication]]:
    """One KPM forward of one indication."""
    indication = pb.Indication(cell_ids=[f"{node}-c0"], values=[1.0])
    indication.header.node_id = node
    return ["RRC.ConnMean"], [indication]


async def never() -> None:
    return None


async def test_kpm_forwards_wait_for_a_gap_between_verdict_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "KPM_WAIT_S", 3600.0)  # only a gap lets them out
    buffer = WriteBuffer(verdict_cells=1000, incident_events=10, kpm_indications=10)
    written: list[Drain] = []

    async def write(drain: Drain) -> None:
        written.append(drain)
        if len(written) < 5:  # verdicts keep coming while this one is written: no gap
            buffer.add_verdicts(make_batch(4, seed=len(written)))

    writer = BackgroundWriter(buffer, write, never)
    buffer.add_kpm(*kpm_forward("n1"))
    buffer.add_verdicts(make_batch(4))
    writer.start()
    await until(lambda: any(drain.kpm for drain in written), "the KPM forward written")
    await writer.stop(5)
    assert [len(drain.verdicts) for drain in written] == [1, 1, 1, 1, 1, 0], "five verdict writes, then the gap"
    assert [len(drain.kpm) for drain in written] == [0, 0, 0, 0, 0, 1]


async def test_kpm_forwards_go_with_the_verdicts_after_waiting_their_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "KPM_WAIT_S", 0.2)
    buffer = WriteBuffer(verdict_cells=1000, incident_events=10, kpm_indications=10)
    written: list[tuple[float, Drain]] = []
    loop = asyncio.get_running_loop()

    async def write(drain: Drain) -> None:
        written.append((loop.time(), drain))
        if not drain.kpm:  # verdicts without a gap until the forward went out
            buffer.add_verdicts(make_batch(4, seed=len(written)))
        await asyncio.sleep(0)

    writer = BackgroundWriter(buffer, write, never)
    began = loop.time()
    buffer.add_kpm(*kpm_forward("n1"))
    buffer.add_verdicts(make_batch(4))
    writer.start()
    await until(lambda: any(drain.kpm for _, drain in written), "the KPM forward written")
    await writer.stop(5)
    at, drain = next((at, drain) for at, drain in written if drain.kpm)
    assert drain.verdicts, "written with verdicts: there was no gap"
    assert at - began >= 0.2, "not before it had waited KPM_WAIT_S"
    assert all(d.verdicts for _, d in written), "every write held verdicts"


async def test_a_flush_writes_kpm_forwards_without_waiting_for_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "KPM_WAIT_S", 3600.0)
    monkeypatch.setattr(buffer_module, "QUIET_S", 3600.0)  # no gap would come within the test
    buffer = WriteBuffer(verdict_cells=1000, incident_events=10, kpm_indications=10)
    written: list[Drain] = []

    async def write(drain: Drain) -> None:
        written.append(drain)

    writer = BackgroundWriter(buffer, write, never)
    writer.start()
    buffer.add_kpm(*kpm_forward("n1"))
    assert await writer.flush(60), "flushed"
    await writer.stop(5)
    assert [len(drain.kpm) for drain in written] == [1]
