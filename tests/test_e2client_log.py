"""An E2 endpoint that stays down is not a warning per reconnection attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from ranomaly.redis_process import free_port
from tests.xapp_helpers import engine_on
from xapp.datalayer.memory import MemoryDataLayer
from xapp.e2client import Backoff, Subscription, follow

LOSSES = 9  # enough to see the 1st, 2nd, 4th and 8th warn and the others not


@pytest.fixture
def every_level_logged() -> Iterator[None]:
    """structlog as it starts: an earlier test may have configured it to drop debug lines."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("every_level_logged")
@pytest.mark.timeout(600)  # connection attempts are slow on a busy machine
async def test_a_lasting_loss_warns_at_the_1st_2nd_4th_8th_loss_in_a_row() -> None:
    engine = await engine_on(MemoryDataLayer())
    subscription = Subscription("test", [], [], engine.measurements, 60_000)
    stop = asyncio.Event()
    with capture_logs() as logs:
        target = f"127.0.0.1:{free_port()}"
        task = asyncio.create_task(follow(target, subscription, engine, Backoff(0.001, 0.001), stop))
        while sum(1 for entry in logs if entry["event"] == "e2_stream_lost") < LOSSES:
            await asyncio.sleep(0.01)  # nobody listens: each attempt fails at once (pytest's timeout bounds it)
        stop.set()
        await task
    lost = [entry for entry in logs if entry["event"] == "e2_stream_lost"]
    warned = [entry["in_a_row"] for entry in lost if entry["log_level"] == "warning"]
    assert [entry["in_a_row"] for entry in lost] == list(range(1, len(lost) + 1))
    assert warned == [n for n in (1, 2, 4, 8, 16, 32) if n <= len(lost)], "the rest at debug"
