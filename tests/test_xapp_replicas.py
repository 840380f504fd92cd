"""Three sharded xApp replicas (and a fourth added) against one simulator and a real Redis, on loopback.

Every cell-period the simulator sends is scored exactly once at the sink (the verdict stream) while one
replica is stopped and restarted and another is added; restarted and moved cells need no warm-up; a policy
made through one replica reads ENFORCED only once every live replica enforces it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from e2sim.server import E2NodeService, StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.sdl import CellStatus
from tests.test_xapp_service import FAST_MS, Running, model_folder, prefix, start_xapp, until
from xapp.datalayer.redis import RedisDataLayer
from xapp.shard.assign import share

__all__ = ["prefix"]  # the fixture: a key namespace of this test in the shared Redis

WARMUP = 3
POLICY = "/A1-P/v2/policytypes/20100/policies/quiet"


class RecordingE2(E2NodeService):
    """The simulator's E2 service, noting every cell-period it hands to the transport."""

    def __init__(self, world: World) -> None:
        super().__init__(world, StreamOptions(realtime=True))
        self.sent: Counter[tuple[str, int]] = Counter()
        self.in_flight_at_close: set[tuple[str, int]] = set()  # a stream's last message when its subscriber left

    async def Subscribe(  # noqa: N802 (the gRPC method's name)
        self, request: pb.SubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscriptionMessage]:
        last: list[tuple[str, int]] = []
        try:
            async for message in super().Subscribe(request, context):
                yield message  # resumes once the transport took it
                if message.HasField("batch"):
                    last = [(cell, ind.header.collection_start_ms) for ind in message.batch.indications
                            for cell in ind.cell_ids]  # fmt: skip
                    self.sent.update(last)
        finally:
            self.in_flight_at_close.update(last)


async def _replica(redis_url: str, prefix: str, target: str, model: Path, index: int) -> Running:
    return await start_xapp(
        RedisDataLayer(redis_url, prefix=prefix), [target], model, FAST_MS, replica_index=index, replica_count=3,
        checkpoint_interval_s=0.5, heartbeat_s=0.2, replica_dead_s=5.0,
    )  # fmt: skip


def _held(xapp: Running) -> set[str]:
    return set(xapp.service.replica.held)


def _holds(xapp: Running, nodes: list[str]) -> Callable[[], bool]:
    return lambda: _held(xapp) == set(nodes)


