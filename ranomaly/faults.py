"""`ranomaly faults` / `make faults`: the fault table of the hardening issue, run against real processes.

Every row starts what it needs (redis-server, `ranomaly xapp`, `ranomaly rapp`, `ranomaly sim serve`, or a hostile
E2 node scripted in this process), does one fault to them, and reads back what happened: rows sent, scored (gap
rows apart), dropped by reason, forwarded to the KPM stream, stored in the rApp's history, the xApp event loop's
largest lag during the fault, and whether the row holds (what the issue expects). "Unaccounted" is sent minus
scored minus dropped: nothing lost, everything counted, as a printed figure. The exit status is 1 when a row
does not hold. Models are the trivial detector (xapp tests' model), so what is measured is the xApp itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ranomaly.fault_rig import RowFailed
from ranomaly.fault_rows import ROWS, Context

PROGRESS_S = 10.0  # the longest the run stays silent
ROW_TIMEOUT_S = 240.0


@dataclass
class RowResult:
    """What one row did and whether it holds."""

    row: str
    fault: str
    sent: int | None = None
    scored: int | None = None  # cell-period rows scored, gap rows apart
    gaps: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    forwarded: int | None = None
    stored: int | None = None
    lag_s: float | None = None  # upper bound of the loop-lag bucket of the largest lag during the fault
    checks: list[tuple[bool, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    @property
    def unaccounted(self) -> int | None:
        if self.sent is None or self.scored is None:
            return None
        return self.sent - self.scored - sum(self.dropped.values())

    def expect(self, ok: bool, what: str) -> bool:
        """One expectation of the row: `what` says what was expected and what was found."""
        self.checks.append((bool(ok), what))
        return bool(ok)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _lag(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return ">60 s"
    return f"<={value * 1000:g} ms"


def table(results: list[RowResult]) -> str:
    """The fault table as text."""
    head = ("row", "sent", "scored", "gaps", "dropped (reason: rows)", "unacc.", "fwd", "stored", "loop lag", "holds")
    lines = [head]
    for r in results:
        dropped = ", ".join(f"{k} {v:,}" for k, v in r.dropped.items()) or "0"
        lines.append((r.row, _n(r.sent), _n(r.scored), _n(r.gaps), dropped, _n(r.unaccounted), _n(r.forwarded),
                      _n(r.stored), _lag(r.lag_s), "HOLDS" if r.holds else "FAIL"))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def details(result: RowResult) -> str:
    """A row's fault, its checks and its extra figures."""
    lines = [f"{result.row}: {result.fault} ({result.seconds:.0f} s)"]
    lines += [f"  {'ok  ' if ok else 'FAIL'} {what}" for ok, what in result.checks]
    if result.figures:
        lines.append("  figures: " + ", ".join(f"{k} {v}" for k, v in result.figures.items()))
    return "\n".join(lines)


class Progress:
    """Lines as the run goes, one at least every PROGRESS_S while a row runs."""

    def __init__(self) -> None:
        self.said = time.monotonic()
        self.began = self.said
        self.status = "starting"

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.said = time.monotonic()

    async def beat(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self.said >= PROGRESS_S:
                self.say(f"  ... {self.status} ({time.monotonic() - self.began:.0f} s into the run)")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()  # fmt: skip
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


async def run_row(name: str, work: Path, progress: Progress) -> RowResult:
    """One row, bounded by ROW_TIMEOUT_S; a row that cannot finish does not hold and says why."""
    fault, body = ROWS[name]
    result = RowResult(row=name, fault=fault)
    context = Context(work / name, lambda s: setattr(progress, "status", f"{name}: {s}"))
    began = time.monotonic()
    progress.status = f"{name}: starting"
    try:
        await asyncio.wait_for(body(context, result), ROW_TIMEOUT_S)
    except TimeoutError:
        result.expect(False, f"the row finished within {ROW_TIMEOUT_S:g} s (it was stopped at {progress.status})")
    except RowFailed as exc:
        result.expect(False, f"the row ran to its end: {exc}")
    except Exception as exc:  # a row that breaks is a failed row with its reason, and the others still run
        result.expect(False, f"the row ran to its end: {type(exc).__name__}: {exc}")
    finally:
        await context.close()
    result.seconds = time.monotonic() - began
    return result


async def run_faults(only: list[str] | None, json_path: Path | None, work: Path | None) -> int:
    """Run the rows (all, or `only`), print the table; 0 when every row holds."""
    names = only or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"ranomaly faults: unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}")
        return 2
    folder = work or Path(tempfile.mkdtemp(prefix="ranomaly-faults-"))
    progress = Progress()
    commit = _commit()
    progress.say(f"ranomaly faults at {commit}: {len(names)} rows against real processes; logs in {folder}")
    beat = asyncio.create_task(progress.beat())
    results = []
    try:
        for name in names:
            progress.say(f"{name}: {ROWS[name][0]} ...")
            result = await run_row(name, folder, progress)
            results.append(result)
            progress.say(details(result))
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    load = os.getloadavg()
    progress.say(f"\nfault table (commit {commit}, {os.cpu_count()} CPUs, load average {load[0]:.1f} at the end, "
                 f"{time.monotonic() - progress.began:.0f} s):")  # fmt: skip
    progress.say(table(results))
    held = sum(r.holds for r in results)
    progress.say(f"{held} of {len(results)} rows hold")
    if json_path is not None:
        rows = [asdict(r) | {"holds": r.holds, "unaccounted": r.unaccounted} for r in results]
        meta = {"commit": commit, "cpus": os.cpu_count(), "load_average_end": load, "python": platform.python_version()}
        json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=_plain) + "\n")
    return 0 if held == len(results) else 1


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if value == float("inf"):
        return "inf"
    return str(value)


def main(only: list[str] | None, json_path: str | None, work: str | None) -> int:
    """Entry point of `ranomaly faults` (Ctrl-C and SIGTERM stop every process it started: each row's close)."""
    loop_main: Callable[[], Awaitable[int]] = lambda: run_faults(  # noqa: E731
        only, Path(json_path) if json_path else None, Path(work) if work else None
    )

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await loop_main()

    return asyncio.run(guarded())
