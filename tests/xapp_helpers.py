"""Building blocks for xApp tests: hand-made indications, an engine on the trivial model, a policy store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog

from models.trivial import parsed_trivial
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.datalayer.base import DataLayer
from xapp.enforcement import StorePolicies
from xapp.engine import Engine, HotPathTuning
from xapp.metrics import XappMetrics
from xapp.policy.store import PolicyStore
from xapp.runtime import ModelRuntime

MEASUREMENTS = ("m.a", "m.b", "m.c")
PERIOD_MS = 60_000
T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a period boundary


def indication(node: str, period: int, cells: dict[str, Sequence[float]], sequence: int | None = None) -> pb.Indication:
    """One node's indication for period index `period`; NaN values become "no value" records."""
    flat = np.array([v for values in cells.values() for v in values], dtype=np.float32)
    missing = np.flatnonzero(np.isnan(flat))
    flat[missing] = 0.0
    return pb.Indication(
        header=pb.IndicationHeader(
            node_id=node,
            collection_start_ms=T0 + period * PERIOD_MS,
            granularity_period_ms=PERIOD_MS,
            sequence_number=period if sequence is None else sequence,
        ),
        cell_ids=list(cells),
        values=flat.tolist(),
        no_value=missing.tolist(),
    )


def batch(*indications: pb.Indication) -> pb.IndicationBatch:
    """A stream message."""
    return pb.IndicationBatch(indications=list(indications))


def accepted(nodes: dict[str, Sequence[str]]) -> pb.SubscriptionAccepted:
    """The message that opens a stream of these nodes and cells."""
    return pb.SubscriptionAccepted(
        subscription_id="test",
        measurements=list(MEASUREMENTS),
        reporting_period_ms=PERIOD_MS,
        nodes=[pb.NodeInfo(node_id=n, cells=[pb.CellInfo(cell_id=c) for c in cs]) for n, cs in nodes.items()],
    )


def trivial_runtime(version: str = "trivial-1", threshold: float = 5.0, warmup: int = 2) -> ModelRuntime:
    """The trivial model (score: largest move since the last report) as a runtime."""
    artifact = parsed_trivial(MEASUREMENTS, PERIOD_MS / 1000, version=version, threshold=threshold,
                              warmup_periods=warmup)  # fmt: skip
    return ModelRuntime.load(artifact, MEASUREMENTS, PERIOD_MS)


async def engine_on(datalayer: DataLayer, runtime: ModelRuntime | None = None, **tuning: object) -> Engine:
    """An engine on the trivial model with a loaded policy store over the data layer; batches flush at once."""
    store = PolicyStore(datalayer)
    await store.load()
    options = {"period_ms": PERIOD_MS, "batch_window_ms": 0.0, **tuning}
    engine = Engine(
        MEASUREMENTS, runtime or trivial_runtime(), StorePolicies(store), datalayer, XappMetrics(),
        HotPathTuning(**options),  # type: ignore[arg-type]
        RateLimitedLog(structlog.get_logger("xapp-test"), 60.0),
    )  # fmt: skip
    engine.refresh_policies()
    return engine
