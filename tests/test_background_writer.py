"""The data layer's background writer: its quiet work goes between writes and never stops it."""

from __future__ import annotations

import asyncio

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
