"""`ranomaly bench xapp --replicas N`: the xApp's scaling run, end to end with real processes.

One simulator process streams in real time over gRPC on loopback, a private redis-server is the data layer,
and N `ranomaly xapp` processes share the E2 nodes (replica_index/replica_count: rendezvous hashing, see
docs/scaling.md), each pinned to a core of its own with `os.sched_setaffinity` where there are enough. With
N > 1 the same offered load also runs on one replica first, the baseline, the two alternating for `rounds`;
the median of the rounds' ratios of CPU-seconds per cell-report compares them.

Per replica and in all, over a window of steady state (after every replica's cells passed their model's
warm-up): cell-reports scored (the replicas' own counters), CPU-seconds of the replica processes alone
(`/proc/<pid>/stat`), CPU-seconds and microseconds per cell-report, throughput, and p50/p99 latency from each
cell-period's scheduled send (the end of its period) to its verdict's entry in Redis. At the verdict sink,
every cell-period the simulator sent in the window (its world recomputed here) must be there exactly once:
lost and scored twice are counted there.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import redis
from prometheus_client.parser import text_string_to_metric_families

from e2sim.settings import SimSettings
from e2sim.world import World
from models.artifact import read_artifact
from ranomaly.bench_xapp import percentiles, signed_copy
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.sdl import FIELD_DATA, as_text, decode_verdicts, sdl_keys
from xapp.shard.assign import owner

PROGRESS_S = 10.0
RATIO_TARGET = 0.15  # CPU-seconds per cell-report of N replicas within 15 % of one replica's
START_TIMEOUT_S = 180.0  # from the processes' start to every replica scoring past its warm-up
SINK_TIMEOUT_S = 30.0  # after the window: every cell-period of it at the sink
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Load:
    """What the simulator offers: cells every period_ms, for the model in `model` (trained at that period)."""

    model: Path
    cells: int
    period_ms: int
    seconds: float  # the measuring window of each run


@dataclass(frozen=True)
class Machine:
    """Where the replicas run: the cores this process may use, and how busy the machine is."""

    cpu_count: int
    cores: tuple[int, ...]  # os.sched_getaffinity(0)
    load_average: tuple[float, float, float]

    @classmethod
    def now(cls) -> Machine:
        load = os.getloadavg()
        return cls(os.cpu_count() or 1, tuple(sorted(os.sched_getaffinity(0))), (load[0], load[1], load[2]))

    def free_cores(self) -> float:
        """The cores not taken by the last minute's load average."""
        return max(0.0, len(self.cores) - self.load_average[0])

    def placement(self, replicas: int) -> tuple[int, ...]:
        """The core of each replica: one each while they last, then round again."""
        return tuple(self.cores[i % len(self.cores)] for i in range(replicas))

    def notes(self, replicas: int) -> list[str]:
        """What makes this machine's figures for `replicas` less than meaningful."""
        load = " ".join(f"{x:.2f}" for x in self.load_average)
        out = []
        if replicas > len(self.cores):
            out.append(f"{replicas} replicas on {len(self.cores)} cores {_cores(self.cores)}: replicas share cores "
                       f"(pinned round robin), not one core each")  # fmt: skip
        if self.free_cores() < replicas + 1:
            out.append(
                f"the throughput figure for {_replicas(replicas)} needs {replicas + 1} free cores (the replicas, the "
                f"simulator and Redis); this machine has {len(self.cores)} (os.cpu_count {self.cpu_count}), load "
                f"average {load}, about {self.free_cores():.1f} free: not meaningful here, given anyway"
            )
        return out


def _replicas(n: int) -> str:
    return f"{n} replica{'s' if n > 1 else ''}"


