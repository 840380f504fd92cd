"""Measure what an hour of the xApp's streams takes in Redis, per cell-period: the figures behind the default
stream budgets (xapp/datalayer/bounds.py).

Writes `--periods` periods of `--cells` cells (3 a node, every catalogue measurement, scoring batches of
1,024 cells, one drain a batch) through the Redis data layer into a private redis-server, with budgets
too large to trim, then prints MEMORY USAGE (every node counted) of each stream. Usage:
    python scripts/stream_budget.py [--cells 10000] [--periods 60]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import numpy as np
import redis

from e2sim.catalogue import MEASUREMENTS
from ranomaly.redis_process import RedisServer
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import Attribution, IncidentEvent, VerdictBatch
from xapp.datalayer.redis import RedisDataLayer

PERIOD_MS = 60_000
T0 = 1_767_225_600_000
BATCH = 1024
INCIDENT_EVENTS = 1000


def _verdicts(cells: list[str], start: int, rng: np.random.Generator) -> VerdictBatch:
    n, k = len(cells), len(MEASUREMENTS)
    return VerdictBatch(
        model_version="2026-01-01T00:00:00Z", measurements=tuple(m.name for m in MEASUREMENTS),
        cell_ids=cells, node_ids=[c.rsplit("-", 1)[0] for c in cells],
        period_start_ms=np.full(n, start, dtype=np.int64), scores=rng.normal(0, 3, n).astype(np.float32),
        statuses=np.ones(n, dtype=np.uint8), deviations=rng.normal(0, 1, (n, k)).astype(np.float32),
        received_ms=start + PERIOD_MS + rng.integers(0, 500, n),
    )  # fmt: skip


def _indications(cells: list[str], start: int, sequence: int, rng: np.random.Generator) -> list[pb.Indication]:
    k = len(MEASUREMENTS)
    out = []
    for first in range(0, len(cells), 3):
        node_cells = cells[first : first + 3]
        header = pb.IndicationHeader(node_id=node_cells[0].rsplit("-", 1)[0], collection_start_ms=start,
                                     granularity_period_ms=PERIOD_MS, sequence_number=sequence)  # fmt: skip
        values = (rng.lognormal(3, 2, len(node_cells) * k)).astype(np.float32).tolist()
        out.append(pb.Indication(header=header, cell_ids=node_cells, values=values))
    return out


def _incident(i: int) -> IncidentEvent:
    names = [m.name for m in MEASUREMENTS[:3]]
    return IncidentEvent(
        event="update", incident_id=f"gnb-{i:04d}-c0/{T0}", cell_id=f"gnb-{i:04d}-c0", node_id=f"gnb-{i:04d}",
        opened_ms=T0, period_start_ms=T0 + 5 * PERIOD_MS, score=11.25, peak_score=14.5,
        attribution=tuple(Attribution(name, 1 / 3, 4.5) for name in names), model_version="2026-01-01T00:00:00Z",
    )  # fmt: skip


async def _write(url: str, cells: int, periods: int) -> None:
    layer = RedisDataLayer(url, verdict_stream_bytes=1 << 40, incident_stream_bytes=1 << 40, kpm_stream_bytes=1 << 40)
    await layer.start()
    rng = np.random.default_rng(1)
    ids = [f"gnb-{c // 3:04d}-c{c % 3}" for c in range(cells)]
    names = [m.name for m in MEASUREMENTS]
    for period in range(periods):
        start = T0 + period * PERIOD_MS
        for first in range(0, cells, BATCH):
            chunk = ids[first : first + BATCH]
            layer.write_verdicts(_verdicts(chunk, start, rng))
            layer.forward_kpm(names, _indications(chunk, start, period, rng))
            assert await layer.flush(60)
    for i in range(INCIDENT_EVENTS):
        layer.write_incident(_incident(i))
    assert await layer.flush(60)
    await layer.close()


def main() -> None:
    """Write the streams and print what they take."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--periods", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            asyncio.run(_write(server.url, args.cells, args.periods))
            client = redis.Redis.from_url(server.url)
            cell_periods = args.cells * args.periods
            streams = (("kpm", cell_periods, "a cell-period"), ("verdicts", cell_periods, "a cell-period"),
                       ("incidents", INCIDENT_EVENTS, "an event"))  # fmt: skip
            for name, count, unit in streams:
                key = f"ranomaly:{name}"
                memory = int(client.memory_usage(key, samples=0) or 0)
                line = f"{name}: {client.xlen(key)} entries, {memory / 1e6:.1f} MB, {memory / count:.1f} bytes {unit}"
                print(line)  # noqa: T201
            print(f"redis-server {client.info('server')['redis_version']}, {cell_periods} cell-periods")  # noqa: T201
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
