"""Waiting on state in tests, with a generous bound that names what was awaited (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

BOUND_S = 120.0  # generous: a busy 2-core machine is slow, never this slow


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, timeout_s: float = BOUND_S) -> None:
    """Return once `condition` holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        await asyncio.sleep(0.05)