def _cores(cores: Iterable[int]) -> str:
    return ",".join(str(c) for c in cores)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, core: int) -> None:
    """Pin every thread of a process to one core (threads started later inherit it from their creator)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {core})
        except ProcessLookupError:  # the thread ended meanwhile
            continue


@dataclass(frozen=True)
class SinkCounts:
    """Cell-periods of a window at the verdict sink against those the simulator sent."""

    sent: int
    scored: int  # distinct cell-periods of the window at the sink
    lost: int  # sent, never scored
    scored_twice: int  # rows beyond the first for one cell-period
    unexpected: int  # scored, never sent

    @property
    def consistent(self) -> bool:
        return self.lost == 0 and self.scored_twice == 0 and self.unexpected == 0


def count_sink(sent: set[tuple[str, int]], rows: Iterable[tuple[str, int]]) -> SinkCounts:
    """Compare the (cell, period start ms) rows found at the sink with what was sent."""
    seen = Counter(rows)
    scored = set(seen)
    return SinkCounts(sent=len(sent), scored=len(scored), lost=len(sent - scored),
                      scored_twice=seen.total() - len(seen), unexpected=len(scored - sent))  # fmt: skip


def _progress(what: str) -> Callable[[str], None]:
    """A printer of progress lines on stderr, at most one every PROGRESS_S seconds."""
    began = last = time.monotonic()

    def say(state: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_S:
            print(f"bench xapp --replicas: {what}: {now - began:.0f} s so far; {state}", file=sys.stderr,  # noqa: T201
                  flush=True)  # fmt: skip
            last = now

    return say


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, state: Callable[[], str]) -> None:
    """Poll condition() until it holds; a progress line every 10 s; RuntimeError naming `what` at the bound."""
    say = _progress(f"awaiting {what}")
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s awaiting {what} ({state()})")
        say(state())
        time.sleep(0.1)


class Replica:
    """One `ranomaly xapp` process: replica `index` of `count`, pinned to `core`, /metrics on a port of its own."""

    def __init__(self, index: int, count: int, core: int, env: dict[str, str], log: Path) -> None:
        self.index, self.core, self.log = index, core, log
        self.health_port = free_port()
        more = {"REPLICA_INDEX": str(index), "REPLICA_COUNT": str(count), "HEALTH_PORT": str(self.health_port),
                "STATE_DIR": str(log.parent / f"xapp-{index}")}  # fmt: skip
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "xapp"],
                env=env | {f"RANOMALY_XAPP_{k}": v for k, v in more.items()}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        pin(self.process.pid, core)  # before the interpreter starts its threads, mostly; pin() again once up

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics summed over its labels, by sample name; {} while the server is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.index} exited ({self.process.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-2000:]}") from None  # fmt: skip
            return {}
        totals: defaultdict[str, float] = defaultdict(float)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] += sample.value
        return dict(totals)

    def scored(self) -> int:
        return int(self.metrics().get("ranomaly_xapp_scored_rows_total", 0))

    def stop(self) -> None:
        """SIGTERM (the xApp leaves and checkpoints), then kill at the bound."""
        stop(self.process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Reading:
    """A replica's counters and CPU time at one instant."""

    at: float  # time.time()
    cpu_s: float
    scored: int
    sequence_gaps: int
    late_rows: int
    gap_rows: int

    @classmethod
    def of(cls, replica: Replica) -> Reading:
        cpu = cpu_seconds(replica.process.pid)
        m = replica.metrics()
        return cls(time.time(), cpu, int(m.get("ranomaly_xapp_scored_rows_total", 0)),
                   int(m.get("ranomaly_xapp_sequence_gaps_total", 0)), int(m.get("ranomaly_xapp_late_rows_total", 0)),
                   int(m.get("ranomaly_xapp_gap_rows_total", 0)))  # fmt: skip


def _replica_row(index: int, core: int, cells: int, before: Reading, after: Reading,
                 latencies: list[float]) -> dict[str, Any]:  # fmt: skip
    scored = after.scored - before.scored
    cpu = after.cpu_s - before.cpu_s
    seconds = after.at - before.at
    return {
        "replica": index, "core": core, "cells": cells, "cell_reports": scored, "cpu_s": cpu, "seconds": seconds,
        "cpu_s_per_cell_report": cpu / scored if scored else None, "cell_reports_per_s": scored / seconds,
        "sequence_gaps": after.sequence_gaps - before.sequence_gaps,
        "rows_dropped_late": after.late_rows - before.late_rows, "gap_rows": after.gap_rows - before.gap_rows,
        "latency_from_scheduled_send": percentiles(latencies) if latencies else None,
    }  # fmt: skip


