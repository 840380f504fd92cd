"""How late the event loop runs: a probe that sleeps a short interval and measures how much longer it took.

What it measures is the longest stretch one piece of work held the loop (a stream message, a scoring call,
a gap fill, a request) around the probe's wake-up: what delays health, metrics, signals and every other
stream. Observed into `ranomaly_xapp_loop_lag_seconds`; the largest since start is a gauge of its own.
"""

from __future__ import annotations

import asyncio

from xapp.metrics import XappMetrics

PROBE_S = 0.05


async def watch_loop_lag(metrics: XappMetrics, interval_s: float = PROBE_S) -> None:
    """Observe the loop's lag every `interval_s` until cancelled."""
    loop = asyncio.get_running_loop()
    largest = 0.0
    while True:
        began = loop.time()
        await asyncio.sleep(interval_s)
        lag = max(0.0, loop.time() - began - interval_s)
        metrics.loop_lag.observe(lag)
        if lag > largest:
            largest = lag
            metrics.loop_lag_max.set(lag)
