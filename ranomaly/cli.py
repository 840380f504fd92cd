"""The `ranomaly` command: one entry point, a subcommand per job.

Settings come from each app's environment variables (RANOMALY_SIM_*, ...); flags given on the
command line override them. Logs go to stderr; results and tables to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from ranomaly.aclcmd import add_commands as add_acl_commands
from ranomaly.bench_consolecmd import add_command as add_console_bench
from ranomaly.consolecmd import add_commands as add_console_commands
from ranomaly.logs import configure_logging
from ranomaly.signcmd import add_commands as add_signing_commands

if TYPE_CHECKING:
    from e2sim.settings import SimSettings
    from e2sim.source import KpmSource
    from ranomaly_contracts.dataset import Dataset, ReadOptions

log = structlog.get_logger(__name__)


def _sim_settings(args: argparse.Namespace, **fields: str) -> SimSettings:
    """SimSettings from the environment, with the given flags (field name -> argument name) on top."""
    from e2sim.settings import SimSettings

    return SimSettings(**_given(args, fields))


_SERVE_FIELDS = {"host": "host", "port": "port", "pace": "pace", "periods": "periods"}
_WORLD_FIELDS = {"seed": "seed", "cells": "cells", "start": "start"}


async def _serve(source: KpmSource, settings: SimSettings) -> None:
    from e2sim.server import SimServer

    server = SimServer(source, settings.stream(), settings.tls())
    await server.start(settings.host, settings.port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    waiter = asyncio.create_task(server.wait())
    await asyncio.wait([waiter, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    await server.stop()
    waiter.cancel()


def cmd_sim_serve(args: argparse.Namespace) -> int:
    """Serve the simulated network as E2 nodes over gRPC."""
    from e2sim.world import World

    settings = _sim_settings(args, **_SERVE_FIELDS, **_WORLD_FIELDS)
    asyncio.run(_serve(World(settings.world()), settings))
    return 0


def cmd_sim_replay(args: argparse.Namespace) -> int:
    """Serve a dataset folder as E2 nodes over gRPC."""
    from e2sim.replay import ReplaySource
    from ranomaly_contracts.dataset import read_dataset

    settings = _sim_settings(args, **_SERVE_FIELDS)
    asyncio.run(_serve(ReplaySource(read_dataset(args.data)), settings))
    return 0


def cmd_sim_export(args: argparse.Namespace) -> int:
    """Write a labelled dataset."""
    from e2sim.export import export_world
    from e2sim.world import World

    settings = _sim_settings(args, **_WORLD_FIELDS)
    summary = export_world(World(settings.world()), args.out, args.days, args.period_s, args.format)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary.kinds.items()))
    print(
        f"wrote {summary.folder}: {summary.rows} rows, {summary.nodes} nodes, {summary.cells} cells, "
        f"{summary.periods} periods of {args.period_s:g} s in {summary.seconds:.1f} s\n"
        f"labels: {summary.events} events ({kinds}); "
        f"{summary.anomalous_fraction:.2%} of cell-periods anomalous, {summary.subtle_share:.0%} of events subtle"
    )
    return 0


def cmd_bench_sim(args: argparse.Namespace) -> int:
    """Simulator generation and streaming rates."""
    from e2sim.bench import run_sim_bench

    figures = run_sim_bench(args.cells, args.grpc_cells, args.grpc_periods)
    small, large, enc, rpc = (figures[k] for k in ("generation_small", "generation_large", "encoding", "grpc"))
    rows = [
        ("generation, 60 cells, 1 day at 60 s", small["chunked"]["cell_reports_per_s"],
         small["one_period_per_call"]["cell_reports_per_s"], "one period a call"),
        (f"generation, {large['cells']} cells at 250 ms", large["chunked"]["cell_reports_per_s"],
         large["one_period_per_call"]["cell_reports_per_s"], "one period a call"),
        (f"encoding to messages, {enc['cells']} cells", enc["cell_reports_per_s"], None,
         f"{enc['bytes_per_cell_report']:.1f} bytes/cell-report"),
        (f"gRPC loopback, {rpc['cells']} cells", rpc["batched_64"]["cell_reports_per_s"],
         rpc["unbatched_1"]["cell_reports_per_s"], "1 indication a message"),
    ]  # fmt: skip
    print(f"{'what':44s} {'cell-reports/s':>15s} {'baseline':>15s}  baseline is")
    for what, rate, base, note in rows:
        print(f"{what:44s} {rate:15,.0f} {(f'{base:,.0f}' if base else '-'):>15s}  {note}")
    print(f"gRPC messages/s batched: {rpc['batched_64']['messages_per_s']:,.0f}")
    rt = figures["realtime"]
    print(
        f"real time, {rt['cells']} cells every {rt['period_ms']} ms ({rt['cell_reports_per_s']:,.0f} cell-reports/s): "
        f"indications arrive {rt['late_ms_p50']:.1f} ms (p50), {rt['late_ms_p99']:.1f} ms (p99), "
        f"{rt['late_ms_max']:.1f} ms (max) after their period ends; lost {rt['indications_lost']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _read_options(args: argparse.Namespace) -> ReadOptions:
    """The reader flags; a rename file that is not a JSON object of names is refused naming the file."""
    from ranomaly_contracts.dataset import DatasetError, ReadOptions

    rename: dict[str, str] = {}
    if args.rename:
        try:
            rename = json.loads(Path(args.rename).read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{args.rename}: not valid JSON ({exc})") from exc
        if not isinstance(rename, dict) or not all(isinstance(v, str) and v for v in rename.values()):
            raise DatasetError(f"{args.rename}: expected a JSON object mapping export column names to names")
    return ReadOptions(on_duplicate=args.on_duplicate, timezone=args.timezone, rename=rename)


def _read(args: argparse.Namespace, folder: str) -> Dataset:
    """The dataset read with the reader flags; what was mended goes to stderr, one line each."""
    from ranomaly_contracts.dataset import read_dataset

    dataset = read_dataset(folder, _read_options(args))
    for note in dataset.notes:
        print(f"ranomaly {args.command}: note: {note}", file=sys.stderr)
    return dataset


def cmd_data_check(args: argparse.Namespace) -> int:
    """Print what the reader finds in a dataset folder and what it mends."""
    from ranomaly.datacheck import describe
    from ranomaly_contracts.dataset import read_dataset

    print(describe(read_dataset(args.folder, _read_options(args)), args.folder))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the detector (and the forecaster) on a dataset; write the artifact folder."""
    dataset = _read(args, args.data)  # checked before the training stack is imported
    from models.progress import heartbeat
    from models.training import train_artifact

    with heartbeat("ranomaly train"):
        artifact, seconds = train_artifact(dataset, args.out, seed=args.seed, forecaster=not args.no_forecaster)
    manifest = artifact.manifest
    print(
        f"wrote {args.out}: model {manifest.version}, {len(manifest.measurements)} measurements, "
        f"state {manifest.state_size} floats per cell, threshold {manifest.thresholds.score:.3f}; "
        f"trained in {seconds:.0f} s (detector {manifest.training['detector_seconds']:.0f} s"
        + (f", forecaster {manifest.training['forecaster_seconds']:.0f} s)" if not args.no_forecaster else ")")
    )
    rule = manifest.thresholds.model_dump().get("rule") or {}
    if rule.get("floor_binds"):
        print(f"threshold: the floor {rule['floor']:g} binds (the calibration scores' tail lies under it)")
    for note in manifest.training.get("measurement_notes", []):
        print(f"warning: {note['measurement']}: {note['problem']}; {note['action']}")
    print(_network_context_line(manifest.training.get("context_gain", {})))
    return 0


