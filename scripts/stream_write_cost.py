"""Measure what the xApp's writes cost one redis-server's main thread: the figures behind keeping one KPM and one
verdict stream (docs/scaling.md, One stream per kind).

In a private redis-server, through one client: the KPM and verdict streams written as the data layer's writer
writes a drain (one XADD, an exact XTRIM to 2,000 entries; for KPM also XINFO GROUPS and XRANGE COUNT 1), in
entries of `--cells` cells each (3 a node, every catalogue measurement; 1,024 is a full scoring batch); the KPM
stream read as the rApp's group reads it (XREADGROUP COUNT 200, XACK); the cells hash written as the writer
writes it (HSET of 1,024 cells' latest state a call, over 100,000 cells). Prints the server main thread's CPU
(INFO cpu, used_cpu_*_main_thread, Redis 7) per cell-period, and how many cell-periods a second one core takes
at that cost (the client's own rate is not the limit measured). Usage:
    python scripts/stream_write_cost.py [--cells 1024 64 3] [--entries 2000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import redis
from stream_budget import T0, _indications, _verdicts

from e2sim.catalogue import MEASUREMENTS
from ranomaly.redis_process import RedisServer
from ranomaly_contracts.sdl import RAPP_CONSUMER_GROUP, encode_cell_states, encode_kpm, encode_verdicts

KPM, VERDICTS, CELLS = "ranomaly:kpm", "ranomaly:verdicts", "ranomaly:cells"
LIMIT = 2000  # entries each stream is trimmed to: the writer trims with every write
PIPELINE = 16  # drains a round trip


def _cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def _payloads(cells: int, rng: np.random.Generator) -> tuple[list[bytes], list[bytes]]:
    """Eight periods' verdict and KPM entries of `cells` cells."""
    ids = [f"gnb-{c // 3:05d}-c{c % 3}" for c in range(cells)]
    names = [m.name for m in MEASUREMENTS]
    starts = [T0 + period * 60_000 for period in range(8)]
    verdicts = [encode_verdicts(_verdicts(ids, start, rng)) for start in starts]
    kpm = [encode_kpm(names, _indications(ids, start, period, rng)) for period, start in enumerate(starts)]
    return verdicts, kpm


def _write(client: redis.Redis, key: str, payloads: list[bytes], entries: int) -> float:
    """Server CPU seconds for `entries` drains of one entry each into `key`."""
    client.delete(key)
    if key == KPM:
        client.xgroup_create(KPM, RAPP_CONSUMER_GROUP, id="0", mkstream=True)
    before = _cpu_s(client)
    for first in range(0, entries, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for index in range(first, min(first + PIPELINE, entries)):
            pipe.xadd(key, {"data": payloads[index % len(payloads)]})
            if key == KPM:
                pipe.xinfo_groups(KPM)
            pipe.xtrim(key, maxlen=LIMIT, approximate=False)
            if key == KPM:
                pipe.xrange(KPM, count=1)
        pipe.execute()
    return _cpu_s(client) - before


def _group_read(client: redis.Redis) -> tuple[float, int]:
    """Server CPU seconds to read and acknowledge the KPM stream as the rApp does; entries read."""
    before, read = _cpu_s(client), 0
    while reply := cast(list[Any], client.xreadgroup(RAPP_CONSUMER_GROUP, "rapp-1", {KPM: ">"}, count=200)):
        ids = [entry_id for entry_id, _ in reply[0][1]]
        client.xack(KPM, RAPP_CONSUMER_GROUP, *ids)
        read += len(ids)
    return _cpu_s(client) - before, read


def _cells_hash(client: redis.Redis, rng: np.random.Generator, cells: int = 100_000, per_call: int = 1024) -> float:
    """Server CPU microseconds a field of the cells hash."""
    ids = [f"gnb-{c // 3:05d}-c{c % 3}" for c in range(cells)]
    maps = [encode_cell_states(_verdicts(ids[i : i + per_call], T0, rng), {}) for i in range(0, cells, per_call)]
    before, fields = _cpu_s(client), 0
    for round_ in range(3):
        pipe = client.pipeline(transaction=False)
        for mapping in maps[round_ % 2 :: 2]:
            pipe.hset(CELLS, mapping=mapping)  # type: ignore[arg-type]  # bytes values are fine
            fields += len(mapping)
        pipe.execute()
    return (_cpu_s(client) - before) * 1e6 / fields


def main() -> None:
    """Write, read and print the costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[1024, 64, 3], help="cells an entry")
    parser.add_argument("--entries", type=int, default=2000, help="entries written per stream and size")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            print(f"redis-server {client.info('server')['redis_version']}")  # noqa: T201
            for cells in args.cells:
                verdicts, kpm = _payloads(cells, rng)
                for name, key, payloads in (("verdicts", VERDICTS, verdicts), ("kpm", KPM, kpm)):
                    us = _write(client, key, payloads, args.entries) * 1e6 / (args.entries * cells)
                    print(f"{name:8s} {cells:5d} cells an entry, {len(payloads[0]) / cells:4.0f} B a cell: "  # noqa: T201
                          f"{us:.3f} us a cell-period, {1 / us:5.2f} M cell-periods/s a core")  # fmt: skip
                seconds, read = _group_read(client)
                print(f"kpm group read {cells:5d} cells an entry: "  # noqa: T201
                      f"{seconds * 1e6 / (read * cells):.3f} us a cell-period")  # fmt: skip
            us = _cells_hash(client, rng)
            print(f"cells hash: {us:.3f} us a field (HSET, 1,024 a call), {1 / us:.2f} M fields/s a core")  # noqa: T201
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
