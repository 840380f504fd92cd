"""`ranomaly bench console`: the operator console's page times in Debian's chromium (Playwright), against a real
rApp and a private redis-server seeded with a large network: the network view's first paint, the network view
of `cells` cells fully drawn, and an incident page with 24 h of 12 measurements at 60 s with its plots drawn.
Targets (issue 23, on an otherwise idle machine): 1 s, 2 s, 1 s. Each figure is the median of `runs` loads."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import redis
from playwright.sync_api import Page, expect, sync_playwright

from e2sim.world import World, WorldConfig
from models.trivial import trivial_artifact
from ranomaly.console_shots import ARGS, sign_in
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.sdl import Attribution, CellState, CellStatus, IncidentEvent, encode_cell_state, sdl_keys
from rapp.app import RappService
from rapp.history import HistoryStore, KpmRows
from rapp.settings import RappSettings

PERIOD_MS = 60_000
T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC
HOURS = 24  # of the incident cell's history before its incident's last period
MEASUREMENTS = 12
MODEL = "bench-console"
TARGETS_S = {"first_paint_s": 1.0, "network_view_s": 2.0, "incident_page_s": 1.0}
CELLS_PER_NODE = 20
WAIT_MS = 120_000


def _seed(client: redis.Redis, prefix: str, history: Path, cells: int) -> tuple[str, int]:
    """Every cell's state (a few anomalous), the model's manifest, one cell's 24 h of 12 measurements and its
    incident attributed to all of them; the incident's id and the number of plotted measurements."""
    names = tuple(m.name for m in World(WorldConfig(seed=1, n_cells=1)).measurements[:MEASUREMENTS])
    periods = HOURS * 60
    newest = T0 + (periods - 1) * PERIOD_MS
    keys = sdl_keys(prefix)
    states = {}
    for n in range(cells):
        cell, node = f"bench-n{n // CELLS_PER_NODE:04d}-c{n % CELLS_PER_NODE:02d}", f"bench-n{n // CELLS_PER_NODE:04d}"
        status = CellStatus.ANOMALOUS if n % 97 == 0 else CellStatus.NORMAL
        states[cell] = encode_cell_state(CellState(cell, node, newest, 1.0, status, MODEL, None))
    for start in range(0, cells, 1000):
        client.hset(keys.cells, mapping=dict(list(states.items())[start : start + 1000]))
    fields, onnx = trivial_artifact(names, PERIOD_MS / 1000, version=MODEL)
    client.hset(keys.models_manifest, MODEL, json.dumps(fields))
    client.hset(keys.models_onnx, MODEL, onnx)
    cell, node = "bench-n0000-c00", "bench-n0000"
    rng = np.random.default_rng(7)
    values = 50 + rng.normal(0, 5, (periods, len(names)))
    opened = periods - 120  # the incident's two last hours
    values[opened:] += 40
    store = HistoryStore(history)
    times = T0 + np.arange(periods, dtype=np.int64) * PERIOD_MS
    store.write_kpm(["1-0"], [KpmRows(names, times, [node] * periods, [cell] * periods, values,
                                      frozenset({PERIOD_MS}))])  # fmt: skip
    parts = tuple(Attribution(name, 1 / len(names), 5.0) for name in names)
    incident = f"{cell}:{T0 + opened * PERIOD_MS}"
    event = IncidentEvent(event="update", incident_id=incident, cell_id=cell, node_id=node,
                          opened_ms=T0 + opened * PERIOD_MS, period_start_ms=newest, score=9.0, peak_score=9.5,
                          attribution=parts, model_version=MODEL)  # fmt: skip
    store.write_incidents(["2-0"], [event])
    return incident, len(names)


@contextmanager
def _rapp(redis_url: str, prefix: str, work: Path) -> Iterator[tuple[str, str]]:
    """An rApp serving the seeded data layer and history on a thread of its own: its console URL and API key."""
    config = RappSettings(redis_url=redis_url, http_host="127.0.0.1", port=0, history_dir=work / "history",
                          work_dir=work / "rapp", a1_base_url=f"http://127.0.0.1:{free_port()}", a1_retries=0,
                          train_forecaster=False, report_summaries=False, console_refresh_s=3600.0)  # fmt: skip
    service = RappService(config, prefix=prefix)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(service.run(),), name="rapp", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not service.started.is_set():
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the rApp did not start")
        time.sleep(0.05)
    try:
        key = (config.work_dir / "api-key").read_text().strip()
        yield f"http://127.0.0.1:{service.http_port}/console", key
    finally:
        loop.call_soon_threadsafe(service.stop)
        thread.join(60)
        loop.close()


def _timed(page: Page, url: str, ready: Callable[[Page], None]) -> tuple[float, float | None]:
    """Seconds from navigation to `ready` holding, and the page's first contentful paint (s) when reported."""
    began = time.perf_counter()
    page.goto(url, wait_until="commit")
    ready(page)
    took = time.perf_counter() - began
    paint = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint').map(e => e.startTime / 1000)[0] ?? null"
    )
    return took, paint


def run_console_bench(cells: int = 10_000, runs: int = 3) -> dict[str, Any]:
    """The figures (seconds, medians of `runs`) with the targets and the network's size."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("Debian's chromium is not installed (make installs it)")
    scratch = Path(tempfile.mkdtemp(prefix="ranomaly-bench-console-"))
    (scratch / "redis").mkdir()
    server = RedisServer(scratch / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        incident, plotted = _seed(client, "bench", scratch / "history", cells)
        client.close()
        with _rapp(server.url, "bench", scratch) as (url, key), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            sign_in(page, url, "bench", key)

            def network(p: Page) -> None:
                expect(p.locator("#nodes [data-cell]")).to_have_count(cells, timeout=WAIT_MS)

            def incident_page(p: Page) -> None:
                expect(p.locator("#plots")).to_have_attribute("data-drawn", str(plotted), timeout=WAIT_MS)

            views = [_timed(page, url, network) for _ in range(runs)]
            pages = [_timed(page, f"{url}/incidents/{incident}", incident_page) for _ in range(runs)]
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    paints = [paint for _, paint in views if paint is not None]
    return {
        "cells": cells,
        "runs": runs,
        "first_paint_s": statistics.median(paints) if paints else None,
        "network_view_s": statistics.median(took for took, _ in views),
        "incident_page_s": statistics.median(took for took, _ in pages),
        "incident_points": HOURS * 60 * plotted,
        "targets_s": TARGETS_S,
    }


def format_figures(figures: dict[str, Any]) -> str:
    """The figures as the bench prints them."""
    rows = [
        ("first paint (network view)", "first_paint_s"),
        (f"network view of {figures['cells']:,} cells drawn", "network_view_s"),
        (f"incident page, {HOURS} h x {MEASUREMENTS} measurements at 60 s, plots drawn", "incident_page_s"),
    ]
    lines = [f"console pages in chromium (median of {figures['runs']} loads; targets on an idle machine)"]
    for label, key in rows:
        value, target = figures[key], TARGETS_S[key]
        shown = "n/a" if value is None else f"{value:.2f} s"
        verdict = "" if value is None else ("within" if value <= target else "OVER")
        lines.append(f"  {label:<72} {shown:>8}  target {target:g} s {verdict}")
    return "\n".join(lines)
