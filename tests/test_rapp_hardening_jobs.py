"""The rApp's jobs under a careless operator and a restart: a bounded queue (429 with Retry-After), bounded
reasons, a paginated listing, a job log that shows the training child's progress, the child's whole process
group stopped with the rApp, and jobs kept across a restart (a running one reads failed, interrupted)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis.asyncio as aioredis

from ranomaly.redis_process import free_port
from ranomaly_contracts.dataset import Dataset
from ranomaly_contracts.sdl import sdl_keys
from rapp.app import RappService
from rapp.child import run_group
from rapp.settings import RappSettings
from tests.auth_helpers import app_key
from tests.waiting import until

# A training stand-in: starts a grandchild in its own group, shows progress, then trains "forever".
CHILD = """
import subprocess, sys, time
for epoch in range(30):
    print(f"epoch {epoch}", end="\\r" if epoch % 2 else "\\n", flush=True)
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"grandchild {sleeper.pid}", flush=True)
time.sleep(600)
"""


class History:
    """A tiny history for training jobs."""

    def dataset(self) -> Dataset:
        times = pd.date_range("2026-01-01", periods=8, freq="60s", tz="UTC")
        kpm = pd.DataFrame({"timestamp": times, "node_id": "n1", "cell_id": "c1", "m.a": np.arange(8.0)})
        return Dataset(kpm=kpm, period_s=60.0, units={"m.a": ""})

    def incident_windows(self) -> list[tuple[str, int, int]]:
        return []


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class Rapp:
    """An rApp whose training runs CHILD on a tiny history."""

    def __init__(self, settings: RappSettings, prefix: str) -> None:
        self.service = RappService(settings, prefix=prefix)
        jobs = self.service.jobs
        jobs.history = History()
        jobs.settings = replace(jobs.settings, train_command=(sys.executable, "-c", CHILD), stop_grace_s=5.0)
        self.task = asyncio.create_task(self.service.run())

    async def call(self, method: str, path: str, **more: Any) -> httpx.Response:
        await self.service.started.wait()
        base, headers = f"http://127.0.0.1:{self.service.http_port}", app_key(self.service.settings)
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            return await client.request(method, path, **more)

    async def stop(self) -> None:
        self.service.stop()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> RappSettings:
    return RappSettings(
        redis_url=redis_url, http_host="127.0.0.1", port=0, a1_base_url=f"http://127.0.0.1:{free_port()}",
        history_dir=tmp_path / "history", work_dir=tmp_path / "work", collect_block_ms=100, train_forecaster=False,
        jobs_waiting_max=2, job_log_lines=10,
    )  # fmt: skip


async def test_queue_bound_reasons_pages_log_and_stop_then_jobs_survive_a_restart(settings: RappSettings) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    rapp = Rapp(settings, prefix)
    try:
        too_long = await rapp.call("POST", "/api/v1/jobs/training", json={"reason": "x" * 201})
        assert too_long.status_code == 400 and "reason" in too_long.json()["detail"]
        assert (await rapp.call("POST", "/api/v1/jobs/training", json={"reason": "r", "x": 1})).status_code == 400
        assert (await rapp.call("POST", "/api/v1/jobs/training", content=b" " * 5000)).status_code == 413
        ids = []
        for n in range(3):  # one runs, two wait
            started = await rapp.call("POST", "/api/v1/jobs/training", json={"reason": f"{n}" * 200})
            assert started.status_code == 202, started.text
            ids.append(started.json()["id"])
        first = ids[0]
        await until(lambda: rapp.service.jobs.jobs[first].state == "running", "the first job running")
        refused = await rapp.call("POST", "/api/v1/jobs/training", json={"reason": "one too many"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "wait" in refused.json()["detail"]
        assert len(rapp.service.jobs.jobs) == 3, "a refused job is not kept"
        assert "ranomaly_rapp_jobs_refused_total 1.0" in (await rapp.call("GET", "/metrics")).text

        async def progress() -> list[str]:
            answer = await rapp.call("GET", f"/api/v1/jobs/{first}/log")
            assert answer.status_code == 200
            return [str(line) for line in answer.json()["lines"]]

        await until(lambda: _has(progress(), "grandchild"), "the child's last line in the job log")
        log = (await rapp.call("GET", f"/api/v1/jobs/{first}/log")).json()
        assert len(log["lines"]) == 10 and log["dropped"] > 0, "the log keeps its newest lines only"
        assert [line.split(" ", 1)[1] for line in log["lines"][-3:-1]] == ["epoch 28", "epoch 29"]
        tail = (await rapp.call("GET", f"/api/v1/jobs/{first}/log", params={"tail": 2})).json()["lines"]
        assert tail == log["lines"][-2:]
        grandchild = int(log["lines"][-1].split()[-1])

        page = (await rapp.call("GET", "/api/v1/jobs", params={"limit": 2})).json()
        assert [job["id"] for job in page["jobs"]] == ids[:0:-1] and page["total"] == 3 and page["next_offset"] == 2
        rest = (await rapp.call("GET", "/api/v1/jobs", params={"limit": 2, "offset": 2})).json()
        assert [job["id"] for job in rest["jobs"]] == [first] and rest["next_offset"] is None
        assert len(rest["jobs"][0]["log"]) <= 5, "a listing shows the tail of each log"
        assert all(len(job["reason"]) == 200 for job in page["jobs"])
        for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"offset": -1}):
            assert (await rapp.call("GET", "/api/v1/jobs", params=bad)).status_code == 400, bad
        assert (await rapp.call("GET", "/api/v1/jobs")).json()["limit"] == 20
    finally:
        await rapp.stop()
    await until(lambda: gone(grandchild), "the training child's group stopped with the rApp")

    again = Rapp(settings, prefix)
    try:
        await until(lambda: len(again.service.jobs.jobs) == 3, "the stored jobs restored")
        listed = {job["id"]: job for job in (await again.call("GET", "/api/v1/jobs")).json()["jobs"]}
        assert set(listed) == set(ids)
        for job in listed.values():
            assert job["state"] == "failed" and job["outcome"]["interrupted"] is True, job
            assert job["finished"] is not None
        assert "while the job was running" in listed[first]["outcome"]["error"]
        assert any("epoch" in line for line in (await again.call("GET", f"/api/v1/jobs/{first}")).json()["log"])
        metrics = (await again.call("GET", "/metrics")).text
        assert 'ranomaly_rapp_jobs{state="failed"} 3.0' in metrics
    finally:
        await again.stop()


async def _has(lines: Awaitable[list[str]], text: str) -> bool:
    return any(text in line for line in await lines)


async def test_a_child_that_ignores_sigterm_is_killed_with_its_group_when_its_job_is_cancelled() -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "s = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    lines: list[str] = []
    task = asyncio.create_task(run_group([sys.executable, "-c", code], lines.append, grace_s=0.5))
    await until(lambda: bool(lines), "the child's first line")
    grandchild = int(lines[0])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: gone(grandchild), "the grandchild killed with the group")
    assert os.getpgid(0) != grandchild


async def test_a_child_that_exits_is_done_even_when_what_it_started_holds_its_output_open() -> None:
    code = (
        "import subprocess, sys\n"
        "s = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(s.pid, flush=True)\n"
    )
    lines: list[str] = []
    assert await run_group([sys.executable, "-c", code], lines.append, grace_s=1.0) == 0
    await until(lambda: gone(int(lines[0])), "what the child left stopped with its group")


async def test_a_child_that_exits_hands_over_every_line_and_its_status() -> None:
    lines: list[str] = []
    status = await run_group([sys.executable, "-c", "print('a\\rb\\n\\nc', end=''); raise SystemExit(3)"],
                             lines.append, grace_s=1.0)  # fmt: skip
    assert status == 3 and lines == ["a", "b", "c"]


async def test_a_restart_stops_the_training_child_a_killed_rapp_left_and_nothing_else(
    settings: RappSettings, redis_url: str
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    left = subprocess.Popen([*sleep, str(settings.work_dir / "job-left" / "data")], start_new_session=True)
    other = subprocess.Popen([*sleep, "unrelated"], start_new_session=True)
    try:
        redis = aioredis.Redis.from_url(redis_url)
        records = {job_id: json.dumps({"id": job_id, "kind": "train", "reason": "r", "state": "running",
                                       "created": time.time(), "log": [], "outcome": {}, "child_pid": pid})
                   for job_id, pid in (("job-left", left.pid), ("job-other", other.pid))}  # fmt: skip
        await redis.hset(sdl_keys(prefix).rapp_jobs, mapping=records)
        await redis.aclose()
        rapp = Rapp(settings, prefix)
        try:
            await until(lambda: len(rapp.service.jobs.jobs) == 2, "the stored jobs restored")
            await until(lambda: left.poll() is not None, "the left child stopped")
            assert other.poll() is None, "a process that is not the job's child is left alone"
            assert {job.state for job in rapp.service.jobs.jobs.values()} == {"failed"}
        finally:
            await rapp.stop()
    finally:
        for process in (left, other):
            process.kill()
            process.wait()
