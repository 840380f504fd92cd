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

Every wait is on state (a job's, the xApp's, the history's), never a fixed time: while it waits the demo
prints a line at least every `PROGRESS_S` seconds, terminal or not, saying what it waits for and for how long
so far. One overall bound (`--timeout-s`) ends it: it then names what it waited for and prints the tail of
that step's log. Every process it starts (the training commands in their own process group, redis-server,
the rApp's training children) is stopped on success, on failure, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter as Counter_

from e2sim.server import SimServer, StreamOptions
from e2sim.world import DEFAULT_START, World, WorldConfig
from models.signing import PRIVATE_KEY_FILE, ensure_key_pair, load_signing_key, sign_folder
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
PROGRESS_S = 10.0  # the longest the demo stays silent while it waits
POLL_S = 0.2
TAIL_LINES = 15  # of a step's log, shown when the demo gives up on it
STOP_S = 60.0  # for each part to stop before it is cancelled (killed, for a process)
REDIS_START_S = 60.0
SIGNING_FOLDER = "model-signing"  # under the demo's work folder: its model signing key pair, made on first use

T = TypeVar("T")


class DemoFailed(Exception):
    """A step of the demo failed or the overall bound was reached: the message says which and shows why."""


class Waits:
    """The demo's output and its waits: a line at least every PROGRESS_S seconds while it waits, and one overall
    bound that, when reached, names what was awaited and shows the tail of that step's log."""

    def __init__(self, timeout_s: float, watched: dict[str, asyncio.Task[Any]] | None = None) -> None:
        self.timeout_s = timeout_s
        self.began = time.monotonic()
        self.said = self.began
        self.watched = watched if watched is not None else {}  # parts that must not stop while the demo waits

    def say(self, line: str = "") -> None:
        """Print a line of the demo's output (flushed: the output may be a pipe)."""
        print(line, flush=True)
        self.said = time.monotonic()

    def check(
        self, what: str, since: float, status: Callable[[], str], log: Callable[[], Sequence[str]] | None = None
    ) -> None:
        """DemoFailed when the bound is reached or a watched part stopped; else a progress line if due. `status`
        is asked at every check: what it says (a job's new log lines, say) counts as progress."""
        for name, task in self.watched.items():
            if task.done():
                problem = task.exception() if not task.cancelled() else "cancelled"
                raise DemoFailed(f"{name} stopped ({problem or 'no error'}) while the demo waited for {what}")
        state = status()
        now = time.monotonic()
        if now - self.began > self.timeout_s:
            gave_up = (
                f"the demo gave up after {now - self.began:.0f} s (--timeout-s {self.timeout_s:g}), having waited "
                f"{now - since:.0f} s for {what}: {state}"
            )
            if log is not None:
                gave_up += "; the last lines of its log:" + _block(list(log())[-TAIL_LINES:])
            raise DemoFailed(gave_up)
        if now - self.said >= PROGRESS_S:
            self.say(f"  ... waiting for {what}: {state} ({now - since:.0f} s so far)")

    async def until(
        self,
        what: str,
        done: Callable[[], bool],
        status: Callable[[], str],
        log: Callable[[], Sequence[str]] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        """Poll `done` until it holds (see `check`)."""
        since = time.monotonic()
        while not done():
            self.check(what, since, status, log)
            await asyncio.sleep(poll_s)

    async def result(self, what: str, awaitable: Awaitable[T], status: Callable[[], str] = lambda: "busy") -> T:
        """The awaitable's result (see `check`); it is cancelled if the demo stops waiting first."""
        task = asyncio.ensure_future(awaitable)
        try:
            await self.until(what, task.done, status)
        finally:
            await _cancel(task)
        return task.result()


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a task that has not finished, and wait until it has."""
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _block(lines: Sequence[str]) -> str:
    """Log lines, indented under the line before them."""
    return "".join(f"\n  | {line}" for line in lines) if lines else " (none)"


def _clock(ms: int) -> str:
    return time.strftime("%a %H:%M", time.gmtime(ms / 1000))


def signed_seed(model: Path, work: Path, waits: Waits) -> Path:
    """Sign the seed model with the demo's key pair (generated on first use in work/model-signing, which the
    rApp signs its promotions with too); return the public key the xApp trusts."""
    private, public = ensure_key_pair(work / SIGNING_FOLDER)
    sign_folder(load_signing_key(private), model)
    waits.say(f"models signed with {private} (the seed now, the rApp's promotions later); the xApp trusts {public}")
    return public


async def trained_model(cells: int, seed: int, work: Path, waits: Waits) -> Path:
    """The artifact folder of a detector trained on the TRAIN_DAYS before the demo window (cached in work)."""
    folder = work / f"seed{seed}-cells{cells}"
    model = folder / "model"
    if (model / "manifest.json").exists():
        waits.say(f"model: {model} (cached; `make clean` retrains)")
        return model
    shutil.rmtree(folder, ignore_errors=True)  # what an interrupted run left
    waits.say(f"training the detector on {TRAIN_DAYS} simulated days of {cells} cells (about half a minute on an "
              "idle machine, longer on a busy one) ...")  # fmt: skip
    base = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING"]
    start = DEFAULT_START.isoformat()
    export = ["sim", "export", "--seed", str(seed), "--cells", str(cells), "--days", str(TRAIN_DAYS),
              "--start", start, "--format", "parquet", "--out", str(folder / "data")]  # fmt: skip
    await run_child("`ranomaly sim export` of the training days", [*base, *export], waits)
    train = ["train", "--data", str(folder / "data"), "--out", str(model), "--no-forecaster"]
    await run_child("`ranomaly train`", [*base, *train], waits)
    return model


async def run_child(what: str, command: Sequence[str], waits: Waits) -> None:
    """Run a command in its own process group, showing its output lines (its progress lines among them);
    DemoFailed if it fails. The group is stopped when the demo stops waiting for it, whatever the reason."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=1 << 20,
    )  # fmt: skip
    lines: deque[str] = deque(maxlen=TAIL_LINES)

    async def show() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                lines.append(line)
                waits.say(f"  {line}")

    def status() -> str:
        return f"pid {process.pid}, " + (f"its last line: {lines[-1]}" if lines else "no output yet")

    shown = asyncio.ensure_future(show())
    try:
        await waits.until(what, lambda: process.returncode is not None and shown.done(), status, lambda: lines)
    finally:
        await stop_group(process)
        await _cancel(shown)
    if process.returncode != 0:
        raise DemoFailed(f"{what} exited with status {process.returncode}; its last lines:" + _block(lines))


