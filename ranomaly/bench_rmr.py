"""`ranomaly bench xapp --transport rmr`: the O-RAN SC RIC transport in process, beside the gRPC transport.

- decode: one-cell RICindications (E2AP + E2SM-KPM format 1, aligned PER) decoded by the fast path and by
  the libraries (pycrate for E2AP, asn1tools for E2SM-KPM), the same messages.
- rmr: one-cell RICindications sent through the fake RMR into the RIC adapter: decode, intake, scoring
  (the trivial model, then the shipped detector), verdicts and writes to the in-memory data layer. Latency
  runs from the adapter's receipt of a drain to its verdicts written. Beside it, on the same cells, the gRPC
  transport as bench_xapp feeds it (8-cell indications, one a stream message).
"""

from __future__ import annotations

import asyncio
import select
import time
from typing import Any

import numpy as np
import structlog

from models.artifact import Artifact
from models.trivial import parsed_trivial
from ranomaly.bench_xapp import CELLS_PER_NODE, T0, feed_grpc, hot_path_engine, percentiles, timed_steady_state
from ranomaly_contracts.e2sm.bench import run_decode_bench
from ranomaly_contracts.e2sm.e2ap import RicIndication, encode_ric_indication
from ranomaly_contracts.e2sm.kpm import encode_indication_header, encode_indication_message_format1
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.policy.handler import A1Handler
from xapp.policy.rmr import A1_POLICY_QUERY, A1RmrAdapter
from xapp.policy.store import PolicyStore
from xapp.ric.adapter import RIC_INDICATION, RicAdapter
from xapp.ric.cells import RicCell
from xapp.ric.fakermr import FakeRmrEndpoint, FakeRmrRouter

_SEND_CHUNK = 256  # messages sent before the event loop lets the adapter drain them


def _payloads(measurements: tuple[str, ...], cells: int, periods: int, period_ms: int) -> list[list[bytes]]:
    """Every cell's RICindication of every period (integer records near a per-cell level), by period."""
    rng = np.random.default_rng(0)
    level = rng.uniform(5, 500, (cells, len(measurements)))
    out = []
    for p in range(periods):
        header = encode_indication_header(T0 + p * period_ms)
        values = np.rint(level * rng.normal(1.0, 0.05, level.shape)).astype(np.int64).tolist()
        out.append([
            encode_ric_indication(RicIndication(
                requestor_id=1, instance_id=c + 1, ran_function_id=2, action_id=1, sequence=p, indication_type="report",
                header=header, message=encode_indication_message_format1(measurements, values[c], period_ms),
                call_process_id=None,
            ))
            for c in range(cells)
        ])  # fmt: skip
    return out


async def _drained(endpoint: FakeRmrEndpoint) -> None:
    while select.select([endpoint.fileno()], [], [], 0)[0]:
        await asyncio.sleep(0)


async def _feed_rmr(artifact: Artifact, payloads: list[list[bytes]], window_ms: float) -> dict[str, Any]:
    """Send every period's payloads through the fake RMR as fast as the adapter takes them."""
    engine, layer = await hot_path_engine(artifact, 1024, window_ms)
    router = FakeRmrRouter(queue_size=4 * _SEND_CHUNK)
    xapp_side, e2term = router.endpoint("xapp"), router.endpoint("e2term")
    router.endpoint("a1mediator")
    router.route(RIC_INDICATION, to="xapp")
    router.route(A1_POLICY_QUERY, to="a1mediator")
    store = PolicyStore(layer)
    await store.load()
    errors = RateLimitedLog(structlog.get_logger(__name__), 60.0)
    adapter = RicAdapter(xapp_side, A1RmrAdapter(A1Handler(store), "bench"), engine.metrics, errors)
    adapter.start()
    cells = len(payloads[0])
    ric_cells = [RicCell(f"n{c // CELLS_PER_NODE}-c{c % CELLS_PER_NODE}", f"n{c // CELLS_PER_NODE}", "00101", c)
                 for c in range(cells)]  # fmt: skip
    intake = adapter.attach(engine, ric_cells, 3)
    for instance, cell in enumerate(ric_cells, start=1):
        intake.bind(instance, cell)

    async def send(period: list[bytes]) -> None:
        for first in range(0, len(period), _SEND_CHUNK):
            for instance, payload in enumerate(period[first : first + _SEND_CHUNK], start=first + 1):
                if not e2term.send(RIC_INDICATION, payload, sub_id=instance):
                    raise RuntimeError("the fake RMR queue overflowed: the adapter did not drain")
            await _drained(xapp_side)

    async def steady() -> None:
        for period in payloads[1:]:
            await send(period)

    rows, seconds, latencies = await timed_steady_state(engine, layer, lambda: send(payloads[0]), steady)
    malformed = int(engine.metrics.decode_errors.labels("malformed")._value.get())
    await adapter.close()
    await layer.close()
    router.close()
    return {
        "cells": cells, "periods_timed": len(payloads) - 1, "cells_per_indication": 1, "batch_window_ms": window_ms,
        "cell_reports": rows, "seconds": seconds, "cell_reports_per_s": rows / seconds, "malformed": malformed,
        "scoring_calls": int(engine.metrics.scoring_calls._value.get()),
        "indication_latency": percentiles(latencies.values),
    }  # fmt: skip


def run_rmr_bench(model: Artifact, cells: int = 2_000, periods: int = 6, window_ms: float = 0.5) -> dict[str, Any]:
    """Decode speeds, then the RMR transport and, on the same cells, the gRPC one, for both models."""
    measurements = tuple(model.manifest.measurements)
    period_ms = round(model.manifest.period_s * 1000)
    began = time.perf_counter()
    payloads = _payloads(measurements, cells, periods, period_ms)
    encode_s = time.perf_counter() - began
    figures: dict[str, Any] = {
        "decode": run_decode_bench(5_000, len(measurements), seed=0),
        "encode_with_libraries_us_per_message": encode_s / (cells * periods) * 1e6,
    }
    trivial = parsed_trivial(measurements, model.manifest.period_s)
    for name, artifact in (("trivial", trivial), ("model", model)):
        figures[f"rmr_{name}"] = asyncio.run(_feed_rmr(artifact, payloads, window_ms)) | {
            "model": artifact.manifest.version
        }
        figures[f"grpc_{name}"] = asyncio.run(feed_grpc(artifact, cells, periods, 1024, window_ms, per_message=1)) | {
            "model": artifact.manifest.version
        }
    return figures
