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
