"""The rApp's history stores each (cell, period) once, whatever the KPM stream repeats (a replayed E2 stream,
a resent entry), counted, and across a restart of the collector; and the rApp's error bodies and job
outcomes name the problem, never a server folder."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis

from ranomaly.redis_process import free_port
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import FIELD_DATA, encode_kpm, sdl_keys
from rapp.app import RappService
from rapp.collector import Collector
from rapp.history import KPM, read_history
from rapp.settings import RappSettings
from tests.auth_helpers import app_key
from tests.waiting import until
from tests.xapp_helpers import MEASUREMENTS, PERIOD_MS, T0, indication

MIDNIGHT = 1440  # the period index of the next UTC day


def period(p: int, offset: float = 0.0) -> list[pb.Indication]:
    """Two nodes of two cells each, for period index p; values tell copies apart by offset."""
    return [indication(f"n{n}", p, {f"n{n}-c{c}": [p + offset, n, c] for c in range(2)}) for n in range(2)]


async def send(client: aioredis.Redis, stream: str, periods: Sequence[int], offset: float = 0.0) -> None:
    """One KPM stream entry per period."""
    for p in periods:
        await client.xadd(stream, {FIELD_DATA: encode_kpm(MEASUREMENTS, period(p, offset))})


async def drain(collector: Collector) -> None:
    """Collect until a cycle that reads new entries finds none."""
    while True:
        reading_pending = any(collector._pending.values())
        if not (await collector.collect_once()).entries and not reading_pending:
            return


def raw_rows(root: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted((root / KPM).rglob("part-*.parquet"))],
                            promote_options="default")  # fmt: skip


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


async def test_a_replayed_stream_is_stored_once_counted_first_copies_kept_also_after_a_restart(
    redis_url: str, client: aioredis.Redis, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    stream = sdl_keys(prefix).kpm
    periods = [0, 1, 2, MIDNIGHT - 1, MIDNIGHT]  # two UTC days
    root = tmp_path / "history"
    first = Collector(redis_url, root, prefix=prefix, block_ms=0)
    try:
        await send(client, stream, periods)
        await drain(first)
        assert first.stats.totals.rows == 20 and first.stats.totals.duplicates == 0

        await send(client, stream, [*periods, MIDNIGHT + 1], offset=1000)  # the stream replayed, one period new
        await send(client, stream, [MIDNIGHT + 1, MIDNIGHT + 1], offset=2000)  # and resent, twice
        await drain(first)
        assert first.stats.totals.rows == 24 and first.stats.totals.duplicates == 20 + 8
    finally:
        await first.close()

    again = Collector(redis_url, root, prefix=prefix, block_ms=0)  # a new process: what is stored is on disk
    try:
        await send(client, stream, [0, MIDNIGHT, MIDNIGHT + 2], offset=3000)
        await drain(again)
        assert again.stats.totals.rows == 4 and again.stats.totals.duplicates == 8
    finally:
        await again.close()

    raw = raw_rows(root).to_pandas()
    assert len(raw) == 28 and not raw.duplicated(["cell_id", "timestamp"]).any()
    history = read_history(root)
    assert len(history) == 28
    index = (history["timestamp"].astype("int64") - T0) // PERIOD_MS
    first_offset = {**dict.fromkeys(periods, 0), MIDNIGHT + 1: 1000, MIDNIGHT + 2: 3000}
    assert (history["m.a"] - index).tolist() == [first_offset[p] for p in index], "the first copy of each stays"


async def test_duplicates_in_metrics_and_error_bodies_name_no_server_path(
    redis_url: str, client: aioredis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "srv" / "secret-folder"
    settings = RappSettings(redis_url=redis_url, http_host="127.0.0.1", port=0,
                            a1_base_url=f"http://127.0.0.1:{free_port()}", a1_retries=0, history_dir=secret / "history",
                            work_dir=secret / "work", collect_block_ms=50, train_forecaster=False)  # fmt: skip
    prefix = f"t{uuid.uuid4().hex[:12]}"
    rapp = RappService(settings, prefix=prefix)
    task = asyncio.create_task(rapp.run())
    try:
        await rapp.started.wait()
        base = f"http://127.0.0.1:{rapp.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=app_key(settings)) as http:

            async def call(method: str, path: str, **more: Any) -> httpx.Response:
                answer = await http.request(method, path, **more)
                assert "secret-folder" not in answer.text, f"{path} shows a server path: {answer.text}"
                return answer

            started = await call("POST", "/api/v1/jobs/training")  # no history yet: the job fails
            job_id = started.json()["id"]
            await until(lambda: rapp.jobs.jobs[job_id].state == "failed", "the job failed")
            failed = (await call("GET", f"/api/v1/jobs/{job_id}")).json()
            assert "no KPM history" in failed["outcome"]["error"]
            await call("GET", "/api/v1/jobs")
            await call("GET", f"/api/v1/jobs/{job_id}/log")
            await call("GET", "/healthz")

            async def broken() -> list[str]:
                raise FileNotFoundError(2, "No such file or directory", str(secret / "registry.db"))

            monkeypatch.setattr(rapp.registry, "promoted", broken)
            unexpected = await call("GET", "/api/v1/models")
            assert unexpected.status_code == 500 and "FileNotFoundError" in unexpected.json()["detail"]

            await send(client, sdl_keys(prefix).kpm, [0, 1, 0, 1, 1])
            await until(lambda: rapp.collector.stats.totals.entries == 5, "the stream collected")
            assert rapp.collector.stats.totals.rows == 8
            metrics = (await call("GET", "/metrics")).text
            assert "ranomaly_rapp_history_duplicates_total 12.0" in metrics
    finally:
        rapp.stop()
        await asyncio.wait_for(task, 30)
