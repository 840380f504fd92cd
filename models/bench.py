"""`ranomaly bench model`: the exported detector in ONNX Runtime on one core, batched against one cell a
call (the naive baseline), with per-call latency and the state each cell needs."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from models.artifact import GROUP_INPUT, NODE_PERIOD, Artifact, context_groups, load_session, time_features


def _feeds(artifact: Artifact, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    manifest = artifact.manifest
    k = len(manifest.measurements)
    times = time_features(list(manifest.time_features), np.full(batch, 1_767_600_000_000), manifest.utc_offset_h)
    feeds = {
        "x": rng.uniform(0, 100, (batch, k)).astype(np.float32),
        "mask": np.ones((batch, k), dtype=np.float32),
        "time": times,
        "state": np.zeros((batch, manifest.state_size), dtype=np.float32),
    }
    if manifest.context == NODE_PERIOD:  # nodes of three cells, as most are
        feeds[GROUP_INPUT] = context_groups(np.arange(batch) // 3, np.zeros(batch, dtype=np.int64))
    return feeds


def _run(session: Any, feeds: dict[str, np.ndarray], calls: int) -> list[float]:
    for _ in range(5):
        feeds["state"] = session.run(None, feeds)[2]
    latencies = []
    for _ in range(calls):
        began = time.perf_counter()
        feeds["state"] = session.run(None, feeds)[2]
        latencies.append(time.perf_counter() - began)
    return latencies


def bench_model(
    artifact: Artifact, batches: tuple[int, ...] = (1, 8, 64, 256, 1024), seconds: float = 2.0
) -> dict[str, Any]:
    """Cell-reports/s and call latency per batch size, single-threaded."""
    session = load_session(artifact, intra_op_threads=1)
    rng = np.random.default_rng(0)
    results = {}
    for batch in batches:
        feeds = _feeds(artifact, batch, rng)
        probe = _run(session, feeds, 10)
        calls = max(20, int(seconds / max(statistics.median(probe), 1e-6)))
        latencies = sorted(_run(session, feeds, calls))
        median = statistics.median(latencies)
        results[str(batch)] = {
            "cell_reports_per_s": batch / median,
            "call_ms_p50": 1000 * median,
            "call_ms_p99": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        }
    best = max(results.values(), key=lambda r: r["cell_reports_per_s"])
    return {
        "model": artifact.manifest.version,
        "state_bytes_per_cell": 4 * artifact.manifest.state_size,
        "batches": results,
        "speedup_over_one_cell_a_call": best["cell_reports_per_s"] / results["1"]["cell_reports_per_s"],
    }
