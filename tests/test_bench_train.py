"""`ranomaly bench train` on a tiny simulator export: a fresh process per training, positive finite figures,
a table row per training (each as soon as it is measured) and a line for a dataset that is not here. The
seed autoencoder alone: the detector's fixed cost (its ONNX export) takes most of a minute on a busy machine."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ranomaly.bench_train import AUTOENCODER, BenchSet, format_table, real, run_train_bench, simulated


def test_bench_train_tiny(tmp_path: Path) -> None:
    folder = simulated(tmp_path / "tiny", cells=3, days=1.0, period_s=60.0)
    sets = [BenchSet("tiny", folder, 30.0), real(tmp_path / "nowhere", "smd", 180.0)]
    seen: list[dict[str, Any]] = []
    figures = run_train_bench(sets, models=(AUTOENCODER,), on_row=seen.append)
    assert seen == figures["rows"]

    trained, missing = figures["rows"]
    assert trained["model"] == AUTOENCODER and "error" not in trained
    assert (trained["cells"], trained["periods"]) == (3, 1440) and trained["measurements"] > 0
    for key in ("wall_s", "cpu_s", "peak_rss_mb", "process_wall_s"):
        assert math.isfinite(trained[key]) and trained[key] > 0, key
    assert missing["missing"].startswith("not here")

    lines = format_table(figures).splitlines()
    assert lines[0].split()[:2] == ["dataset", "cells"] and "peak RSS MB" in lines[0]
    assert lines[1].startswith("tiny") and "3 x 1,440 x" in lines[1] and lines[1].endswith("baseline")
    assert lines[2].startswith("smd") and "not here" in lines[2]
    assert lines[3].startswith("wall and CPU") and "load average" in lines[3]