async def test_replicas_score_every_cell_period_once_through_a_restart_and_an_added_replica(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    world = World(WorldConfig(seed=5, n_cells=24))
    nodes = list(world.node_ids)
    recorder = RecordingE2(world)
    server = grpc.aio.server()
    pb_grpc.add_E2NodeServicer_to_server(recorder, server)
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    model = model_folder(tmp_path, "t1", FAST_MS, warmup=WARMUP)
    replicas: dict[int, Running] = {}
    try:
        for index in range(3):
            replicas[index] = await _replica(redis_url, prefix, target, model, index)
        for index, xapp in replicas.items():
            await until(_holds(xapp, share(nodes, index, 3)), 60, f"replica {index}'s share")
        await until(lambda: _scored(replicas) > 24 * (WARMUP + 3), 60, "every cell past its warm-up")

        # a policy made through replica 0: ENFORCED only once all three enforce this version
        assert (await replicas[0].http("PUT", POLICY, {"enabled": False, "scope": {"nodes": [nodes[1]]}})).status_code
        checks = 0

        async def enforced_everywhere() -> bool:
            nonlocal checks
            status = (await replicas[0].http("GET", POLICY + "/status")).json()["enforceStatus"]
            if status != "ENFORCED":
                return False
            checks += 1
            record = replicas[0].service.store.instance(20100, "quiet")
            for xapp in replicas.values():
                seen = xapp.service.store.find(20100, "quiet")
                assert seen is not None and seen.enforced and seen.order == record.order, "ENFORCED before all"
            return True

        await until(enforced_everywhere, 30, "the policy ENFORCED")
        assert checks == 1

        # replica 1 stops and restarts: its cells resume from their checkpoints
        ones = set(share(nodes, 1, 3))
        await replicas[1].stop()
        replicas[1] = await _replica(redis_url, prefix, target, model, 1)
        await until(lambda: _held(replicas[1]) == ones, 60, "replica 1 back with its share")
        await until(lambda: replicas[1].service.replica.restored_cells > 0, 30, "replica 1's checkpoints restored")

        # a fourth replica (ordinal 3) joins: only the nodes it wins move, with their state
        moved = set(share(nodes, 3, 4))
        assert moved and moved < set(share(nodes, 0, 3)) | set(share(nodes, 2, 3)) | ones
        replicas[3] = await _replica(redis_url, prefix, target, model, 3)
        await until(lambda: _held(replicas[3]) == moved, 60, "the moved nodes taken by replica 3")
        for index in range(3):
            await until(_holds(replicas[index], share(nodes, index, 4)), 30, f"replica {index} shrunk")
        await until(lambda: replicas[3].service.replica.restored_cells > 0, 30, "the moved nodes' state restored")
        mark = _scored(replicas)
        await until(lambda: _scored(replicas) > mark + 24 * 5, 60, "scoring after the move")
    finally:
        for xapp in replicas.values():
            if not xapp.task.done():
                await xapp.stop()
        await server.stop(0)

    seen = await _sink(redis_url, prefix)
    summary = await _summary(redis_url, prefix)
    assert {node for nodes_of in summary.values() for node in nodes_of} == set(nodes), "every node summarised"
    for period, nodes_of in summary.items():
        for node, replicas_of in nodes_of.items():
            assert len(replicas_of) == 1, f"{node} summarised by replicas {replicas_of} in period {period}"
    counts = Counter({key: len(statuses) for key, statuses in seen.items()})
    assert max(counts.values()) == 1, [key for key, n in counts.items() if n > 1][:5]
    unscored = {key for key in recorder.sent if key not in counts} - recorder.in_flight_at_close
    assert not unscored, f"{len(unscored)} cell-periods sent and never scored, e.g. {sorted(unscored)[:3]}"
    assert max(recorder.sent.values()) == 1, "the simulator sent no cell-period twice"
    by_cell: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (cell, period), statuses in seen.items():
        by_cell[cell].append((period, statuses[0]))
    for cell, rows in by_cell.items():
        warming = [period for period, status in sorted(rows)[WARMUP:] if status == CellStatus.WARMING_UP]
        assert not warming, f"{cell} warmed up again after a restart or a move (periods {warming[:3]})"


def _scored(replicas: dict[int, Running]) -> int:
    return sum(x.service.engine.scored_rows for x in replicas.values() if x.service.engine is not None)


async def _summary(redis_url: str, prefix: str) -> dict[int, dict[str, list[int]]]:
    """Period -> node -> the replicas whose network summary entries name it."""
    reader = RedisDataLayer(redis_url, prefix=prefix)
    summary: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    try:
        for record in await reader.replica_data().read_summary():
            entry = json.loads(record)
            for node, stats in entry["nodes"].items():
                assert len(stats["count"]) == len(stats["mean"]) == len(entry["measurements"])
                summary[entry["period_start_ms"]][node].append(entry["replica"])
    finally:
        await reader.close()
    return summary


async def _sink(redis_url: str, prefix: str) -> dict[tuple[str, int], list[int]]:
    """Every verdict in the stream: (cell, period start) -> the statuses written for it."""
    reader = RedisDataLayer(redis_url, prefix=prefix)
    await reader.start()
    seen: dict[tuple[str, int], list[Any]] = defaultdict(list)
    try:
        for _, batch in await reader.read_verdicts():
            for cell, period, status in zip(batch.cell_ids, batch.period_start_ms.tolist(), batch.statuses.tolist(),
                                            strict=True):  # fmt: skip
                seen[cell, period].append(status)
    finally:
        await reader.close()
    return seen
