"""The whole Non-RT loop on loopback: the xApp forwards KPMs, the rApp collects them, retrains, promotes,
names the new version over A1, the xApp swaps it in and reports it enforced; then a rollback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly.redis_process import free_port
from rapp.app import RappService
from rapp.history import read_history
from rapp.settings import RappSettings
from tests.auth_helpers import app_key
from tests.test_xapp_service import FAST_MS, model_folder, start_xapp, until
from xapp.datalayer.redis import RedisDataLayer


async def wait_job(call: Callable[[str], Awaitable[httpx.Response]], job_id: str, timeout_s: float) -> dict:
    """Poll a job until it is finished."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job = (await call(f"/api/v1/jobs/{job_id}")).json()
        if job["state"] not in ("queued", "running"):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job still {job['state']}: {job['log']}"
        await asyncio.sleep(0.3)


async def test_retrain_promote_push_and_the_xapp_scores_the_new_version_then_rollback(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    sim = SimServer(World(WorldConfig(seed=5, n_cells=9)), StreamOptions(realtime=True))
    sim_port = await sim.start("127.0.0.1", 0)
    a1_port = free_port()
    trivial = model_folder(tmp_path, "t1", FAST_MS)
    xapp = await start_xapp(RedisDataLayer(redis_url, prefix=prefix), [f"127.0.0.1:{sim_port}"], trivial, FAST_MS,
                            a1_port=a1_port, model_shadow_periods=3)  # fmt: skip
    settings = RappSettings(
        redis_url=redis_url, http_host="127.0.0.1", port=0, a1_base_url=f"http://127.0.0.1:{a1_port}",
        history_dir=tmp_path / "history", work_dir=tmp_path / "work", collect_block_ms=100,
        promote_tolerance=1e9, enforce_timeout_s=60, train_forecaster=False,
    )  # fmt: skip
    rapp = RappService(settings, prefix=prefix)
    rapp_task = asyncio.create_task(rapp.run())
    try:
        await rapp.started.wait()
        base = f"http://127.0.0.1:{rapp.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=app_key(settings)) as client:

            async def get(path: str) -> httpx.Response:
                return await client.get(path)

            def periods_collected() -> int:
                try:
                    return int(read_history(settings.history_dir)["timestamp"].nunique())
                except (FileNotFoundError, ValueError, KeyError):
                    return 0

            await until(lambda: periods_collected() >= 120, timeout_s=60, what="120 periods of history")
            assert (await client.post("/api/v1/jobs/training", content=b"{nope")).status_code == 400
            started = await client.post("/api/v1/jobs/training", json={"reason": "test"})
            assert started.status_code == 202
            job = await wait_job(get, started.json()["id"], timeout_s=120)
            assert job["state"] == "succeeded", job["log"]
            version = job["outcome"]["version"]
            assert version == job["outcome"]["candidate"] and job["outcome"]["enforced"] is True
            engine = xapp.service.engine
            assert engine is not None and engine.model.version == version, "the xApp scores the new version"
            assert (await client.get("/api/v1/models")).json()["promoted"] == ["t1", version]

            assert (await client.post("/api/v1/models/nope/rollback")).status_code == 404
            back = await client.post("/api/v1/models/t1/rollback", json={"reason": "test rollback"})
            assert back.status_code == 202
            rolled = await wait_job(get, back.json()["id"], timeout_s=60)
            assert rolled["state"] == "succeeded", rolled["log"]
            assert engine.model.version == "t1"
            assert await xapp.service.trust.newest() == (2, "t1"), "the rollback is a newer signed promotion"
    finally:
        rapp.stop()
        await asyncio.wait_for(rapp_task, 30)
        await xapp.stop()
        await sim.stop(0)
