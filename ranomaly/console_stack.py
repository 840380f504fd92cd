"""`make console` / `ranomaly console`: the demo's stack (a private redis-server, e2sim, the xApp and the
rApp) with the operator console, kept up until Ctrl-C or SIGTERM.

The simulator streams `hours` of the network as fast as the xApp reads them (after the demo's cached model is
trained on the days before), the rApp collects them, then the simulator stops and the console shows the
network as of the last simulated period. `--screenshots DIR` instead signs in once in headless chromium
(Playwright, the dev extra), writes a screenshot of each page into DIR and stops. Every process it started
is stopped either way."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

import pandas as pd

from e2sim.server import SimServer, StreamOptions
from e2sim.world import DEFAULT_START, World, WorldConfig
from models.signing import ensure_key_pair, load_signing_key, sign_folder
from ranomaly.demo import (
    PERIOD_MS,
    REDIS_START_S,
    TRAIN_DAYS,
    Waits,
    collected_periods,
    rapp_settings,
    run_guarded,
    stop_part,
    trained_model,
)
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.dataset import LABELS_CSV, write_labels
from rapp.app import RappService
from rapp.history import read_history
from xapp.app import XappService
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings


async def run_console(cells: int, hours: float, seed: int, work: Path, port: int, model_summaries: bool,
                      screenshots: Path | None, timeout_s: float) -> int:  # fmt: skip
    """Serve the console over a simulated network until interrupted (or until the screenshots are written)."""

    def body(waits: Waits) -> Awaitable[int]:
        return _console(cells, hours, seed, work, port, model_summaries, screenshots, waits)

    return await run_guarded("console", body, timeout_s)


async def _console(cells: int, hours: float, seed: int, work: Path, port: int, model_summaries: bool,
                   screenshots: Path | None, waits: Waits) -> int:  # fmt: skip
    model = await trained_model(cells, seed, work, waits)
    periods = max(1, int(hours * 3_600_000) // PERIOD_MS)
    start = DEFAULT_START + timedelta(days=TRAIN_DAYS)
    world = World(WorldConfig(seed=seed, n_cells=cells, start=start))
    async with contextlib.AsyncExitStack() as parts:  # stopped in reverse order, however it ends
        redis = RedisServer(Path(tempfile.mkdtemp(prefix="ranomaly-console-redis-")))
        redis.start(REDIS_START_S)
        parts.callback(redis.stop)
        server = SimServer(world, StreamOptions(realtime=False, span=periods))
        sim_port = await server.start("127.0.0.1", 0)
        parts.push_async_callback(server.stop, 0)
        a1_port = free_port()
        private, public = ensure_key_pair(work / "console-signing")  # the rApp signs with it, the xApp trusts it
        sign_folder(load_signing_key(private), model, 0)  # the seed model, at promotion counter 0
        settings = XappSettings(
            e2_targets=[f"127.0.0.1:{sim_port}"], http_host="127.0.0.1", a1_port=a1_port, seed_model_dir=model,
            period_ms=PERIOD_MS, reconnect_min_s=0.5, reconnect_max_s=30.0, state_dir=work / "xapp-state",
            trusted_model_keys=[public],
        )  # fmt: skip
        datalayer = RedisDataLayer(redis.url)
        xapp = XappService(settings, datalayer)
        base = rapp_settings(redis.url, a1_port, settings.state_dir / "api-key", work / "console-run", model_summaries,
                             waits.timeout_s)  # fmt: skip
        truth = _truth_labels(world, periods, work / "console-truth")
        console = {"port": port, "console_xapp_url": f"http://127.0.0.1:{a1_port}", "model_signing_key_file": private,
                   "console_truth_labels": truth}  # fmt: skip
        rapp = RappService(base.model_copy(update=console))
        for name, part in (("the xApp", xapp), ("the rApp", rapp)):
            waits.watched[name] = asyncio.create_task(part.run(), name=name)
            parts.push_async_callback(stop_part, part.stop, waits.watched[name], waits)
        await waits.result("the rApp to listen", rapp.started.wait())
        waits.say(f"streaming {hours:g} simulated hours of {cells} cells through the xApp to the rApp ...")
        collected = 0

        def all_collected() -> bool:
            nonlocal collected
            collected = collected_periods(rapp)
            return collected >= periods

        await waits.until(f"the rApp to collect {periods} periods", all_collected, lambda: f"{collected} collected",
                          poll_s=1.0)  # fmt: skip
        await server.stop(0)  # the hours are in: the network stays as of its last period (the xApp says so)
        # The rApp collects what the xApp forwards as it takes it in; its verdicts and cells' states follow once
        # it has scored every period it took in (the pages show those).
        newest_ms = int(read_history(rapp.settings.history_dir)["timestamp"].max().value // 1_000_000)

        def scored_up_to() -> int:
            return 0 if xapp.engine is None or xapp.engine.pending_rows else xapp.engine.intake.watermark_ms

        await waits.until("the xApp to score every period the rApp collected", lambda: scored_up_to() >= newest_ms,
                          lambda: f"scored up to {pd.Timestamp(scored_up_to(), unit='ms', tz='UTC')}",
                          poll_s=0.5)  # fmt: skip
        await datalayer.flush()
        url = f"http://127.0.0.1:{rapp.http_port}/console"
        key = rapp.settings.work_dir / "api-key"
        if screenshots is not None:
            from ranomaly.console_shots import take_screenshots

            written = await asyncio.to_thread(take_screenshots, url, key.read_text().strip(), screenshots)
            waits.say("screenshots: " + ", ".join(str(path) for path in written))
            return 0
        waits.say(f"\nconsole: {url}\nsign in with your name and the rApp's API key: cat {key}\nCtrl-C stops it all.")
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM cancels it
    return 0


def _truth_labels(world: World, periods: int, folder: Path) -> Path:
    """The simulator's labels of the streamed periods as a labels.csv, shown beside the incidents."""
    first = world.stream_start(PERIOD_MS, 0, realtime=False).first_period
    labels = world.labels(first * PERIOD_MS, (first + periods) * PERIOD_MS, PERIOD_MS)
    frame = pd.DataFrame({"node_id": [lb.node_id for lb in labels], "cell_id": [lb.cell_id for lb in labels],
                          "kind": [lb.kind for lb in labels],
                          "start": pd.to_datetime([lb.first_ms for lb in labels], unit="ms", utc=True),
                          "end": pd.to_datetime([lb.last_ms for lb in labels], unit="ms", utc=True)})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    write_labels(folder, frame)
    return folder / LABELS_CSV