def _total(rows: list[dict[str, Any]], latencies: list[float]) -> dict[str, Any]:
    scored = sum(r["cell_reports"] for r in rows)
    cpu = sum(r["cpu_s"] for r in rows)
    seconds = max(r["seconds"] for r in rows)
    return {
        "cell_reports": scored, "cpu_s": cpu, "seconds": seconds,
        "cpu_s_per_cell_report": cpu / scored if scored else None, "cell_reports_per_s": scored / seconds,
        **{k: sum(r[k] for r in rows) for k in ("sequence_gaps", "rows_dropped_late", "gap_rows")},
        "latency_from_scheduled_send": percentiles(latencies) if latencies else None,
    }  # fmt: skip


class Sink:
    """The verdict stream in Redis, read on from where the last read ended: (node, cell, period start ms, entry
    time ms) of every row, and which of the cell-periods sent are still missing."""

    def __init__(self, url: str, after_id: str, sent: set[tuple[str, int]]) -> None:
        self._client = redis.Redis.from_url(url)
        self._key = sdl_keys().verdicts
        self._last = after_id
        self.rows: list[tuple[str, str, int, int]] = []
        self.missing = set(sent)

    def read(self) -> None:
        for entry_id, fields in self._client.xrange(self._key, min=f"({self._last}") or ():
            data = (fields or {}).get(FIELD_DATA.encode())
            if entry_id is None or not isinstance(data, bytes):
                raise ValueError(f"{self._key} entry {entry_id!r}: no {FIELD_DATA!r} field")
            batch = decode_verdicts(data)
            self._last = as_text(entry_id)
            periods = batch.period_start_ms.tolist()
            self.rows.extend(zip(batch.node_ids, batch.cell_ids, periods, repeat(int(self._last.split("-")[0]))))
            self.missing.difference_update(zip(batch.cell_ids, periods, strict=True))

    def complete(self) -> bool:
        self.read()
        return not self.missing

    def close(self) -> None:
        self._client.close()


