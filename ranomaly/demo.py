"""`make demo` / `ranomaly demo`: simulator, xApp and rApp end to end, against ground truth.

1. The detector is trained on the simulated network's days before the demo window (in a subprocess,
   `ranomaly sim export` then `ranomaly train`; the artifact is cached in .demo/ and reused).
2. A private redis-server is the shared data layer. e2sim serves the next `hours` over gRPC on loopback, as
   fast as it is read; the xApp subscribes, scores every cell every period and opens and closes incidents;
   a live view prints each incident beside the labels it overlaps (from the simulator's GroundTruth service).
   It ends with incident precision and event recall per kind.
3. The rApp collects what the xApp forwarded, retrains on it, judges the candidate against the scoring
   model, promotes it and names it in the `ranomaly-model` A1 policy; the xApp stages it, the next simulated
   day streams, the xApp swaps it in and reports it enforced. Last, the rApp writes a report on one incident.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
from prometheus_client import Counter as Counter_

from e2sim.server import SimServer, StreamOptions
from e2sim.world import DEFAULT_START, World, WorldConfig
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2 as gt
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2_grpc as gt_grpc
from ranomaly_contracts.sdl import IncidentEvent
from rapp.app import RappService
from rapp.history import read_history
from rapp.settings import RappSettings
from xapp.app import XappService
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings

PERIOD_MS = 60_000
TRAIN_DAYS = 3
# A day of history is little to train and judge on: a candidate trained on it alarms about twice as often on
# quiet cell-periods as the model trained on three days (measured: 2.0x to 2.3x on the test's 24 cells x 12 h).
# The demo promotes one that alarms at most three times as often (the rApp's default allows 25 % more).
DEMO_PROMOTE_TOLERANCE = 2.0


def _clock(ms: int) -> str:
    return time.strftime("%a %H:%M", time.gmtime(ms / 1000))


def _trained_model(cells: int, seed: int, work: Path) -> Path:
    """The artifact folder of a detector trained on the TRAIN_DAYS before the demo window (cached in work)."""
    folder = work / f"seed{seed}-cells{cells}"
    model = folder / "model"
    if (model / "manifest.json").exists():
        print(f"model: {model} (cached; `make clean` retrains)")
        return model
    print(f"training the detector on {TRAIN_DAYS} simulated days of {cells} cells (about half a minute) ...")
    base = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING"]
    start = DEFAULT_START.isoformat()
    export = ["sim", "export", "--seed", str(seed), "--cells", str(cells), "--days", str(TRAIN_DAYS),
              "--start", start, "--format", "parquet", "--out", str(folder / "data")]  # fmt: skip
    subprocess.run([*base, *export], check=True, stdout=subprocess.DEVNULL)
    train = ["train", "--data", str(folder / "data"), "--out", str(model), "--no-forecaster"]
    subprocess.run([*base, *train], check=True)
    return model


def _overlaps(event: IncidentEvent, label: gt.Anomaly, end_ms: int) -> bool:
    closed = event.closed_ms if event.closed_ms is not None else end_ms
    return event.cell_id == label.cell_id and event.opened_ms <= label.last_ms and label.first_ms <= closed


async def run_demo(cells: int, hours: float, seed: int, work: Path, model_summaries: bool = True) -> int:
    """Stream `hours` of a `cells`-cell network through the xApp, then let the rApp close the loop; 0 when clean."""
    model = _trained_model(cells, seed, work)
    periods = max(1, int(hours * 3_600_000) // PERIOD_MS)
    start = DEFAULT_START + timedelta(days=TRAIN_DAYS)
    first_ms = int(start.timestamp() * 1000)
    end_ms = first_ms + (periods - 1) * PERIOD_MS
    world = World(WorldConfig(seed=seed, n_cells=cells, start=start))
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="ranomaly-demo-redis-")))
    redis.start()
    server = SimServer(world, StreamOptions(realtime=False, periods=periods))
    port = await server.start("127.0.0.1", 0)
    datalayer = RedisDataLayer(redis.url)
    a1_port = free_port()
    settings = XappSettings(
        e2_targets=[f"127.0.0.1:{port}"], http_host="127.0.0.1", a1_port=a1_port, seed_model_dir=model,
        period_ms=PERIOD_MS, reconnect_min_s=0.1, reconnect_max_s=0.5, model_poll_s=0.5,
    )  # fmt: skip
    service = XappService(settings, datalayer)
    rapp = RappService(_rapp_settings(redis.url, a1_port, work / "rapp-run", model_summaries))
    began = time.perf_counter()
    xapp = asyncio.create_task(service.run())
    rapp_task = asyncio.create_task(rapp.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            truth = await gt_grpc.GroundTruthStub(channel).ListAnomalies(
                gt.ListAnomaliesRequest(start_ms=first_ms, end_ms=end_ms, reporting_period_ms=PERIOD_MS)
            )
        labels = list(truth.anomalies)
        await service.scoring.wait()
        assert service.engine is not None
        print(
            f"e2sim 127.0.0.1:{port}: {len(world.node_ids)} E2 nodes, {cells} cells, {hours:g} simulated hours from "
            f"{start:%a %d %b}; xApp A1-P/health on 127.0.0.1:{service.http_port}, model {service.engine.model.version}"
        )
        print(f"ground truth: {len(labels)} labelled anomalies; live incidents (+ open, - close):")
        events = await _live_view(service, datalayer, labels, end_ms)
        seconds = time.perf_counter() - began
        await server.stop(0)  # day one is over; the xApp keeps trying to reconnect
        code = _summary(service, events, labels, end_ms, seconds)
        closed = [e for e in events if e.event == "close"]
        code |= await close_the_loop(service, rapp, world, port, periods, closed[0].incident_id if closed else None)
    finally:
        service.stop()
        rapp.stop()
        await xapp
        await rapp_task
        await server.stop(0)
        redis.stop()
    return code


def _rapp_settings(redis_url: str, a1_port: int, folder: Path, model_summaries: bool) -> RappSettings:
    shutil.rmtree(folder, ignore_errors=True)  # the demo's Redis is new too: history starts empty
    return RappSettings(
        http_host="127.0.0.1", port=0, redis_url=redis_url, a1_base_url=f"http://127.0.0.1:{a1_port}",
        history_dir=folder / "history", work_dir=folder / "work", collect_block_ms=100, train_forecaster=False,
        report_summaries=model_summaries, report_model_cache=folder.parent / "report-model",
        enforce_timeout_s=300, promote_tolerance=DEMO_PROMOTE_TOLERANCE,
    )  # fmt: skip


async def close_the_loop(
    service: XappService, rapp: RappService, world: World, port: int, periods: int, incident_id: str | None
) -> int:
    """The Non-RT half: collect, retrain, push through A1, the xApp swaps the model in, one report."""
    engine = service.engine
    assert engine is not None
    print("\nrApp: collecting what the xApp forwarded ...")
    await _until(lambda: _collected_periods(rapp) >= periods, 120)
    print(f"rApp: {_collected_periods(rapp):,} periods of KPM history collected; retraining on them (promoted if it "
          f"alarms at most {1 + DEMO_PROMOTE_TOLERANCE:g}x as often on quiet data) ...")  # fmt: skip
    job = rapp.jobs.submit_training("demo")
    await _until(lambda: engine.shadow is not None or job.state not in ("queued", "running"), 300)
    if engine.shadow is None:
        print(f"rApp: retraining ended {job.state}: {job.log[-1] if job.log else ''}")
        return 1
    for line in job.log[1:]:
        print(f"  {line}")
    print(f"xApp: {engine.shadow.version} staged beside {engine.model.version}; the next day streams ...")
    next_day = World(replace(world.config, start=world.config.start + timedelta(minutes=periods)))
    day_two = SimServer(next_day, StreamOptions(realtime=False, periods=120))
    await day_two.start("127.0.0.1", port)
    try:
        await _until(lambda: job.state not in ("queued", "running"), 300)
    finally:
        await day_two.stop(0)
    print(f"  {job.log[-1]}")
    if job.state != "succeeded":
        return 1
    print(f"xApp: scoring with {engine.model.version} (A1 policy ranomaly-model reads ENFORCED)")
    if incident_id is None:
        print("no closed incident to report on")
        return 0
    report = await rapp.reporter.incident(incident_id)
    print(f"\nrApp report on incident {incident_id}:\n")
    print(report.markdown())
    return 0


def _collected_periods(rapp: RappService) -> int:
    try:
        return int(read_history(rapp.settings.history_dir)["timestamp"].nunique())
    except (FileNotFoundError, ValueError, KeyError):
        return 0


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo waited {timeout_s:g} s in vain")
        await asyncio.sleep(0.2)


async def _live_view(
    service: XappService, datalayer: RedisDataLayer, labels: list[gt.Anomaly], end_ms: int
) -> list[IncidentEvent]:
    """Print incident events as they are written until the xApp has scored the last period."""
    engine = service.engine
    assert engine is not None
    events: list[IncidentEvent] = []
    last_id = "0"
    hour_shown = -1
    while True:
        await asyncio.sleep(0.2)
        done = engine.intake.watermark_ms >= end_ms and engine.batch.n == 0
        if done:
            await datalayer.flush()
        for entry_id, event in await datalayer.read_incidents(last_id):
            last_id = entry_id
            events.append(event)
            matched = [a.kind for a in labels if _overlaps(event, a, end_ms)]
            truth = f"label: {', '.join(sorted(set(matched)))}" if matched else "no label (false alarm)"
            if event.event == "open":
                top = ", ".join(f"{a.measurement} {a.share:.0%}" for a in event.attribution[:3])
                print(f"  {_clock(event.period_start_ms)} + {event.cell_id:12s} score {event.score:6.2f}  "
                      f"[{top}]  {truth}")  # fmt: skip
            elif event.event == "close":
                minutes = (event.period_start_ms - event.opened_ms) // PERIOD_MS
                print(f"  {_clock(event.period_start_ms)} - {event.cell_id:12s} after {minutes} min ({event.reason})")
        hour = (engine.intake.watermark_ms - (end_ms % 86_400_000)) // 3_600_000
        if hour > hour_shown and engine.intake.watermark_ms > 0 and hour % 6 == 0:
            hour_shown = hour
            now = _clock(engine.intake.watermark_ms)
            print(f"  {now}  {len(engine.table)} cells, {engine.scored_rows:,} cell-periods scored, "
                  f"{engine.incidents.open_count} incidents open")  # fmt: skip
        if done:
            return events


def _total(counter: Counter_) -> int:
    """Sum of a Prometheus counter over its labels."""
    return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


def _summary(
    service: XappService, events: list[IncidentEvent], labels: list[gt.Anomaly], end_ms: int, seconds: float
) -> int:
    engine = service.engine
    if engine is None:
        print(f"the xApp never scored: {service.model_problem}")
        return 1
    opened = [e for e in events if e.event == "open"]
    true = [e for e in opened if any(_overlaps(e, a, end_ms) for a in labels)]
    found = Counter(a.kind for a in labels if any(_overlaps(e, a, end_ms) for e in opened))
    total = Counter(a.kind for a in labels)
    metrics = engine.metrics
    print(
        f"\nxApp: {engine.scored_rows:,} cell-periods scored in {seconds:.1f} s by model {engine.model.version}; "
        f"{_total(metrics.indications):,} indications, sequence gaps {_total(metrics.sequence_gaps)}, "
        f"malformed {_total(metrics.decode_errors)}, late {_total(metrics.late_rows)}"
    )
    precision = len(true) / len(opened) if opened else 0.0
    recall = sum(found.values()) / max(sum(total.values()), 1)
    print(f"incidents: {len(opened)} opened; precision {precision:.2f} (incidents overlapping a labelled anomaly of "
          f"their cell), event recall {recall:.2f} (labelled anomalies overlapped by an incident)")  # fmt: skip
    print("recall per kind: " + ", ".join(f"{k} {found[k]}/{n}" for k, n in sorted(total.items())))
    clean = engine.scored_rows > 0 and _total(metrics.sequence_gaps) == 0 and _total(metrics.decode_errors) == 0
    return 0 if clean else 1
