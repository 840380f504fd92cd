"""`ranomaly bench xapp --replicas N`: the scaling run end to end at a tiny size, and its sink counts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from e2sim.catalogue import MEASUREMENTS
from models.artifact import write_artifact
from models.trivial import trivial_artifact
from ranomaly.bench_replicas import count_sink
from ranomaly.cli import main

PERIOD_MS = 100


def test_two_replicas_score_every_cell_period_sent_once_beside_one(tmp_path: Path, capsys: object) -> None:
    fields, onnx = trivial_artifact([m.name for m in MEASUREMENTS], PERIOD_MS / 1000, warmup_periods=2)
    write_artifact(tmp_path / "model", onnx, fields)
    out = tmp_path / "figures.json"
    code = main(["--log-level", "WARNING", "bench", "xapp", "--model", str(tmp_path / "model"), "--replicas", "2",
                 "--e2e-cells", "24", "--e2e-period-ms", str(PERIOD_MS), "--e2e-seconds", "2",
                 "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    assert code == 0, printed
    figures = json.loads(out.read_text())
    assert [run["replicas"] for run in figures["runs"]] == [1, 2] and figures["consistent"]
    for run in figures["runs"]:
        sink = run["sink"]
        assert sink["sent"] == sink["scored"] > 0 and sink["lost"] == sink["scored_twice"] == sink["unexpected"] == 0
        rows = run["per_replica"]
        assert [row["replica"] for row in rows] == list(range(run["replicas"]))
        assert sum(row["cells"] for row in rows) == 24 and all(row["cell_reports"] > 0 for row in rows)
        assert run["total"]["cpu_s"] > 0 and run["total"]["rows_dropped_late"] == 0
    if len(os.sched_getaffinity(0)) >= 2:
        assert len(set(figures["runs"][1]["cores"])) == 2, "each replica on a core of its own"
    assert figures["cpu_per_cell_report_ratio"] > 0
    assert "every cell-period sent was scored once" in printed and "ratio" in printed


def test_the_sink_counts_lost_repeated_and_unsent_cell_periods() -> None:
    sent = {("a", 0), ("a", 100), ("b", 0)}
    assert count_sink(sent, [("a", 0), ("b", 0), ("a", 100)]).consistent
    counts = count_sink(sent, [("a", 0), ("a", 0), ("b", 0), ("c", 0)])
    assert (counts.lost, counts.scored_twice, counts.unexpected, counts.consistent) == (1, 1, 1, False)
