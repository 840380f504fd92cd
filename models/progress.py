"""Progress of long loops: tqdm's bar on a terminal; elsewhere (a pipe, a log file, the rApp's job log) a
plain line on stderr at least every `PROGRESS_S` seconds while a `heartbeat` block runs, naming the loop it
is in and how far it got, so a long training is never silent."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO, TypeVar

from tqdm import tqdm

PROGRESS_S = 10.0

T = TypeVar("T")


@dataclass
class _Loop:
    """The loop running now, as `progress` last recorded it."""

    desc: str
    unit: str
    total: int | None
    done: int = 0

    def line(self) -> str:
        of = f"/{self.total:,}" if self.total is not None else ""
        return f"{self.desc} {self.done:,}{of} {self.unit}s"


_current: _Loop | None = None


def progress(items: Iterable[T], desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """`items`, showing their progress: a tqdm bar on a terminal, else recorded for `heartbeat`'s lines."""
    if sys.stderr.isatty():
        yield from tqdm(items, desc=desc, unit=unit, total=total, leave=False)
        return
    global _current
    loop = _current = _Loop(desc, unit, total)
    for item in items:
        yield item
        loop.done += 1


@contextmanager
def heartbeat(what: str, every_s: float = PROGRESS_S, stream: TextIO | None = None) -> Iterator[None]:
    """While the block runs, print what it is at on `stream` (stderr) every `every_s` seconds, unless stderr
    is a terminal (the bars show there)."""
    out = stream if stream is not None else sys.stderr
    if stream is None and out.isatty():
        yield
        return
    global _current
    _current = None  # a loop before the block is not what it is at
    stop = threading.Event()
    began = time.monotonic()

    def beat() -> None:
        while not stop.wait(every_s):
            at = f"; latest: {_current.line()}" if _current is not None else ""
            print(f"{what}: {time.monotonic() - began:.0f} s so far{at}", file=out, flush=True)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