def _network_context_line(gains: dict[str, float], least: float = 0.05) -> str:
    """What `train` says of the network context the model learnt (the manifest's training.context_gain)."""
    used = {name: gain for name, gain in gains.items() if gain >= least}
    if not used:
        return f"network context: no measurement's error is shared by its node's cells (every gain under {least:g})"
    shares = ", ".join(f"{name} {gain:.2f}" for name, gain in sorted(used.items(), key=lambda item: -item[1]))
    return f"network context: {shares} (the gains at which the error a cell's node mates share is taken out of its own)"


def cmd_score(args: argparse.Namespace) -> int:
    """Score a dataset with an artifact; write the Scores CSV."""
    from models.artifact import load_session, read_artifact
    from models.score_file import write_scores
    from models.scoring import score_arrays
    from ranomaly_contracts.dataset import to_arrays

    artifact = read_artifact(args.model)
    arrays = to_arrays(_read(args, args.data))
    result = score_arrays(artifact, load_session(artifact), arrays)
    rows = write_scores(args.out, arrays, result, artifact.manifest)
    print(f"wrote {args.out}: {rows} rows scored by model {artifact.manifest.version}")
    return 0


def cmd_alarms(args: argparse.Namespace) -> int:
    """Alarms per cell and day at each threshold on a dataset; the A1 threshold that holds a budget."""
    dataset = _read(args, args.data)
    from models.alarm_budget import alarm_rates, candidate_thresholds, format_rates, sigma_policy, within_budget
    from models.artifact import load_session, read_artifact
    from models.scoring import score_arrays
    from ranomaly_contracts.dataset import to_arrays

    artifact = read_artifact(args.model)
    manifest = artifact.manifest
    result = score_arrays(artifact, load_session(artifact), to_arrays(dataset))
    rates = alarm_rates(result, candidate_thresholds(manifest), manifest.period_s)
    print(format_rates(rates, manifest))
    if args.budget is None:
        return 0
    chosen = within_budget(rates, args.budget)
    if chosen is None:
        print(f"no threshold up to {rates[-1].threshold:.3f} keeps to {args.budget:g} alarms per cell and day")
        return 1
    policy = sigma_policy(manifest, chosen.threshold)
    print(
        f"budget {args.budget:g} alarms per cell and day: threshold {chosen.threshold:.3f} "
        f"({chosen.alarms_per_cell_day:.3f} on this data); A1 type 20100: {json.dumps(policy)}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Every detector on one split of a labelled dataset: one table."""
    from models.evaluation import EvalConfig, format_table, run_evaluation

    holdout = _read(args, args.holdout) if args.holdout else None
    result = run_evaluation(_read(args, args.data), EvalConfig(seed=args.seed, fast=args.fast), holdout)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    return 0


def cmd_eval_real(args: argparse.Namespace) -> int:
    """The main detector beside the baselines on real labelled datasets: one table per dataset."""
    from models.eval_real import DEFAULT_ROOT, RealEvalConfig, format_dataset, run_real_evaluation

    config = RealEvalConfig(
        root=Path(args.root) if args.root else DEFAULT_ROOT,
        datasets=tuple(args.datasets.split(",")) if args.datasets else (),
        seed=args.seed,
        max_train_periods=args.max_train_periods,
        fast=args.fast,
    )
    if not config.root.is_dir():
        print(f"eval-real: no real datasets at {config.root} (the folder does not exist; pass it with --root)")
        return 2

    def show(result: dict[str, Any]) -> None:
        print(format_dataset(result) + "\n", flush=True)

    results = run_real_evaluation(config, show)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


def cmd_ceiling(args: argparse.Namespace) -> int:
    """Event recall per kind of an oracle that knows the normal, on a simulator export's test part."""
    from models.ceiling import ceiling
    from ranomaly_contracts.dataset import read_dataset

    result = ceiling(read_dataset(args.data), args.false_alarms)
    print(
        f"oracle threshold {result.threshold:.2f}: {result.false_alarms_per_1k_cell_hours:.2f} false-alarm runs "
        f"per 1,000 cell-hours on the anomaly-free run; event recall {result.event_recall:.3f}"
    )
    for kind, recall in result.recall_by_kind.items():
        print(f"  {kind:<14} {recall:.2f} of {result.events_by_kind[kind]} events")
    return 0


def cmd_normal_error(args: argparse.Namespace) -> int:
    """How far the main detector's estimate of normal is from a simulator export's truth, day by day."""
    from datetime import UTC, datetime

    import numpy as np

    from models.normal_error import detector_normal_error
    from ranomaly_contracts.dataset import read_dataset

    result = detector_normal_error(read_dataset(args.data))
    days = [datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%a") for ms in result.day_starts_ms]
    print("main detector's baseline error, RMS in true-noise standard deviations per day (UTC)")
    print(f"{'measurement':<28}" + "".join(f"{day:>6}" for day in days))
    for name, row in zip(result.measurements, result.rms.T, strict=True):
        print(f"{name:<28}" + "".join(f" {value:5.2f}" for value in row))
    print(f"{'mean':<28}" + "".join(f" {value:5.2f}" for value in np.nanmean(result.rms, axis=1)))
    return 0


def cmd_bench_model(args: argparse.Namespace) -> int:
    """The exported detector's throughput in ONNX Runtime, batched against one cell a call."""
    from models.artifact import read_artifact
    from models.bench import bench_model

    figures = bench_model(read_artifact(args.model))
    print(f"model {figures['model']}, state {figures['state_bytes_per_cell']} bytes per cell, one thread")
    print(f"{'batch':>6s} {'cell-reports/s':>15s} {'call p50 ms':>12s} {'call p99 ms':>12s}")
    for batch, row in figures["batches"].items():
        print(f"{batch:>6s} {row['cell_reports_per_s']:15,.0f} {row['call_ms_p50']:12.3f} {row['call_ms_p99']:12.3f}")
    print(f"batched vs one cell a call: {figures['speedup_over_one_cell_a_call']:.0f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    """Training's wall time, CPU time and peak RSS: the detector beside the seed autoencoder, each in a process."""
    from models.eval_real import DEFAULT_ROOT
    from models.progress import heartbeat
    from ranomaly.bench_train import HEADER, default_sets, footer, format_row, run_train_bench

    with heartbeat("bench train: simulator exports", stream=sys.stderr):
        sets = default_sets(Path(args.work), Path(args.root) if args.root else DEFAULT_ROOT)
    print(HEADER, flush=True)
    figures = run_train_bench(sets, on_row=lambda row: print(format_row(row), flush=True))
    print(footer(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if any("error" in row for row in figures["rows"]) else 0


def _print_rmr_bench(figures: dict[str, Any]) -> None:
    """The in-process table of the RMR bench (the decode table is printed as it is measured)."""
    print(f"{'in process, same cells':44s} {'cell-reports/s':>15s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, label in (("rmr_trivial", "rmr, 1-cell RICindications, trivial model"),
                        ("grpc_trivial", "grpc, 8-cell indications, trivial model"),
                        ("rmr_model", "rmr, 1-cell RICindications, detector"),
                        ("grpc_model", "grpc, 8-cell indications, detector")):  # fmt: skip
        row = figures[name]
        lat = row["indication_latency"]
        print(f"{label:44s} {row['cell_reports_per_s']:15,.0f} {lat['p50_ms']:8.3f} {lat['p99_ms']:8.3f}")


def _print_end_to_end(figures: dict[str, Any]) -> None:
    e2e, budgets = figures["end_to_end"], figures["budgets"]
    alone = e2e["simulator_alone"]
    detector = figures["in_process_e2e_detector"]
    print(f"end to end (scheduled send to verdict in Redis; in process, {detector['model']}: "
          f"{detector['cell_reports_per_s']:,.0f} cell-reports/s, 8 a message):")  # fmt: skip
    for name, run in e2e.items():
        if name == "simulator_alone":
            continue
        lat, arrival = run["latency_from_scheduled_send"], run["arrival_after_scheduled_send"]
        gc_run = run["garbage_collection"]
        print(f"  {name:17s} {run['cells']:,} cells every {run['period_ms']} ms, {run['cell_reports_per_s']:,.0f} "
              f"cell-reports/s of {run['target_cell_reports_per_s']:,.0f}; p50 {lat['p50_ms']:.0f} ms, p99 "
              f"{lat['p99_ms']:.0f} ms (arrival p99 {arrival['p99_ms']:.0f} ms); CPU a period: the loop "
              f"{run['loop_cpu_ms_per_period']:.0f} ms, the process {run['process_cpu_ms_per_period']:.0f} ms; "
              f"garbage collection {gc_run['ms_per_period']:.1f} ms a period, the longest {gc_run['longest_ms']:.0f} "
              f"ms; lost "
              f"by sequence {run['indications_lost_by_sequence']}, late rows {run['rows_dropped_late']}, "
              f"scored twice {run['scored_twice']}")  # fmt: skip
    print(f"  baseline, the simulator with a bare reader: p50 {alone['late_ms_p50']:.0f} / p99 "
          f"{alone['late_ms_p99']:.0f} ms")  # fmt: skip
    for name in ("trivial", "detector"):
        verdicts = ", ".join(f"{mode} {'within' if budgets[f'{name}_{mode}_within'] else 'NOT within'}"
                             for mode in ("serial", "overlap"))  # fmt: skip
        print(f"  budget, {name}: p99 <= {budgets[f'{name}_p99_budget_ms']:.0f} ms, nothing lost or scored twice: "
              f"{verdicts}")  # fmt: skip


def _bench_xapp_replicas(args: argparse.Namespace) -> int:
    """The scaling run (`--replicas N`): N xApp processes end to end, beside one; 1 when a count is inconsistent."""
    from models.artifact import read_artifact
    from ranomaly.bench_replicas import Load, format_figures, run_replica_bench

    model = Path(args.e2e_model or args.model)
    period_ms = round(read_artifact(model).manifest.period_s * 1000)
    usable = args.transport == "grpc" and not args.redis_url and period_ms == args.e2e_period_ms
    if min(args.replicas, args.rounds) < 1 or not usable:
        print(f"ranomaly bench xapp: --replicas and --rounds take counts of at least 1, gRPC, a redis-server of each "
              f"run's own (no --redis-url) and a model at --e2e-period-ms ({model} is at {period_ms} ms)",
              file=sys.stderr)  # fmt: skip
        return 2
    figures = run_replica_bench(Load(model, args.e2e_cells, period_ms, args.e2e_seconds), args.replicas, args.rounds)
    print(format_figures(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["consistent"] else 1


def cmd_bench_xapp(args: argparse.Namespace) -> int:
    """The xApp hot path in process and end to end, against naive baselines."""
    from models.artifact import read_artifact
    from ranomaly.bench_xapp import run_xapp_bench

    if args.replicas is not None:
        return _bench_xapp_replicas(args)
    if args.transport == "rmr":
        from ranomaly.bench_rmr import run_rmr_bench

        rmr_figures = run_rmr_bench(read_artifact(args.model))
        _print_rmr_bench(rmr_figures)
        if args.json:
            Path(args.json).write_text(json.dumps(rmr_figures, indent=2) + "\n")
        return 0

    figures = run_xapp_bench(
        read_artifact(args.model), Path(args.model), Path(args.e2e_model) if args.e2e_model else None,
        args.e2e_cells, args.e2e_period_ms, args.e2e_seconds, args.redis_url,
    )  # fmt: skip
    print(f"{'in process (8-cell indications)':40s} {'cell-reports/s':>15s} {'p50 ms':>8s} {'p99 ms':>8s}  calls")
    grouped = "in_process_model_8_indications_per_message"
    names = ("in_process", "in_process_naive", "in_process_model", "in_process_model_naive", grouped,
             f"{grouped}_overlap")  # fmt: skip
    for name in names:
        row = figures[name]
        lat = row["indication_latency"]
        label = name.replace("_8_indications_per_message", ", 8 a message").replace("_overlap", ", overlapped")
        label = f"{label} (batch <= {row['batch_max_cells']})"
        print(f"{label:40s} {row['cell_reports_per_s']:15,.0f} {lat['p50_ms']:8.3f} {lat['p99_ms']:8.3f}  "
              f"{row['scoring_calls']:,}")  # fmt: skip
    print(f"speedup over one cell a call: trivial model {figures['in_process_speedup']:.0f}x, "
          f"detector {figures['in_process_model_speedup']:.0f}x")  # fmt: skip
    trivial, model = figures["in_process_simulator_trivial"], figures["in_process_simulator_model"]
    print(f"in process, a period of the simulator's messages ({trivial['cells']:,} cells, "
          f"{trivial['messages_per_period']} messages, {trivial['indications_per_period']:,} indications): "
          f"trivial model {trivial['ms_per_period']:.1f} ms ({trivial['cell_reports_per_s']:,.0f} cell-reports/s), "
          f"detector {model['ms_per_period']:.1f} ms ({model['cell_reports_per_s']:,.0f})")  # fmt: skip
    mem = figures["memory"]
    steps = ", ".join(f"{span} cells {per_cell:,.0f}" for span, per_cell in mem["bytes_per_cell"].items())
    verdict = "within" if mem["within_target"] else "OVER"
    print(f"memory: RSS bytes per cell {steps}; model state {mem['model_state_bytes_per_cell']:,} + 1 KiB = "
          f"{mem['target_bytes_per_cell']:,}, over the whole range {verdict}")  # fmt: skip
    if "end_to_end" in figures:
        _print_end_to_end(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def cmd_bench_a1(args: argparse.Namespace) -> int:
    """Verdict latency with and without concurrent A1 PUTs, in one run."""
    from models.artifact import read_artifact
    from ranomaly.bench_a1 import run_a1_bench

    figures = run_a1_bench(
        read_artifact(args.model), args.cells, args.rate, args.seconds, args.concurrency, args.rounds
    )
    print(f"{figures['cells']:,} cells fed at {figures['target_cell_reports_per_s']:,.0f} cell-reports/s, "
          f"{figures['rounds']} rounds of {figures['phase_seconds']:g} s phases, "
          f"detector {figures['model']}")  # fmt: skip
    print(f"{'verdict latency':28s} {'cell-reports/s':>15s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for name, label in (("quiet", "quiet"), ("a1_load", f"{args.concurrency} concurrent A1 PUTs"),
                        ("control", "control: PUTs to another process")):  # fmt: skip
        row = figures[name]
        lat = row["verdict_latency"]
        print(f"{label:28s} {row['cell_reports_per_s']:15,.0f} {lat['p50_ms']:8.3f} {lat['p99_ms']:8.3f} "
              f"{lat['max_ms']:8.3f}")  # fmt: skip
    puts = figures["a1_puts"]
    print(f"p99 moved by {figures['p99_moved_ms']:+.3f} ms (target at most {figures['p99_target_ms']:g} ms): "
          f"{'holds' if figures['holds'] else 'MISSED'}; the load process alone (control) moved it by "
          f"{figures['control_p99_moved_ms']:+.3f} ms")  # fmt: skip
    print(f"A1 PUTs: {puts['answered']:,} answered ({puts['per_s']:,.0f}/s), p50 {puts['latency']['p50_ms']:.1f} ms, "
          f"p99 {puts['latency']['p99_ms']:.1f} ms, errors {puts['errors']} {puts['errors_by_kind']}, "
          f"statuses {puts['statuses']}; changes the engine applied {figures['changes_applied_by_engine']:,}"
          )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def cmd_bench_reports(args: argparse.Namespace) -> int:
    """Incident reports over simulated incidents with the default language model: summaries kept, time per report."""
    from ranomaly.bench_reports import run_reports_bench

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    figures = run_reports_bench(work, work / "report-model", args.incidents, args.seed, args.train_seed, args.cells,
                                args.days)  # fmt: skip

    def s(value: float | None, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f} s"

    kept, attempted = figures["summaries_kept"], figures["summaries_attempted"]
    rejected = ", ".join(f"{why} {n}" for why, n in sorted(figures["rejections"].items())) or "none"
    print(
        f"{figures['incidents']} incident reports; model {figures['model']}, loaded in {s(figures['model_load_s'], 1)}"
    )
    print(f"executive summaries kept: {kept} of the {attempted} the model wrote ({kept / max(attempted, 1):.0%}); "
          f"rejected: {rejected}")  # fmt: skip
    p50, p90 = s(figures["report_s_p50_model_written"]), s(figures["report_s_p90_model_written"])
    print(f"whole report p50 {p50} (p90 {p90}) "
          f"where the model's summary was kept; {s(figures['report_s_p50_model_attempts'])} over every model attempt; "
          f"{s(figures['report_s_p50_template_only'], 3)} with the template alone; load average "
          f"{figures['load_average'][0]:.1f} before, {figures['load_average'][1]:.1f} after")  # fmt: skip
    rc = figures["classifier"]
    print(f"root-cause classifier trained on seed {rc['train_seed']} in {s(rc['train_s'], 1)}: "
          f"{rc['accuracy']:.0%} of these incidents classified right")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


_XAPP_FIELDS = {
    "e2_targets": "e2", "http_host": "host", "a1_port": "a1_port", "datalayer": "datalayer",
    "redis_url": "redis_url", "period_ms": "period_ms", "seed_model_dir": "model", "transport": "transport",
}  # fmt: skip


class _Service(Protocol):
    def stop(self) -> None: ...

    async def run(self) -> None: ...


async def _run_until_signalled(make: Callable[[], _Service]) -> None:
    """Build a service in the running loop and run it until SIGINT or SIGTERM asks it to stop."""
    service = make()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, service.stop)
    await service.run()


def _given(args: argparse.Namespace, fields: dict[str, str]) -> dict[str, Any]:
    """Settings fields (field -> argument name) that were given on the command line."""
    return {field: getattr(args, arg) for field, arg in fields.items() if getattr(args, arg, None) is not None}


def cmd_xapp(args: argparse.Namespace) -> int:
    """Run the Near-RT xApp: E2 subscriptions, scoring, A1-P, incidents."""
    from xapp.app import XappService
    from xapp.errors import XappError
    from xapp.settings import XappSettings

    settings = XappSettings(**_given(args, _XAPP_FIELDS))
    try:
        asyncio.run(_run_until_signalled(lambda: XappService(settings)))
    except XappError as exc:
        log.error("xapp_failed", error=str(exc))
        print(f"ranomaly xapp: {exc}", file=sys.stderr)
        return 1
    return 0


_RAPP_FIELDS = {"http_host": "host", "port": "port", "redis_url": "redis_url", "a1_base_url": "a1_url",
                "a1_api_root": "a1_api_root", "history_dir": "history"}  # fmt: skip


def cmd_rapp(args: argparse.Namespace) -> int:
    """Run the Non-RT rApp: A1 policy management, collector, training, forecasts, reports."""
    from rapp.app import RappService
    from rapp.settings import RappSettings

    settings = RappSettings(**_given(args, _RAPP_FIELDS))
    asyncio.run(_run_until_signalled(lambda: RappService(settings)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulator and a subscriber end to end, against ground truth."""
    from ranomaly.demo import run_demo

    try:
        return asyncio.run(
            run_demo(
                cells=args.cells,
                hours=args.hours,
                seed=args.seed,
                work=Path(args.work),
                model_summaries=not args.template_reports,
                timeout_s=args.timeout_s,
            )  # fmt: skip
        )
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: every process it started is stopped
        print("ranomaly demo: interrupted", file=sys.stderr)
        return 130


def cmd_faults(args: argparse.Namespace) -> int:
    """The hardening issue's fault table against real processes."""
    from ranomaly.faults import main as faults_main

    only = [name for name in (args.only or "").split(",") if name] or None
    try:
        return faults_main(only, args.json, args.work)
    except (KeyboardInterrupt, asyncio.CancelledError):  # every process a row started is stopped by its close
        print("ranomaly faults: interrupted", file=sys.stderr)
        return 130


def cmd_conformance(args: argparse.Namespace) -> int:
    """schemathesis against our interfaces with their specifications (docs/conformance.md)."""
    from ranomaly.conformance import main as conformance_main

    only = [name for name in (args.only or "").split(",") if name] or None
    return conformance_main(only, Path(args.out), args.examples, args.seed)


def _add_world_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help="random seed of the simulated network")
    parser.add_argument("--cells", type=int, help="number of cells")
    parser.add_argument("--start", help="first period of accelerated streams and exports (ISO 8601)")


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", type=int, help="port to listen on (0: any free port)")
    parser.add_argument("--pace", choices=["realtime", "accelerated"], help="wall-clock periods or as fast as read")
    parser.add_argument("--periods", type=int, help="periods per subscription before the stream ends (0: endless)")


def _add_reader_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-duplicate", choices=("error", "first", "last"), default="error",
        help="a cell with two rows at one timestamp: refuse the dataset (default), or keep its first or last row",
    )  # fmt: skip
    parser.add_argument(
        "--timezone", help="IANA zone of timestamps written without one, e.g. Europe/Paris (default: UTC, noted)"
    )
    parser.add_argument(
        "--rename", help="JSON file mapping the export's column names to measurement names (vendor to TS 28.552)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="ranomaly", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of key=value")
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser("sim", help="E2 node simulator").add_subparsers(dest="sim_command", required=True)
    serve = sim.add_parser("serve", help="serve simulated E2 nodes over gRPC")
    _add_world_flags(serve)
    _add_serve_flags(serve)
    serve.set_defaults(handler=cmd_sim_serve)

    export = sim.add_parser("export", help="write a labelled dataset folder")
    _add_world_flags(export)
    export.add_argument("--days", type=float, default=7.0, help="days to export")
    export.add_argument("--period-s", type=float, default=60.0, help="reporting period in seconds")
    export.add_argument("--format", choices=["csv", "parquet"], default="csv", help="KPM file format")
    export.add_argument("--out", required=True, help="dataset folder to write")
    export.set_defaults(handler=cmd_sim_export)

    replay = sim.add_parser("replay", help="serve a dataset folder as E2 nodes over gRPC")
    replay.add_argument("--data", required=True, help="dataset folder")
    _add_serve_flags(replay)
    replay.set_defaults(handler=cmd_sim_replay)

    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    bench_sim = bench.add_parser("sim", help="simulator generation and gRPC streaming rates")
    bench_sim.add_argument("--cells", type=int, default=10_000, help="cells of the large in-process run")
    bench_sim.add_argument("--grpc-cells", type=int, default=2_000, help="cells of the gRPC run")
    bench_sim.add_argument("--grpc-periods", type=int, default=400, help="periods of the gRPC run")
    bench_sim.add_argument("--json", help="also write the figures to this JSON file")
    bench_sim.set_defaults(handler=cmd_bench_sim)

    data = commands.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="what the reader finds in a dataset folder, and what it mends")
    check.add_argument("folder", help="dataset folder")
    _add_reader_flags(check)
    check.set_defaults(handler=cmd_data_check)

    add_signing_commands(commands)
    add_acl_commands(commands)
    add_console_commands(commands)

    train = commands.add_parser("train", help="train the detector on a dataset; write an artifact folder")
    train.add_argument("--data", required=True, help="dataset folder")
    train.add_argument("--out", required=True, help="artifact folder to write")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-forecaster", action="store_true", help="skip the forecaster")
    _add_reader_flags(train)
    train.set_defaults(handler=cmd_train)

    score = commands.add_parser("score", help="score a dataset with an artifact; write the scores CSV")
    score.add_argument("--model", required=True, help="artifact folder")
    score.add_argument("--data", required=True, help="dataset folder")
    score.add_argument("--out", required=True, help="CSV file to write")
    _add_reader_flags(score)
    score.set_defaults(handler=cmd_score)

    alarms = commands.add_parser("alarms", help="alarms per cell and day at each threshold on a dataset")
    alarms.add_argument("--model", required=True, help="artifact folder")
    alarms.add_argument("--data", required=True, help="dataset folder (labels not needed)")
    alarms.add_argument("--budget", type=float, help="alarms per cell and day to keep to: prints the A1 threshold")
    _add_reader_flags(alarms)
    alarms.set_defaults(handler=cmd_alarms)

    evaluate = commands.add_parser("eval", help="all detectors on one split of a labelled dataset")
    evaluate.add_argument("--data", required=True, help="labelled dataset folder")
    evaluate.add_argument("--json", help="also write the figures to this JSON file")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--fast", action="store_true", help="tiny training settings (for smoke tests)")
    evaluate.add_argument("--holdout", help="another labelled dataset (another seed) for the root-cause test")
    _add_reader_flags(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    real = commands.add_parser("eval-real", help="main detector and baselines on real labelled datasets")
    real.add_argument("--root", help="folder of dataset folders (train/, test/); default ../shared/data/real")
    real.add_argument("--datasets", help="comma-separated dataset names under the root; default: all")
    real.add_argument("--json", help="also write the figures to this JSON file")
    real.add_argument("--seed", type=int, default=0)
    real.add_argument("--max-train-periods", type=int, default=10_000, help="latest training periods kept")
    real.add_argument("--fast", action="store_true", help="tiny baseline settings (for smoke tests)")
    real.set_defaults(handler=cmd_eval_real)

    ceiling = commands.add_parser("ceiling", help="what an oracle that knows the normal catches in a simulator export")
    ceiling.add_argument("--data", required=True, help="dataset folder written by 'ranomaly sim export'")
    ceiling.add_argument(
        "--false-alarms", type=float, default=5.0, help="false-alarm runs allowed per 1,000 cell-hours"
    )
    ceiling.set_defaults(handler=cmd_ceiling)

    normal_error = commands.add_parser(
        "normal-error", help="how far the main detector's estimate of normal is from a simulator export's truth"
    )
    normal_error.add_argument("--data", required=True, help="dataset folder written by 'ranomaly sim export'")
    normal_error.set_defaults(handler=cmd_normal_error)

    bench_model = bench.add_parser("model", help="detector throughput in ONNX Runtime on one core")
    bench_model.add_argument("--model", required=True, help="artifact folder (ranomaly train --out)")
    bench_model.add_argument("--json", help="also write the figures to this JSON file")
    bench_model.set_defaults(handler=cmd_bench_model)

    bench_train = bench.add_parser("train", help="training's wall time, CPU time and peak RSS beside a baseline's")
    bench_train.add_argument("--work", default=".bench/train", help="folder for the simulator's exports")
    bench_train.add_argument("--root", help="folder of the real datasets (smd, asd); default ../shared/data/real")
    bench_train.add_argument("--json", help="also write the figures to this JSON file")
    bench_train.set_defaults(handler=cmd_bench_train)

    bench_xapp = bench.add_parser("xapp", help="xApp hot path in process, memory per cell, and end to end")
    bench_xapp.add_argument("--model", required=True, help="artifact folder of the shipped detector")
    bench_xapp.add_argument("--transport", choices=["grpc", "rmr"], default="grpc",
                            help="rmr: decode speeds, the RMR transport beside the gRPC one")  # fmt: skip
    bench_xapp.add_argument("--e2e-model", help="artifact trained at --e2e-period-ms (omit: no end-to-end run)")
    bench_xapp.add_argument("--e2e-cells", type=int, default=10_000)
    bench_xapp.add_argument("--e2e-period-ms", type=int, default=250)
    bench_xapp.add_argument("--e2e-seconds", type=float, default=20.0)
    bench_xapp.add_argument("--redis-url", help="Redis for the end-to-end run (default: a private redis-server)")
    bench_xapp.add_argument("--replicas", type=int, help="only the scaling run: N xApp processes (and 1, the "
                            "baseline) end to end with --e2e-model (default --model) at --e2e-cells, "
                            "--e2e-seconds")  # fmt: skip
    bench_xapp.add_argument("--rounds", type=int, default=1, help="with --replicas: the runs alternate this often")
    bench_xapp.add_argument("--json", help="also write the figures to this JSON file")
    bench_xapp.set_defaults(handler=cmd_bench_xapp)

    bench_a1 = bench.add_parser("a1", help="verdict latency with and without 200 concurrent A1 PUTs")
    bench_a1.add_argument("--model", required=True, help="artifact folder of the shipped detector")
    bench_a1.add_argument("--cells", type=int, default=2_000)
    bench_a1.add_argument("--rate", type=float, default=20_000.0, help="cell-reports fed per second")
    bench_a1.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    bench_a1.add_argument("--concurrency", type=int, default=200, help="A1 PUTs kept in flight")
    bench_a1.add_argument("--rounds", type=int, default=2, help="quiet and loaded phases, alternating, of each")
    bench_a1.add_argument("--json", help="also write the figures to this JSON file")
    bench_a1.set_defaults(handler=cmd_bench_a1)

    bench_reports = bench.add_parser("reports", help="incident reports with the language model on simulated incidents")
    bench_reports.add_argument("--incidents", type=int, default=50)
    bench_reports.add_argument("--seed", type=int, default=21, help="simulator seed of the incidents")
    bench_reports.add_argument("--train-seed", type=int, default=22, help="simulator seed the root-cause model learns")
    bench_reports.add_argument("--cells", type=int, default=60)
    bench_reports.add_argument("--days", type=float, default=2.0, help="simulated days of each seed")
    bench_reports.add_argument("--work", default=".bench/reports", help="folder for the data and the converted model")
    bench_reports.add_argument("--json", help="also write the figures to this JSON file")
    bench_reports.set_defaults(handler=cmd_bench_reports)
    add_console_bench(bench)

    xapp = commands.add_parser("xapp", help="the Near-RT xApp (settings: RANOMALY_XAPP_* variables, these flags)")
    xapp.add_argument("--transport", choices=["grpc", "rmr"], help="E2 and A1: grpc, or rmr inside an O-RAN SC RIC")
    xapp.add_argument("--e2", type=lambda v: [t for t in v.split(",") if t], help="E2 endpoints host:port,...")
    xapp.add_argument("--host", help="address of the HTTP server (A1-P, health, metrics)")
    xapp.add_argument("--a1-port", type=int, help="port of the HTTP server (A1-P, health, metrics)")
    xapp.add_argument("--datalayer", choices=["memory", "redis"], help="shared data layer backend")
    xapp.add_argument("--redis-url", help="redis:// URL of the shared data layer")
    xapp.add_argument("--period-ms", type=int, help="reporting period to subscribe to (the model's period)")
    xapp.add_argument("--model", help="artifact folder published to the registry at start if it lacks the version")
    xapp.set_defaults(handler=cmd_xapp)

    rapp = commands.add_parser("rapp", help="the Non-RT rApp (settings: RANOMALY_RAPP_* variables, these flags)")
    rapp.add_argument("--host", help="address of the HTTP API")
    rapp.add_argument("--port", type=int, help="port of the HTTP API")
    rapp.add_argument("--redis-url", help="redis:// URL of the shared data layer")
    rapp.add_argument("--a1-url", help="base URL of the Near-RT A1-P endpoint (the xApp, an A1 mediator)")
    rapp.add_argument("--a1-api-root", help="A1-P API root: /A1-P/v2 (xApp, mediator) or /a1-p (A1 simulator)")
    rapp.add_argument("--history", help="folder of the KPM history")
    rapp.set_defaults(handler=cmd_rapp)

    demo = commands.add_parser("demo", help="simulator and subscriber end to end, against ground truth")
    demo.add_argument("--cells", type=int, default=60)
    demo.add_argument("--hours", type=float, default=24.0, help="simulated hours to stream")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--work", default=".demo", help="folder for the training data and model (reused)")
    demo.add_argument("--template-reports", action="store_true", help="reports without the language model")
    demo.add_argument(
        "--timeout-s", type=float, default=7200.0,
        help="overall bound in seconds (the demo takes minutes on an idle machine); reached, the demo names what "
        "it waited for and shows that step's log",
    )  # fmt: skip
    demo.set_defaults(handler=cmd_demo)

    faults = commands.add_parser("faults", help="the fault table (bad E2 input, outages, restarts) on real processes")
    faults.add_argument("--only", help="comma-separated rows to run (default: all; names in the table)")
    faults.add_argument("--json", help="also write the table and every row's checks to this JSON file")
    faults.add_argument("--work", help="folder for the processes' logs and files (default: a new temporary folder)")
    faults.set_defaults(handler=cmd_faults)

    conformance = commands.add_parser("conformance", help="schemathesis against our interfaces and their specs")
    conformance.add_argument("--only", help="comma-separated targets to run (default: all), e.g. xapp-a1")
    conformance.add_argument("--out", default=".conformance", help="folder for the runs' files")
    conformance.add_argument("--examples", type=int, default=100, help="test cases per operation")
    conformance.add_argument("--seed", type=int, default=1, help="schemathesis's seed")
    conformance.set_defaults(handler=cmd_conformance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ranomaly` console script."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_json)
    try:
        code: int = args.handler(args)
    except (ValueError, OSError) as exc:
        log.error("failed", command=args.command, error=str(exc))
        print(f"ranomaly: {exc}", file=sys.stderr)
        return 2
    return code
