"""A seeded network for the console's tests: eight hours of KPM history of five cells on two nodes at 60 s,
two incidents recorded as the collector records them, every cell's latest state as the xApp writes it, and the
scoring model's manifest in the registry; an rApp serving it, run on a thread of its own; and a real Near-RT
side for it (e2sim streaming in real time to an xApp on the same data layer), on another thread."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import redis

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from models.trivial import trivial_artifact
from ranomaly.redis_process import free_port
from ranomaly_contracts.sdl import Attribution, CellState, CellStatus, IncidentEvent, encode_cell_state, sdl_keys
from rapp.app import RappService
from rapp.history import HistoryStore, KpmRows
from rapp.settings import RappSettings
from tests.test_xapp_service import model_folder
from xapp.app import XappService
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC
P = 60_000
PERIODS = 480  # 8 h
MEASUREMENTS = ("DRB.UEThpDl", "RRU.PrbUsedDl", "L1M.DL-SS-SINR.SSB")
CELLS = {"n1-c1": "n1", "n1-c2": "n1", "n1-c3": "n1", "n2-c1": "n2", "n2-c2": "n2"}
MODEL = "v-console"
OPEN_CELL, OPEN_FROM, OPEN_LAST = "n1-c2", 420, 470  # throughput 100 -> 30, PRB 50 -> 80, still open
CLOSED_CELL, CLOSED_FROM, CLOSED_TO = "n2-c1", 200, 230  # SINR 12 -> 2, closed
OPEN_ID = f"{OPEN_CELL}:{T0 + OPEN_FROM * P}"
CLOSED_ID = f"{CLOSED_CELL}:{T0 + CLOSED_FROM * P}"
PLOT_BEFORE_H = 6.0
# periods of the open incident's plot: six hours before it opened to the newest row (its last period + 1 h is later)
PLOT_POINTS = PERIODS - (OPEN_FROM - int(PLOT_BEFORE_H * 60))


def _values(cell: str, period: int, rng: np.random.Generator) -> list[float]:
    thp, prb, sinr = 100.0 + rng.normal(0, 3), 50.0 + rng.normal(0, 2), 12.0 + rng.normal(0, 0.5)
    if cell == OPEN_CELL and period >= OPEN_FROM:
        thp, prb = 30.0 + rng.normal(0, 3), 80.0 + rng.normal(0, 2)
    if cell == CLOSED_CELL and CLOSED_FROM <= period <= CLOSED_TO:
        sinr = 2.0 + rng.normal(0, 0.5)
    return [thp, prb, sinr]


def _event(kind: str, cell: str, opened: int, period: int, parts: tuple[Attribution, ...],
           closed: int | None = None) -> IncidentEvent:  # fmt: skip
    return IncidentEvent(event=kind, incident_id=f"{cell}:{T0 + opened * P}", cell_id=cell, node_id=CELLS[cell],
                         opened_ms=T0 + opened * P, period_start_ms=T0 + period * P, score=8.0, peak_score=9.5,
                         attribution=parts, model_version=MODEL, closed_ms=None if closed is None else T0 + closed * P,
                         reason="recovered" if kind == "close" else "")  # fmt: skip


def seed_history(root: Path) -> None:
    """The KPM history and the two incidents' events, written as the collector writes them."""
    rng = np.random.default_rng(5)
    cells = list(CELLS)
    values = np.array([_values(cell, p, rng) for p in range(PERIODS) for cell in cells])
    times = np.repeat(T0 + np.arange(PERIODS) * P, len(cells))
    rows = KpmRows(MEASUREMENTS, times, [CELLS[c] for c in cells] * PERIODS, cells * PERIODS, values,
                   frozenset({P}))  # fmt: skip
    store = HistoryStore(root)
    store.write_kpm(["1-0"], [rows])
    thp = (Attribution("DRB.UEThpDl", 0.6, 5.0), Attribution("RRU.PrbUsedDl", 0.4, 3.0))
    sinr = (Attribution("L1M.DL-SS-SINR.SSB", 1.0, 7.0),)
    store.write_incidents(["2-0", "2-1"], [_event("open", OPEN_CELL, OPEN_FROM, OPEN_FROM + 2, thp[:1]),
                                           _event("update", OPEN_CELL, OPEN_FROM, OPEN_LAST, thp)])  # fmt: skip
    store.write_incidents(["3-0", "3-1"], [_event("open", CLOSED_CELL, CLOSED_FROM, CLOSED_FROM + 2, sinr),
                                           _event("close", CLOSED_CELL, CLOSED_FROM, CLOSED_TO + 3, (),
                                                  closed=CLOSED_TO)])  # fmt: skip


def cell_state(cell: str, status: CellStatus, incident: str | None = None) -> bytes:
    """A cell's latest state at the newest period, as the xApp writes it."""
    return encode_cell_state(CellState(cell, CELLS[cell], T0 + (PERIODS - 1) * P, 1.0, status, MODEL, incident))