async def stop_group(process: asyncio.subprocess.Process) -> None:
    """Stop a process that leads its own group, and the rest of its group: SIGTERM, SIGKILL after STOP_S."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), STOP_S)
    _signal_group(process.pid, signal.SIGKILL)  # what the leader left behind, or the leader after STOP_S
    await process.wait()


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def children_now() -> dict[int, int]:
    """This process's live children (pid -> process group), read from /proc (none where there is no /proc)."""
    me, found = os.getpid(), {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(parent) == me and state != "Z":
            found[int(stat.parent.name)] = int(group)
    return found


def stop_children_since(before: dict[int, int]) -> None:
    """Stop every child started since `before` was taken and still running (a training child an interrupted
    rApp job left, say), each with its group where it leads one: SIGTERM, SIGKILL after STOP_S."""
    left = {pid: group for pid, group in children_now().items() if pid not in before}
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid, group in left.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if group == pid:
                    os.killpg(group, signum)
                else:
                    os.kill(pid, signum)
        deadline = time.monotonic() + STOP_S
        while (left := {pid: g for pid, g in children_now().items() if pid in left}) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not left:
            return


def _overlaps(event: IncidentEvent, label: gt.Anomaly, end_ms: int) -> bool:
    closed = event.closed_ms if event.closed_ms is not None else end_ms
    return event.cell_id == label.cell_id and event.opened_ms <= label.last_ms and label.first_ms <= closed


async def run_demo(
    cells: int,
    hours: float,
    seed: int,
    work: Path,
    model_summaries: bool,
    timeout_s: float,
) -> int:
    """Stream `hours` of a `cells`-cell network through the xApp, then let the rApp close the loop; 0 when clean."""
    return await run_guarded("demo", lambda waits: _demo(cells, hours, seed, work, model_summaries, waits), timeout_s)


async def run_guarded(name: str, body: Callable[[Waits], Awaitable[int]], timeout_s: float) -> int:
    """Run a stack's body with its waits bounded by timeout_s; 1 when a wait failed (said, under `name`).
    SIGTERM stops it as Ctrl-C does (CancelledError); every process it started is stopped either way."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    before = children_now()
    waits = Waits(timeout_s)
    try:
        return await body(waits)
    except DemoFailed as exc:
        waits.say(f"\n{name} failed: {exc}")
        return 1
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        stop_children_since(before)


async def _demo(cells: int, hours: float, seed: int, work: Path, model_summaries: bool, waits: Waits) -> int:
    model = await trained_model(cells, seed, work, waits)
    trusted_key = signed_seed(model, work, waits)
    periods = max(1, int(hours * 3_600_000) // PERIOD_MS)
    start = DEFAULT_START + timedelta(days=TRAIN_DAYS)
    first_ms = int(start.timestamp() * 1000)
    end_ms = first_ms + (periods - 1) * PERIOD_MS
    world = World(WorldConfig(seed=seed, n_cells=cells, start=start))
    async with contextlib.AsyncExitStack() as parts:  # stopped in reverse order, however the demo ends
        redis = RedisServer(Path(tempfile.mkdtemp(prefix="ranomaly-demo-redis-")))
        redis.start(REDIS_START_S)
        parts.callback(redis.stop)
        server = SimServer(world, StreamOptions(realtime=False, span=periods))
        port = await server.start("127.0.0.1", 0)
        parts.push_async_callback(server.stop, 0)
        datalayer = RedisDataLayer(redis.url)
        a1_port = free_port()
        settings = XappSettings(
            e2_targets=[f"127.0.0.1:{port}"], http_host="127.0.0.1", a1_port=a1_port, seed_model_dir=model,
            period_ms=PERIOD_MS, reconnect_min_s=0.1, reconnect_max_s=0.5, model_poll_s=0.5,
            state_dir=work / "xapp-state", trusted_model_keys=[trusted_key],
        )  # fmt: skip
        service = XappService(settings, datalayer)  # its API key: generated once into state_dir, kept after
        xapp_key = settings.state_dir / "api-key"
        rapp = RappService(rapp_settings(redis.url, a1_port, xapp_key, work / "rapp-run", model_summaries,
                                          waits.timeout_s))  # fmt: skip
        began = time.perf_counter()
        for name, part in (("the xApp", service), ("the rApp", rapp)):
            waits.watched[name] = asyncio.create_task(part.run(), name=name)
            parts.push_async_callback(stop_part, part.stop, waits.watched[name], waits)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = gt.ListAnomaliesRequest(start_ms=first_ms, end_ms=end_ms, reporting_period_ms=PERIOD_MS)
            truth = await waits.result(
                "the simulator's ground truth", gt_grpc.GroundTruthStub(channel).ListAnomalies(request)
            )
        labels = list(truth.anomalies)
        await waits.result("the xApp to load its model and subscribe", service.scoring.wait(),
                           lambda: service.model_problem or "starting")  # fmt: skip
        assert service.engine is not None
        waits.say(
            f"e2sim 127.0.0.1:{port}: {len(world.node_ids)} E2 nodes, {cells} cells, {hours:g} simulated hours from "
            f"{start:%a %d %b}; xApp A1-P/health on 127.0.0.1:{service.http_port}, model {service.engine.model.version}"
        )
        await waits.result("the rApp to listen", rapp.started.wait())
        _say_keys(waits, xapp_key, service.http_port, rapp.settings.work_dir / "api-key", rapp.http_port)
        waits.say(f"ground truth: {len(labels)} labelled anomalies; live incidents (+ open, - close):")
        events = await _live_view(service, datalayer, labels, end_ms, waits)
        seconds = time.perf_counter() - began
        await server.stop(0)  # day one is over; the xApp keeps trying to reconnect
        code = _summary(service, events, labels, end_ms, seconds, waits)
        closed = [e for e in events if e.event == "close"]
        incident = closed[0].incident_id if closed else None
        code |= await close_the_loop(service, rapp, world, port, periods, incident, waits)
    return code


async def stop_part(stop: Callable[[], None], task: asyncio.Task[Any], waits: Waits) -> None:
    """Ask a part to stop; cancel it if it has not within STOP_S; say so if it failed."""
    stop()
    try:
        await asyncio.wait_for(task, STOP_S)
    except TimeoutError:
        waits.say(f"{task.get_name()} did not stop within {STOP_S:g} s: cancelled")
    except Exception as exc:  # how a part failed is shown, and the other parts still stop
        waits.say(f"{task.get_name()} failed: {type(exc).__name__}: {exc}")


def _say_keys(waits: Waits, xapp_key: Path, xapp_port: int | None, rapp_key: Path, rapp_port: int | None) -> None:
    """How to reach the two APIs while the demo runs: every route but health needs the app's API key."""
    waits.say(f'xApp A1-P: curl -H "X-API-Key: $(cat {xapp_key})" http://127.0.0.1:{xapp_port}/A1-P/v2/policytypes')
    waits.say(f'rApp API:  curl -H "X-API-Key: $(cat {rapp_key})" http://127.0.0.1:{rapp_port}/a1-policy/v2/policies')


def rapp_settings(redis_url: str, a1_port: int, a1_key: Path, folder: Path, model_summaries: bool,
                   timeout_s: float) -> RappSettings:  # fmt: skip
    """The demo's rApp: its credential on the xApp's A1-P is the xApp's API key file."""
    shutil.rmtree(folder, ignore_errors=True)  # the demo's Redis is new too: history starts empty
    return RappSettings(
        http_host="127.0.0.1", port=0, redis_url=redis_url, a1_base_url=f"http://127.0.0.1:{a1_port}",
        a1_api_key_file=a1_key,
        history_dir=folder / "history", work_dir=folder / "work", collect_block_ms=100, train_forecaster=False,
        report_summaries=model_summaries, report_model_cache=folder.parent / "report-model",
        enforce_timeout_s=timeout_s, promote_tolerance=DEMO_PROMOTE_TOLERANCE,
        model_signing_key_file=folder.parent / SIGNING_FOLDER / PRIVATE_KEY_FILE,
    )  # fmt: skip


async def close_the_loop(
    service: XappService,
    rapp: RappService,
    world: World,
    port: int,
    periods: int,
    incident_id: str | None,
    waits: Waits,
) -> int:
    """The Non-RT half: collect, retrain, push through A1, the xApp swaps the model in, one report."""
    engine = service.engine
    assert engine is not None
    waits.say("\nrApp: collecting what the xApp forwarded ...")
    collected = 0

    def all_collected() -> bool:
        nonlocal collected
        collected = collected_periods(rapp)
        return collected >= periods

    await waits.until(f"the rApp to collect {periods} periods of KPM history", all_collected,
                      lambda: f"{collected} collected", poll_s=1.0)  # fmt: skip
    waits.say(f"rApp: {collected:,} periods of KPM history collected; retraining on them (promoted if it alarms at "
              f"most {1 + DEMO_PROMOTE_TOLERANCE:g}x as often on quiet data) ...")  # fmt: skip
    job = rapp.jobs.submit_training("demo")
    shown = 1  # of the job's log lines ever written, those shown ("queued" is not)

    def show_job() -> str:
        """Show the job's new log lines (its log keeps the newest: `log_dropped` counts those it dropped)."""
        nonlocal shown
        written = getattr(job, "log_dropped", 0) + len(job.log)
        for line in job.log[len(job.log) - min(written - shown, len(job.log)) :]:
            waits.say(f"  {line}")
        shown = written
        return f"{job.id} {job.state}" + (f", its last log line: {job.log[-1]}" if job.log else "")

    def job_log() -> list[str]:
        return list(job.log)

    await waits.until(f"retraining job {job.id} to stage a candidate in the xApp",
                      lambda: engine.shadow is not None or job.state not in ("queued", "running"), show_job,
                      job_log)  # fmt: skip
    show_job()
    if engine.shadow is None:
        waits.say(f"rApp: retraining ended {job.state}")
        return 1
    waits.say(f"xApp: {engine.shadow.version} staged beside {engine.model.version}; the next day streams ...")
    next_day = World(replace(world.config, start=world.config.start + timedelta(minutes=periods)))
    day_two = SimServer(next_day, StreamOptions(realtime=False, span=120))
    await day_two.start("127.0.0.1", port)
    try:
        await waits.until(f"the xApp to swap in {engine.shadow.version} and job {job.id} to read it enforced",
                          lambda: job.state not in ("queued", "running"), show_job, job_log)  # fmt: skip
    finally:
        await day_two.stop(0)
    show_job()
    if job.state != "succeeded":
        return 1
    waits.say(f"xApp: scoring with {engine.model.version} (A1 policy ranomaly-model reads ENFORCED)")
    if incident_id is None:
        waits.say("no closed incident to report on")
        return 0
    writer = "its language model writes it on the CPU" if rapp.settings.report_summaries else "it writes it"
    report = await waits.result(
        f"the rApp's report on incident {incident_id}", rapp.reporter.incident(incident_id), lambda: writer
    )
    waits.say(f"\nrApp report on incident {incident_id}:\n")
    waits.say(report.markdown())
    return 0


def collected_periods(rapp: RappService) -> int:
    try:
        return int(read_history(rapp.settings.history_dir)["timestamp"].nunique())
    except (FileNotFoundError, ValueError, KeyError):
        return 0


async def _live_view(
    service: XappService, datalayer: RedisDataLayer, labels: list[gt.Anomaly], end_ms: int, waits: Waits
) -> list[IncidentEvent]:
    """Print incident events as they are written until the xApp has scored the last period."""
    engine = service.engine
    assert engine is not None
    events: list[IncidentEvent] = []
    last_id = "0"
    hour_shown = -1
    since = time.monotonic()

    def status() -> str:
        watermark = _clock(engine.intake.watermark_ms) if engine.intake.watermark_ms > 0 else "nothing yet"
        return f"scored up to {watermark}, {engine.scored_rows:,} cell-periods"

    while True:
        await asyncio.sleep(POLL_S)
        done = engine.intake.watermark_ms >= end_ms and engine.pending_rows == 0
        if done:
            await datalayer.flush()
        for entry_id, event in await datalayer.read_incidents(last_id):
            last_id = entry_id
            events.append(event)
            matched = [a.kind for a in labels if _overlaps(event, a, end_ms)]
            truth = f"label: {', '.join(sorted(set(matched)))}" if matched else "no label (false alarm)"
            if event.event == "open":
                top = ", ".join(f"{a.measurement} {a.share:.0%}" for a in event.attribution[:3])
                waits.say(f"  {_clock(event.period_start_ms)} + {event.cell_id:12s} score {event.score:6.2f}  "
                          f"[{top}]  {truth}")  # fmt: skip
            elif event.event == "close":
                minutes = (event.period_start_ms - event.opened_ms) // PERIOD_MS
                waits.say(f"  {_clock(event.period_start_ms)} - {event.cell_id:12s} after {minutes} min "
                          f"({event.reason})")  # fmt: skip
        hour = (engine.intake.watermark_ms - (end_ms % 86_400_000)) // 3_600_000
        if hour > hour_shown and engine.intake.watermark_ms > 0 and hour % 6 == 0:
            hour_shown = hour
            now = _clock(engine.intake.watermark_ms)
            waits.say(f"  {now}  {len(engine.table)} cells, {engine.scored_rows:,} cell-periods scored, "
                      f"{engine.incidents.open_count} incidents open")  # fmt: skip
        if done:
            return events
        waits.check(f"the xApp to score the last period ({_clock(end_ms)})", since, status)


def _total(counter: Counter_) -> int:
    """Sum of a Prometheus counter over its labels."""
    return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


def _summary(
    service: XappService,
    events: list[IncidentEvent],
    labels: list[gt.Anomaly],
    end_ms: int,
    seconds: float,
    waits: Waits,
) -> int:
    engine = service.engine
    if engine is None:
        waits.say(f"the xApp never scored: {service.model_problem}")
        return 1
    opened = [e for e in events if e.event == "open"]
    true = [e for e in opened if any(_overlaps(e, a, end_ms) for a in labels)]
    found = Counter(a.kind for a in labels if any(_overlaps(e, a, end_ms) for e in opened))
    total = Counter(a.kind for a in labels)
    metrics = engine.metrics
    waits.say(
        f"\nxApp: {engine.scored_rows:,} cell-periods scored in {seconds:.1f} s by model {engine.model.version}; "
        f"{_total(metrics.indications):,} indications, sequence gaps {_total(metrics.sequence_gaps)}, "
        f"malformed {_total(metrics.decode_errors)}, late {_total(metrics.late_rows)}"
    )
    precision = len(true) / len(opened) if opened else 0.0
    recall = sum(found.values()) / max(sum(total.values()), 1)
    waits.say(f"incidents: {len(opened)} opened; precision {precision:.2f} (incidents overlapping a labelled anomaly "
              f"of their cell), event recall {recall:.2f} (labelled anomalies overlapped by an incident)")  # fmt: skip
    waits.say("recall per kind: " + ", ".join(f"{k} {found[k]}/{n}" for k, n in sorted(total.items())))
    clean = engine.scored_rows > 0 and _total(metrics.sequence_gaps) == 0 and _total(metrics.decode_errors) == 0
    return 0 if clean else 1