def _run(load: Load, world: World, replicas: int, machine: Machine, scratch: Path, seed: Path,
         trusted: Path) -> dict[str, Any]:  # fmt: skip
    """One run: a redis-server, the simulator and `replicas` xApp processes; the figures of its window."""
    nodes = list(world.node_ids)
    node_of_cell = {cell: nodes[int(world.cell_node[c])] for c, cell in enumerate(world.cell_ids)}
    replica_of = {node: owner(node, replicas) for node in nodes}
    cells_of = Counter(replica_of[node] for node in node_of_cell.values())
    cores = machine.placement(replicas)
    workdir = scratch / f"run-{replicas}"
    workdir.mkdir(parents=True)
    server = RedisServer(workdir)
    server.start()
    sim_port = free_port()
    env = dict(os.environ) | {f"RANOMALY_XAPP_{k}": v for k, v in {
        "E2_TARGETS": f"127.0.0.1:{sim_port}", "HTTP_HOST": "127.0.0.1", "A1_PORT": "0", "DATALAYER": "redis",
        "REDIS_URL": server.url, "PERIOD_MS": str(load.period_ms), "SEED_MODEL_DIR": str(seed),
        "TRUSTED_MODEL_KEYS": str(trusted)}.items()}  # fmt: skip
    sim = subprocess.Popen(
        [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "sim", "serve", "--cells", str(load.cells),
         "--host", "127.0.0.1", "--port", str(sim_port), "--pace", "realtime"],
    )  # fmt: skip
    started: list[Replica] = []
    try:
        started.extend(Replica(i, replicas, cores[i], env, workdir / f"xapp-{i}.log") for i in range(replicas))
        warmup = read_artifact(seed).manifest.warmup_periods
        scored = [0] * replicas

        def warmed() -> bool:
            if sim.poll() is not None:
                raise RuntimeError(f"the simulator exited ({sim.returncode})")
            scored[:] = [r.scored() for r in started]
            return all(n >= cells_of[r.index] * (warmup + 3) for n, r in zip(scored, started, strict=True))

        wait_for(warmed, START_TIMEOUT_S, f"{_replicas(replicas)} scoring past the model's warm-up ({warmup} periods)",
                 lambda: f"scored {scored} of {[cells_of[i] * (warmup + 3) for i in range(replicas)]}")  # fmt: skip
        for replica in started:
            pin(replica.process.pid, replica.core)
        before = [Reading.of(r) for r in started]
        began = before[0].at
        say = _progress(f"measuring {_replicas(replicas)} for {load.seconds:.0f} s")
        while time.time() - began < load.seconds:
            say(f"cell-reports scored so far {sum(r.scored() for r in started) - sum(b.scored for b in before):,}")
            time.sleep(min(1.0, max(0.0, load.seconds - (time.time() - began))))
        after = [Reading.of(r) for r in started]
        ended = max(a.at for a in after)
        load_after = os.getloadavg()

        # the window's periods: sent after it began, due (ended) before it ended
        first = int(began * 1000) // load.period_ms + 1
        last = int(ended * 1000) // load.period_ms - 1
        periods = np.arange(first, last + 1, dtype=np.float64)
        at, cells = np.nonzero(world.deployment.appeared(periods * (load.period_ms / 1000)))
        starts = ((first + at) * load.period_ms).tolist()
        sent = set(zip([world.cell_ids[c] for c in cells.tolist()], starts, strict=True))
        sink = Sink(server.url, f"{first * load.period_ms}-0", sent)
        try:
            wait_for(sink.complete, SINK_TIMEOUT_S, "every cell-period of the window at the verdict sink",
                     lambda: f"{len(sink.missing):,} of {len(sent):,} cell-periods sent not there yet")  # fmt: skip
        except RuntimeError as exc:
            print(f"bench xapp --replicas: {exc}", file=sys.stderr, flush=True)  # noqa: T201 (counted as lost below)
        finally:
            sink.close()
    finally:
        for replica in started:
            replica.stop()
        stop(sim)
        server.stop()

    window = [(node, cell, period, written) for node, cell, period, written in sink.rows
              if first * load.period_ms <= period <= last * load.period_ms]  # fmt: skip
    counts = count_sink(sent, ((cell, period) for _, cell, period, _ in window))
    latencies: dict[int, list[float]] = {i: [] for i in range(replicas)}
    for node, _, period, written in window:
        latencies[replica_of[node]].append((written - period - load.period_ms) / 1000)
    per_replica = [_replica_row(r.index, r.core, cells_of[r.index], b, a, latencies[r.index])
                   for r, b, a in zip(started, before, after, strict=True)]  # fmt: skip
    return {
        "replicas": replicas, "cores": list(cores), "load_average_before": list(machine.load_average),
        "load_average_after": list(load_after), "per_replica": per_replica,
        "total": _total(per_replica, [x for values in latencies.values() for x in values]),
        "sink": asdict(counts) | {"consistent": counts.consistent, "periods": last - first + 1},
        "notes": machine.notes(replicas),
    }  # fmt: skip


def run_replica_bench(load: Load, replicas: int, rounds: int = 1) -> dict[str, Any]:
    """The run with `replicas` replicas and, when that is more than one, the one-replica baseline before it, the
    two alternating `rounds` times. A busy machine's load drifts from run to run and a neighbour's burst can hit
    one run: each round's two runs, next to each other in time, give a ratio, and the median of those compares."""
    world = World(SimSettings(cells=load.cells).world())  # what `ranomaly sim serve --cells` serves
    manifest = read_artifact(load.model).manifest
    counts = sorted({1, replicas})
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ranomaly-bench-replicas-") as name:
        scratch = Path(name)
        seed, trusted = signed_copy(load.model, scratch)
        for round_ in range(rounds):
            for n in counts:
                run = _run(load, world, n, Machine.now(), scratch / f"round-{round_}", seed, trusted)
                runs.append(run | {"round": round_})
    per_report = {(run["round"], run["replicas"]): run["total"]["cpu_s_per_cell_report"] for run in runs}
    figures: dict[str, Any] = {
        "model": manifest.version, "cells": load.cells, "period_ms": load.period_ms,
        "offered_cell_reports_per_s": load.cells * 1000 / load.period_ms, "seconds": load.seconds, "rounds": rounds,
        "runs": runs, "median_cpu_s_per_cell_report": {str(n): _median([per_report[r, n] for r in range(rounds)])
                                                       for n in counts},
        "consistent": all(run["sink"]["consistent"] for run in runs),
    }  # fmt: skip
    if replicas > 1:
        by_round = [per_report[r, replicas] / per_report[r, 1] if per_report[r, 1] and per_report[r, replicas]
                    else None for r in range(rounds)]  # fmt: skip
        ratio = _median(by_round)
        figures |= {"ratio_by_round": by_round, "cpu_per_cell_report_ratio": ratio,
                    "ratio_within_target": ratio is not None and abs(ratio - 1) <= RATIO_TARGET}  # fmt: skip
    return figures


