"""A child command in its own process group (a session of its own), its output handed over line by line as it
comes, and stopped as a group: SIGTERM, then SIGKILL after a grace period. So a training run and anything it
started end with the job or the rApp, and a terminal's Ctrl-C reaches the rApp alone, which stops them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger(__name__)

_LINE_END = re.compile(rb"[\r\n]+")  # progress bars redraw with \r: each redraw is a line
_CHUNK = 4096
_PARTIAL_MAX = 4096  # a line longer than this is handed over in pieces


async def run_group(
    command: Sequence[str],
    on_line: Callable[[str], None],
    grace_s: float,
    on_start: Callable[[int], None] | None = None,
) -> int:
    """Run the command to its end, calling on_start with its pid (its group's id) and on_line with each output
    line (stdout and stderr together); its exit status. If cancelled, the child's process group is stopped
    before the cancellation goes on."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    log.info("child_started", pid=process.pid, command=command[:6])
    if on_start is not None:
        on_start(process.pid)
    assert process.stdout is not None
    pump = asyncio.create_task(_pump(process.stdout, on_line))
    try:
        return await _exited(process)
    finally:
        await stop_group(process, grace_s)  # what the child left holds the pipe open: the group goes first
        try:
            await asyncio.wait_for(pump, grace_s)  # then its last lines
        except TimeoutError:
            log.warning("child_output_left_open", pid=process.pid)


async def _pump(stream: asyncio.StreamReader, on_line: Callable[[str], None]) -> None:
    partial = b""
    while chunk := await stream.read(_CHUNK):
        *lines, partial = _LINE_END.split(partial + chunk)
        while len(partial) > _PARTIAL_MAX:
            lines.append(partial[:_PARTIAL_MAX])
            partial = partial[_PARTIAL_MAX:]
        for line in lines:
            if line.strip():
                on_line(line.decode(errors="replace"))
    if partial.strip():
        on_line(partial.decode(errors="replace"))


async def stop_group(process: asyncio.subprocess.Process, grace_s: float) -> None:
    """Stop the process's group: SIGTERM, then SIGKILL if the leader has not exited within grace_s; the
    leader is waited for, and the rest of its group gets SIGKILL too."""
    group = process.pid  # start_new_session: the child leads its own group
    if process.returncode is None:
        _signal_group(group, signal.SIGTERM)
        try:
            await asyncio.wait_for(_exited(process), grace_s)
        except TimeoutError:
            log.warning("child_killed", pid=process.pid, grace_s=grace_s)
    _signal_group(group, signal.SIGKILL)  # what the leader left behind, or the leader itself after the grace
    await _exited(process)


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The exit status once the process exits (Process.wait() of Python 3.11 also waits until every holder of
    its pipes closed them, a grandchild included)."""
    while process.returncode is None:
        await asyncio.sleep(0.05)
    return process.returncode


def stop_stale_group(group: int, marker: str) -> bool:
    """SIGKILL a process group a stopped predecessor left, if its leader still runs a command line holding
    marker (so a reused pid is left alone); whether it did."""
    try:
        with open(f"/proc/{group}/cmdline", "rb") as cmdline:
            if marker.encode() not in cmdline.read():
                return False
    except OSError:
        return False
    _signal_group(group, signal.SIGKILL)
    return True


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)