def seed_data_layer(client: redis.Redis, prefix: str) -> None:
    """Every cell's latest state (n1-c2 anomalous in the open incident, n1-c3 silenced, n2-c2 warming up) and
    the model's manifest and ONNX bytes in the registry."""
    keys = sdl_keys(prefix)
    states = {cell: cell_state(cell, CellStatus.NORMAL) for cell in CELLS}
    states[OPEN_CELL] = cell_state(OPEN_CELL, CellStatus.ANOMALOUS, OPEN_ID)
    states["n1-c3"] = cell_state("n1-c3", CellStatus.SILENCED)
    states["n2-c2"] = cell_state("n2-c2", CellStatus.WARMING_UP)
    client.hset(keys.cells, mapping=states)  # type: ignore[arg-type]
    fields, onnx = trivial_artifact(MEASUREMENTS, P / 1000, version=MODEL)
    client.hset(keys.models_manifest, MODEL, json.dumps(fields))
    client.hset(keys.models_onnx, MODEL, onnx)


class Running(NamedTuple):
    """A running rApp: the service, its base URL, its data layer's key prefix, its API key's file, its loop."""

    service: RappService
    base: str
    prefix: str
    api_key: Path
    loop: asyncio.AbstractEventLoop


class NearRt(NamedTuple):
    """A running xApp fed by e2sim: its A1-P base URL, its nodes and cells, and how to reach it."""

    a1_url: str
    nodes: dict[str, list[str]]  # node -> its cells
    xapp: XappService
    loop: asyncio.AbstractEventLoop


NEAR_RT_PERIOD_MS = 100  # e2sim's periods in real time: the xApp scores ten periods a second


@contextmanager
def running_near_rt(redis_url: str, prefix: str, folder: Path, cells: int = 6) -> Iterator[NearRt]:
    """e2sim (real time) and an xApp scoring its stream into the data layer under `prefix` (the trivial model,
    signed with the tests' key), on a thread with its own event loop."""
    world = World(WorldConfig(seed=5, n_cells=cells))
    model = model_folder(folder, "near-rt-1", NEAR_RT_PERIOD_MS)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="near-rt", daemon=True)
    thread.start()

    async def start() -> tuple[SimServer, XappService, asyncio.Task[None]]:
        sim = SimServer(world, StreamOptions(realtime=True))  # gRPC's server belongs to the loop it is made on
        bound = await sim.start("127.0.0.1", 0)
        settings = XappSettings(e2_targets=[f"127.0.0.1:{bound}"], http_host="127.0.0.1", a1_port=0,
                                period_ms=NEAR_RT_PERIOD_MS, seed_model_dir=model, model_poll_s=0.2,
                                reconnect_min_s=0.05, reconnect_max_s=0.2)  # fmt: skip
        service = XappService(settings, RedisDataLayer(redis_url, prefix=prefix))
        task = asyncio.create_task(service.run())
        await service.started.wait()
        return sim, service, task

    sim, service, task = asyncio.run_coroutine_threadsafe(start(), loop).result(120)
    nodes: dict[str, list[str]] = {}
    for cell, node in zip(world.cell_ids, world.topology.cell_node, strict=True):
        nodes.setdefault(world.node_ids[int(node)], []).append(cell)
    try:
        yield NearRt(f"http://127.0.0.1:{service.http_port}", nodes, service, loop)
    finally:

        async def stop() -> None:
            service.stop()
            await asyncio.wait_for(task, 60)
            await sim.stop(0)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(90)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@contextmanager
def running_rapp(redis_url: str, folder: Path, prefix: str | None = None, **settings: object) -> Iterator[Running]:
    """An rApp over a freshly seeded history and data layer (under `prefix`, else a new one), on a thread with
    its own event loop; `settings` override the defaults."""
    prefix = prefix or f"t{uuid.uuid4().hex[:12]}"
    seed_history(folder / "history")
    client = redis.Redis.from_url(redis_url)
    seed_data_layer(client, prefix)
    client.close()
    fields: dict[str, object] = {
        "redis_url": redis_url, "http_host": "127.0.0.1", "port": 0, "history_dir": folder / "history",
        "work_dir": folder / "work", "a1_base_url": f"http://127.0.0.1:{free_port()}", "a1_retries": 0,
        "collect_block_ms": 50, "train_forecaster": False, "report_summaries": False,
        "console_plot_before_h": PLOT_BEFORE_H,
    }  # fmt: skip
    config = RappSettings(**(fields | settings))  # type: ignore[arg-type]
    service = RappService(config, prefix=prefix)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(service.run(),), name="rapp", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not service.started.is_set():
        assert thread.is_alive() and time.monotonic() < deadline, "the rApp did not start"
        time.sleep(0.02)
    try:
        yield Running(service, f"http://127.0.0.1:{service.http_port}", prefix, config.work_dir / "api-key", loop)
    finally:
        loop.call_soon_threadsafe(service.stop)
        thread.join(60)
        loop.close()