def _median(values: list[float | None]) -> float | None:
    """The median of the values, None when a run scored nothing."""
    return None if any(v is None for v in values) else statistics.median(v for v in values if v is not None)


def format_figures(figures: dict[str, Any]) -> str:
    """The printed report: a table per run, the sink's counts, the ratio against one replica."""
    offered = figures["offered_cell_reports_per_s"]
    lines = [f"xApp replicas end to end: {figures['cells']:,} cells every {figures['period_ms']} ms "
             f"({offered:,.0f} cell-reports/s offered), model {figures['model']}, {figures['seconds']:.0f} s measured "
             f"a run"]  # fmt: skip
    head = (f"  {'replica':>8s} {'core':>5s} {'cells':>7s} {'cell-reports':>13s} {'CPU s':>7s} {'µs/report':>10s} "
            f"{'reports/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s}")  # fmt: skip
    for run in figures["runs"]:
        n = run["replicas"]
        before = " ".join(f"{x:.2f}" for x in run["load_average_before"])
        after = " ".join(f"{x:.2f}" for x in run["load_average_after"])
        lines += [f"round {run['round'] + 1}: {_replicas(n)} pinned to cores {_cores(run['cores'])} (the simulator "
                  f"and redis-server not pinned); load average {before} before, {after} after", head]  # fmt: skip
        for row in [*run["per_replica"], run["total"] | {"replica": "all", "core": "", "cells": figures["cells"]}]:
            lat = row["latency_from_scheduled_send"] or {"p50_ms": float("nan"), "p99_ms": float("nan")}
            per = row["cpu_s_per_cell_report"]
            lines.append(f"  {row['replica']!s:>8s} {row['core']!s:>5s} {row['cells']:7,} {row['cell_reports']:13,} "
                         f"{row['cpu_s']:7.2f} {per * 1e6 if per else float('nan'):10.1f} "
                         f"{row['cell_reports_per_s']:10,.0f} {lat['p50_ms']:8.0f} {lat['p99_ms']:8.0f}")  # fmt: skip
        sink, total = run["sink"], run["total"]
        lines.append(f"  sink, {sink['periods']} periods: {sink['sent']:,} cell-periods sent, {sink['lost']:,} lost, "
                     f"{sink['scored_twice']:,} scored twice, {sink['unexpected']:,} never sent; indications lost by "
                     f"sequence {total['sequence_gaps']:,}, rows dropped late {total['rows_dropped_late']:,}, gap rows "
                     f"{total['gap_rows']:,}")  # fmt: skip
        lines += [f"  note: {note}" for note in run["notes"]]
    if "cpu_per_cell_report_ratio" in figures:
        n = max(figures["median_cpu_s_per_cell_report"], key=int)
        one, many = (figures["median_cpu_s_per_cell_report"][k] for k in ("1", n))
        ratio = figures["cpu_per_cell_report_ratio"]
        verdict = "within" if figures["ratio_within_target"] else "OUTSIDE"
        if ratio is None:
            lines.append("CPU per cell-report: no ratio, a run scored nothing")
        elif figures["rounds"] == 1:
            lines.append(f"CPU per cell-report: {n} replicas {many * 1e6:.1f} µs, 1 replica {one * 1e6:.1f} µs: "
                         f"ratio {ratio:.3f} ({verdict} the 15 % target)")  # fmt: skip
        else:
            rounds = ", ".join("-" if r is None else f"{r:.3f}" for r in figures["ratio_by_round"])
            lines.append(f"CPU per cell-report, medians of {figures['rounds']} rounds: {n} replicas {many * 1e6:.1f} "
                         f"µs, 1 replica {one * 1e6:.1f} µs; ratio, the median of the rounds' ({rounds}): {ratio:.3f} "
                         f"({verdict} the 15 % target)")  # fmt: skip
    lines.append("counts: " + ("every cell-period sent was scored once" if figures["consistent"] else
                               "INCONSISTENT (lost, scored twice or never sent above)"))  # fmt: skip
    return "\n".join(lines)
