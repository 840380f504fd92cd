"""`make demo` / `ranomaly demo`: simulator, xApp and the model end to end, against ground truth.

1. The detector is trained on the simulated network's days before the demo window (in a subprocess,
   `ranomaly sim export` then `ranomaly train`, so this process stays torch-free like the xApp; the
   artifact is cached in .demo/ and reused).
2. e2sim serves the next `hours` of the network over gRPC on loopback, as fast as it is read.
3. The xApp (in-memory data layer, model seeded into its registry) subscribes, scores every cell every
   period and opens and closes incidents; a live view prints each incident beside the labels it
   overlaps, which come from the simulator's GroundTruth service.
4. At the end: incident precision (incidents overlapping a labelled anomaly of their cell), event recall
   per kind (labels overlapped by an incident), and what the xApp counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import grpc
from prometheus_client import Counter as Counter_

from e2sim.server import SimServer, StreamOptions
from e2sim.world import DEFAULT_START, World, WorldConfig
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2 as gt
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2_grpc as gt_grpc
from ranomaly_contracts.sdl import IncidentEvent
from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.settings import XappSettings

PERIOD_MS = 60_000
TRAIN_DAYS = 3


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


async def run_demo(cells: int, hours: float, seed: int, work: Path) -> int:
    """Stream `hours` of a `cells`-cell network through the xApp; 0 when it ran clean."""
    model = _trained_model(cells, seed, work)
    periods = max(1, int(hours * 3_600_000) // PERIOD_MS)
    start = DEFAULT_START + timedelta(days=TRAIN_DAYS)
    first_ms = int(start.timestamp() * 1000)
    end_ms = first_ms + (periods - 1) * PERIOD_MS
    world = World(WorldConfig(seed=seed, n_cells=cells, start=start))
    server = SimServer(world, StreamOptions(realtime=False, periods=periods))
    port = await server.start("127.0.0.1", 0)
    datalayer = MemoryDataLayer()
    settings = XappSettings(
        e2_targets=[f"127.0.0.1:{port}"], http_host="127.0.0.1", a1_port=0, seed_model_dir=model,
        period_ms=PERIOD_MS, reconnect_max_s=1.0,
    )  # fmt: skip
    service = XappService(settings, datalayer)
    began = time.perf_counter()
    xapp = asyncio.create_task(service.run())
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
    finally:
        service.stop()
        await xapp
        await server.stop()
    return _summary(service, events, labels, end_ms, time.perf_counter() - began)


async def _live_view(
    service: XappService, datalayer: MemoryDataLayer, labels: list[gt.Anomaly], end_ms: int
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
