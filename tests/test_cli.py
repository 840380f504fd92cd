"""The `ranomaly` command line, run as users run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ranomaly.cli import main
from ranomaly_contracts.dataset import read_dataset


def test_sim_export_writes_a_dataset_and_labels(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "ds"
    code = main(["sim", "export", "--seed", "7", "--cells", "6", "--days", "1", "--period-s", "120", "--out", str(out)])
    assert code == 0
    dataset = read_dataset(out)
    assert dataset.period_s == 120 and dataset.kpm["cell_id"].nunique() == 6 and len(dataset.kpm) == 6 * 720
    assert dataset.labels is not None
    assert "of cell-periods anomalous" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_sim_export_refuses_a_bad_period(tmp_path: Path, capsys: object) -> None:
    code = main(["sim", "export", "--cells", "4", "--days", "1", "--period-s", "0.001", "--out", str(tmp_path)])
    assert code == 2
    assert "outside the simulator's range" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_settings_come_from_the_environment_and_flags_win(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "ranomaly",
        "sim",
        "export",
        "--days",
        "0.1",
        "--out",
        str(tmp_path),
        "--seed",
        "3",
    ]
    env = {"RANOMALY_SIM_CELLS": "5", "RANOMALY_SIM_SEED": "99", "PATH": "/usr/bin:/bin"}
    subprocess.run(command, check=True, env=env, capture_output=True)
    meta = read_dataset(tmp_path).meta
    assert meta["cells"] == 5 and meta["generator"]["seed"] == 3


def test_demo_trains_streams_through_the_xapp_and_scores_against_ground_truth(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "demo", "--hours", "12", "--cells", "24",
               "--work", str(tmp_path), "--template-reports"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "17,280 cell-periods scored" in out and "sequence gaps 0" in out, out
    assert "ground truth:" in out and " + " in out and " - " in out
    precision = float(out.split("precision ")[1].split()[0])
    recall = float(out.split("event recall ")[1].split()[0])
    assert precision >= 0.5 and recall >= 0.5, "the xApp finds injected anomalies (incident precision, event recall)"
    assert "720 periods of KPM history collected" in out, "the rApp collected the whole day"
    assert "published and promoted" in out and "A1 policy ranomaly-model reads ENFORCED" in out, out
    assert "# Incident report: cell" in out and "_Written by: template" in out
