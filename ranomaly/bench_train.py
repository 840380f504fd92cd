"""`ranomaly bench train`: what training costs, the streaming detector beside the seed autoencoder.

Every training runs in a fresh Python process (`python -m ranomaly.bench_train MODEL FOLDER NAME`) that reads the
dataset folder and fits: the detector as `ranomaly train --no-forecaster` does (models.training.train_artifact,
the artifact written to a temporary folder), the seed autoencoder as `ranomaly eval-real` does
(SeedAutoencoder(seed=0).fit, here on the whole folder). The process reports its wall time and CPU time (user
and system, every thread) from reading to fitted, after its imports, and its peak RSS over its whole life,
imports included. Datasets: the simulator (seed 7) as 60 cells x 7 days at 60 s and as one cell x 30 days at
5 min, and the train/ folders of the real `smd` and `asd` development datasets where they are here.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DETECTOR = "streaming-detector"
AUTOENCODER = "seed-autoencoder"
MODELS = (DETECTOR, AUTOENCODER)
RSS_TARGET_MB = 2048.0
SIM_SEED = 7


@dataclass(frozen=True)
class BenchSet:
    """One dataset of the bench: its name, its folder (None: not here, `why` says so) and the detector's
    wall-time target on an idle machine (None: no target)."""

    name: str
    folder: Path | None
    target_s: float | None
    why: str = ""


def simulated(folder: Path, cells: int, days: float, period_s: float) -> Path:
    """The simulator's export (seed SIM_SEED, parquet) written afresh to folder."""
    from e2sim.export import export_world
    from e2sim.world import World, WorldConfig

    shutil.rmtree(folder, ignore_errors=True)
    export_world(World(WorldConfig(seed=SIM_SEED, n_cells=cells)), folder, days, period_s, "parquet")
    return folder


def real(root: Path, name: str, target_s: float) -> BenchSet:
    """A real development dataset's train/ folder, or a set that says it is not here."""
    folder = root / name / "train"
    if folder.is_dir():
        return BenchSet(name, folder, target_s)
    return BenchSet(name, None, target_s, f"not here ({folder})")


def default_sets(work: Path, root: Path) -> list[BenchSet]:
    """The issue's datasets: the two simulator exports (written under work) and smd and asd under root."""
    return [
        BenchSet("sim 60 cells x 7 d @ 60 s", simulated(work / "sim-60x7d", 60, 7.0, 60.0), 30.0),
        BenchSet("sim 1 cell x 30 d @ 5 min", simulated(work / "sim-1x30d", 1, 30.0, 300.0), None),
        real(root, "smd", 180.0),
        real(root, "asd", 30.0),
    ]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(model: str, folder: str, name: str) -> dict[str, Any]:
    """Train one model on one dataset folder (`name` in progress lines) in this process; its figures (see the
    module's docstring)."""
    from models.progress import heartbeat
    from ranomaly_contracts.dataset import read_dataset, to_arrays

    if model == DETECTOR:
        from models.training import train_artifact
    elif model == AUTOENCODER:
        from models.baselines import SeedAutoencoder
    else:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(MODELS)}")
    began, cpu = time.perf_counter(), _cpu_s()
    with heartbeat(f"bench train: {name}: {model}", stream=sys.stderr):
        dataset = read_dataset(folder)
        if model == DETECTOR:
            with tempfile.TemporaryDirectory() as out:
                train_artifact(dataset, out, seed=0, forecaster=False)
        else:
            SeedAutoencoder(seed=0).fit(to_arrays(dataset))
    wall_s, cpu_s = time.perf_counter() - began, _cpu_s() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    arrays = to_arrays(dataset)
    periods, cells, measurements = arrays.values.shape
    return {"wall_s": wall_s, "cpu_s": cpu_s, "peak_rss_mb": peak_mb, "cells": cells, "periods": periods,
            "measurements": measurements, "reported_cell_periods": int(arrays.reported.sum())}  # fmt: skip


def _measure(model: str, folder: Path, name: str) -> dict[str, Any]:
    """One training in a fresh process; its figures, with the whole process's wall time beside them."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ranomaly.bench_train", model, str(folder), name], stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode} (its stderr is above)"}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**figures, "process_wall_s": time.perf_counter() - began}


def run_train_bench(
    sets: Sequence[BenchSet],
    models: Sequence[str] = MODELS,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every model on every set that is here, each training in its own process; JSON-ready figures. on_row
    sees each row as soon as it is measured."""
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    for bench_set in sets:
        known = {"dataset": bench_set.name, "target_s": bench_set.target_s}
        if bench_set.folder is None:
            add({**known, "missing": bench_set.why})
            continue
        for model in models:
            sys.stderr.write(f"bench train: {bench_set.name}: {model} ...\n")
            sys.stderr.flush()
            add({**known, "model": model, **_measure(model, bench_set.folder, bench_set.name)})
    return {"rows": rows, "load_average": [load_before, os.getloadavg()[0]], "cpus": os.cpu_count(),
            "rss_target_mb": RSS_TARGET_MB}  # fmt: skip


def _target(row: dict[str, Any]) -> str:
    """The detector's targets and whether this run met them; the baseline has none."""
    if row["model"] != DETECTOR:
        return "baseline"
    rss = f"< {RSS_TARGET_MB / 1024:g} GB"
    if row["target_s"] is None:
        return f"{rss}: {'yes' if row['peak_rss_mb'] < RSS_TARGET_MB else 'no'}"
    met = row["wall_s"] <= row["target_s"] and row["peak_rss_mb"] < RSS_TARGET_MB
    return f"<= {row['target_s']:g} s, {rss}: {'yes' if met else 'no'}"


HEADER = (f"{'dataset':27s} {'cells x periods x meas.':>24s} {'model':19s} {'wall s':>7s} {'CPU s':>7s} "
          f"{'peak RSS MB':>11s}  target (idle machine)")  # fmt: skip


def format_row(row: dict[str, Any]) -> str:
    """A training's line of the table, or a dataset's that is not here, or a training's that failed."""
    if "missing" in row:
        return f"{row['dataset']:27s} {row['missing']}"
    if "error" in row:
        return f"{row['dataset']:27s} {'':24s} {row['model']:19s} failed: {row['error']}"
    shape = f"{row['cells']:,} x {row['periods']:,} x {row['measurements']}"
    return (f"{row['dataset']:27s} {shape:>24s} {row['model']:19s} {row['wall_s']:7.1f} {row['cpu_s']:7.1f} "
            f"{row['peak_rss_mb']:11,.0f}  {_target(row)}")  # fmt: skip


def footer(figures: dict[str, Any]) -> str:
    """What the figures cover, and the load the run met."""
    before, after = figures["load_average"]
    return (
        f"wall and CPU: reading the dataset to fitted, in a fresh process after its imports; peak RSS: that "
        f"process's; load average {before:.1f} before, {after:.1f} after; {figures['cpus']} CPUs"
    )


def format_table(figures: dict[str, Any]) -> str:
    """The whole table: header, a line per row, footer."""
    return "\n".join([HEADER, *(format_row(row) for row in figures["rows"]), footer(figures)])


if __name__ == "__main__":
    from ranomaly.logs import configure_logging

    configure_logging("WARNING")
    sys.stdout.write(json.dumps(_child(*sys.argv[1:4])) + "\n")
