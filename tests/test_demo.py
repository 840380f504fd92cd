"""`ranomaly demo`: end to end, and how it waits and stops. No assertion here depends on the machine's speed:
every wait has a generous bound that names what it waited for."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ranomaly import demo
from ranomaly.demo import DemoFailed, Waits, run_child, stop_children_since

DEMO_BOUND_S = 3600  # the demo's own bound: reached, it names what it waited for and shows that step's log
BOUND_S = 120.0  # for the small waits below


def _eventually(what: str, holds: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND_S
    while not holds():
        assert time.monotonic() < deadline, f"{what}: not within {BOUND_S:g} s"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.timeout(DEMO_BOUND_S + 600)
def test_demo_trains_streams_through_the_xapp_and_scores_against_ground_truth(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "demo", "--hours", "12", "--cells", "24",
               "--work", str(tmp_path), "--template-reports", "--timeout-s", str(DEMO_BOUND_S)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=DEMO_BOUND_S + 300)
    out = result.stdout
    assert result.returncode == 0, out[-5000:] + result.stderr[-5000:]
    assert "17,280 cell-periods scored" in out and "sequence gaps 0" in out, out
    assert "ground truth:" in out and " + " in out and " - " in out
    precision = float(out.split("precision ")[1].split()[0])
    recall = float(out.split("event recall ")[1].split()[0])
    assert precision >= 0.5 and recall >= 0.5, "the xApp finds injected anomalies (incident precision, event recall)"
    assert "720 periods of KPM history collected" in out, "the rApp collected the whole day"
    assert "published and promoted" in out and "A1 policy ranomaly-model reads ENFORCED" in out, out
    assert "# Incident report: cell" in out and "_Written by: template" in out
    lost = [line for line in result.stderr.splitlines() if "e2_stream_lost" in line]
    in_a_row = [int(line.split("in_a_row=")[1].split()[0]) for line in lost]
    assert all(n & (n - 1) == 0 for n in in_a_row), "a stream that stays lost warns at the 1st, 2nd, 4th, ... retry"


async def test_a_wait_that_reaches_the_bound_names_what_it_waited_for_and_shows_its_log() -> None:
    waits = Waits(timeout_s=0)
    log = [f"line {i}" for i in range(40)]
    with pytest.raises(DemoFailed) as failed:
        await waits.until("job-1 to finish", lambda: False, lambda: "job-1 running", lambda: log)
    message = str(failed.value)
    assert "--timeout-s 0" in message and "waited" in message and "for job-1 to finish: job-1 running" in message
    assert "| line 39" in message and "| line 25" in message and "line 24" not in message, "the log's tail"


async def test_a_silent_wait_prints_what_it_awaits_and_for_how_long(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "PROGRESS_S", 0.0)  # due at every poll: the count of lines is the count of polls
    monkeypatch.setattr(demo, "POLL_S", 0.0)
    polls = iter(range(3))
    await Waits(timeout_s=3600).until("the rApp to collect 720 periods", lambda: next(polls, -1) < 0, lambda: "3")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(" ... waiting for the rApp to collect 720 periods: 3 (" in line for line in lines)
    assert lines[0].endswith(" s so far)")


async def test_a_wait_ends_when_a_part_it_depends_on_stops() -> None:
    async def crash() -> None:
        raise RuntimeError("model refused")

    task = asyncio.create_task(crash())
    await asyncio.wait([task])
    with pytest.raises(DemoFailed, match=r"the xApp stopped \(model refused\) while the demo waited for scoring"):
        await Waits(timeout_s=3600, watched={"the xApp": task}).until("scoring", lambda: False, lambda: "")


async def test_a_failed_child_is_reported_with_its_last_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DemoFailed, match=r"`export` exited with status 3; its last lines:\n  \| boom"):
        await run_child("`export`", ["sh", "-c", "echo boom; exit 3"], Waits(timeout_s=3600))
    assert "  boom" in capsys.readouterr().out, "its output is shown as it comes"


async def test_a_child_stopped_early_takes_its_whole_process_group_along(capsys: pytest.CaptureFixture[str]) -> None:
    waits = Waits(timeout_s=3600)
    child = asyncio.create_task(run_child("`train`", ["sh", "-c", "sleep 600 & echo $!; wait"], waits))
    deadline = time.monotonic() + BOUND_S
    printed = ""
    while not printed.strip():
        assert time.monotonic() < deadline, f"the child's first line: not within {BOUND_S:g} s"
        await asyncio.sleep(0.05)
        printed += capsys.readouterr().out
    grandchild = int(printed.split()[0])
    child.cancel()
    with pytest.raises(asyncio.CancelledError):
        await child
    await asyncio.to_thread(_eventually, "the grandchild stopped", lambda: _gone(grandchild))


def test_children_left_running_are_stopped_with_their_group() -> None:
    before = {pid: os.getpgid(pid) for pid in _children_of(os.getpid())}
    process = subprocess.Popen(["sh", "-c", "sleep 600 & wait"], start_new_session=True)
    stop_children_since(before)
    assert process.wait(BOUND_S) == -signal.SIGTERM
    _eventually("the group stopped", lambda: subprocess.run(["pgrep", "-g", str(process.pid)]).returncode == 1)


@pytest.mark.timeout(900)  # a Python start and a few waits, each bounded by BOUND_S: generous for a busy machine
def test_sigterm_stops_the_demo_and_every_process_it_started(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "demo", "--hours", "1", "--cells", "4",
               "--work", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert "training the detector" in process.stdout.readline()
    _eventually("the demo started its export", lambda: bool(_children_of(process.pid)))
    started = _children_of(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(BOUND_S) == 130
    _eventually("every child of the demo stopped", lambda: all(_gone(pid) for pid in started))
