"""`ranomaly faults`: cheap rows end to end on real processes (the table's counts add up), the loop-lag probe,
and the table's own arithmetic. The long rows run in `make faults`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import generate_latest

from ranomaly.fault_rig import Scrape
from ranomaly.faults import Progress, RowResult, run_row, table
from tests.waiting import until
from xapp.looplag import watch_loop_lag
from xapp.metrics import XappMetrics


async def test_a_row_of_hostile_starts_adds_up_on_real_processes(tmp_path: Path) -> None:
    result = await run_row("huge_start", tmp_path, Progress())
    assert result.holds, result.checks
    assert result.sent == 28 and result.scored == 12 and result.forwarded == 12
    assert result.dropped == {"time_out_of_range": 16}, result.dropped
    assert result.unaccounted == 0
    assert result.lag_s is not None
    line = next(line for line in table([result]).splitlines() if line.startswith("huge_start"))
    assert "time_out_of_range 16" in line and "HOLDS" in line


async def test_bad_values_are_masked_or_refused_each_under_its_reason(tmp_path: Path) -> None:
    result = await run_row("bad_values", tmp_path, Progress())
    assert result.holds, result.checks
    assert result.dropped == {"empty_cell": 1, "wrong_node": 1}
    assert result.figures["masked_values"] == 1
    assert result.sent is not None and result.scored == result.sent - 2 == result.forwarded


async def test_the_loop_lag_probe_sees_a_blocked_loop() -> None:
    metrics = XappMetrics()
    probe = asyncio.create_task(watch_loop_lag(metrics, interval_s=0.01))
    try:
        await until(lambda: _count(metrics) > 0, "a first probe")
        time.sleep(0.3)  # the loop is held: the probe wakes this much late at least
        seen = _count(metrics)
        await until(lambda: _count(metrics) > seen, "the probe after the block")
    finally:
        probe.cancel()
    scrape = Scrape(generate_latest(metrics.registry).decode())
    assert scrape.lag_over(0.2) >= 1
    assert scrape.value("ranomaly_xapp_loop_lag_max_seconds") >= 0.3
    assert scrape.lag_bucket(None) >= 0.5  # the bucket that holds the largest observation


def _count(metrics: XappMetrics) -> float:
    return Scrape(generate_latest(metrics.registry).decode()).value("ranomaly_xapp_loop_lag_seconds_count")


def test_a_row_without_checks_or_with_a_failed_one_does_not_hold() -> None:
    row = RowResult(row="r", fault="f", sent=10, scored=7, dropped={"late": 2})
    assert not row.holds and row.unaccounted == 1
    row.expect(True, "fine")
    assert row.holds
    row.expect(False, "not fine")
    assert not row.holds and "FAIL" in table([row])
