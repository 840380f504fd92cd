"""Long loops report progress off a terminal: plain heartbeat lines naming the loop and how far it got."""

from __future__ import annotations

import io
import time

from models.progress import heartbeat, progress


def _until_written(out: io.StringIO, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in out.getvalue():
        assert time.monotonic() < deadline, f"no heartbeat line with {text!r} in 60 s: {out.getvalue()!r}"
        time.sleep(0.01)


def test_heartbeat_names_the_running_loop_and_its_count_off_a_terminal() -> None:
    out = io.StringIO()  # pytest captures stderr: not a terminal, so no bar
    with heartbeat("ranomaly train", every_s=0.01, stream=out):
        for done in progress(range(3), "calibration", "period", 3):
            if done == 1:
                _until_written(out, "calibration 1/3 periods")
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("ranomaly train: ") and " s so far; latest: calibration " in line, line


def test_heartbeat_stops_with_its_block() -> None:
    out = io.StringIO()
    with heartbeat("export", every_s=0.01, stream=out):
        _until_written(out, "export: ")
    written = out.getvalue()
    time.sleep(0.05)
    assert out.getvalue() == written, "no line after the block ended"
