"""Three sharded xApp replicas (and a fourth added) against one simulator and a real Redis, on loopback: one
Redis server, and a three-master Redis Cluster.

Every cell-period the simulator sends has exactly one verdict at the sink (the verdict stream) while one replica
goes away and comes back and another is added: on one Redis the replica stops (its last checkpoint written), on
the cluster it is a process of its own that is killed (SIGKILL) after it wrote verdicts its last checkpoint does
not cover. Restarted and moved cells need no warm-up; a policy made through one replica reads ENFORCED only once
every live replica enforces it.
"""

from __future__ import annotations

import subprocess
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from e2sim.server import E2NodeService, StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.network_summary import SummaryEntry
from ranomaly_contracts.sdl import CellStatus
from tests.test_xapp_service import FAST_MS, Running, model_folder, prefix, start_xapp, until
from tests.xapp_process import spawn
from xapp.datalayer.redis import RedisDataLayer
from xapp.shard.assign import share
from xapp.shard.checkpoint import NodeCheckpoint
from xapp.shard.heartbeat import Heartbeat

__all__ = ["prefix"]  # the fixture: a key namespace of this test in the shared Redis

WARMUP = 3
POLICY = "/A1-P/v2/policytypes/20100/policies/quiet"
MAX_GAP = 300  # periods (30 s): a replica back from a stop or a kill fills every period it missed with a gap row
REPLICA: dict[str, Any] = {"checkpoint_interval_s": 0.5, "heartbeat_s": 0.2, "replica_dead_s": 5.0,
                           "max_gap_periods": MAX_GAP}  # fmt: skip
KILLED_CHECKPOINT_S = 1.5  # the killed replica's checkpoints: far apart, so that the kill falls between two


class RecordingE2(E2NodeService):
    """The simulator's E2 service, noting every cell-period it hands to the transport; `sending` False ends
    every stream at its next message (and answers a new one with none)."""

    def __init__(self, world: World) -> None:
        super().__init__(world, StreamOptions(realtime=True))
        self.sent: Counter[tuple[str, int]] = Counter()
        self.sending = True

    async def Subscribe(  # noqa: N802 (the gRPC method's name)
        self, request: pb.SubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscriptionMessage]:
        async for message in super().Subscribe(request, context):
            if not self.sending:
                return
            yield message  # resumes once the transport took it
            if message.HasField("batch"):
                self.sent.update((cell, ind.header.collection_start_ms) for ind in message.batch.indications
                                 for cell in ind.cell_ids)  # fmt: skip


@dataclass(frozen=True)
class Store:
    """The Redis the replicas share: its URL, whether it is a cluster, the test's key namespace."""

    url: str
    cluster: bool
    prefix: str

    def reader(self) -> RedisDataLayer:
        """A data layer on it (a replica's, or the test's to read what the replicas wrote)."""
        return RedisDataLayer(self.url, prefix=self.prefix, cluster=self.cluster)


async def _replica(store: Store, target: str, model: Path, index: int) -> Running:
    return await start_xapp(store.reader(), [target], model, FAST_MS, replica_index=index, replica_count=3, **REPLICA)


def _child(store: Store, target: str, model: Path, index: int, log: Path) -> subprocess.Popen[bytes]:
    """A replica in a process of its own, to be killed."""
    spec = {"redis_url": store.url, "cluster": store.cluster, "prefix": store.prefix, "e2_targets": [target],
            "http_host": "127.0.0.1", "a1_port": 0, "period_ms": FAST_MS, "seed_model_dir": model,
            "model_poll_s": 0.2, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "replica_index": index,
            "replica_count": 3, **REPLICA, "checkpoint_interval_s": KILLED_CHECKPOINT_S}  # fmt: skip
    return spawn(spec, log)


def _held(xapp: Running) -> set[str]:
    return set(xapp.service.replica.held)


def _holds(xapp: Running, nodes: list[str]) -> Callable[[], bool]:
    return lambda: _held(xapp) == set(nodes)


@pytest.mark.parametrize("cluster", [False, True], ids=["redis-stop", "cluster-kill"])
async def test_replicas_score_every_cell_period_once_while_one_goes_and_comes_back_and_another_joins(
    cluster: bool, request: pytest.FixtureRequest, prefix: str, tmp_path: Path
) -> None:
    store = Store(request.getfixturevalue("redis_cluster_url" if cluster else "redis_url"), cluster, prefix)
    world = World(WorldConfig(seed=5, n_cells=24))
    nodes = list(world.node_ids)
    recorder = RecordingE2(world)
    server = grpc.aio.server()
    pb_grpc.add_E2NodeServicer_to_server(recorder, server)
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    model = model_folder(tmp_path, "t1", FAST_MS, warmup=WARMUP)
    reader = store.reader()
    replicas: dict[int, Running] = {}
    child: subprocess.Popen[bytes] | None = None
    ones = share(nodes, 1, 3)
    try:
        for index in (0, 2):
            replicas[index] = await _replica(store, target, model, index)
        if cluster:
            child = _child(store, target, model, 1, tmp_path / "replica-1.log")
            await until(lambda: _heartbeat_holds(reader, 1, ones), 60, "replica 1 (a process) holding its share")
        else:
            replicas[1] = await _replica(store, target, model, 1)
        for index, xapp in replicas.items():
            await until(_holds(xapp, share(nodes, index, 3)), 60, f"replica {index}'s share")
        await until(lambda: _every_cell_has(reader, WARMUP + 3), 60, "every cell past its warm-up")

        # replica 1 goes and comes back: its cells resume from their checkpoints
        if child is None:
            await replicas[1].stop()
        else:
            killed = await _kill_past_checkpoint(reader, child, ones)
            assert await reader.replica_data().checkpoints(ones) == killed, "no checkpoint between kill and check"
        replicas[1] = await _replica(store, target, model, 1)
        await until(_holds(replicas[1], ones), 60, "replica 1 back with its share")
        await until(lambda: replicas[1].service.replica.restored_cells > 0, 30, "replica 1's checkpoints restored")

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

        # a fourth replica (ordinal 3) joins: only the nodes it wins move, with their state
        moved = set(share(nodes, 3, 4))
        assert moved and moved < set(share(nodes, 0, 3)) | set(share(nodes, 2, 3)) | set(ones)
        replicas[3] = await _replica(store, target, model, 3)
        await until(lambda: _held(replicas[3]) == moved, 60, "the moved nodes taken by replica 3")
        for index in range(3):
            await until(_holds(replicas[index], share(nodes, index, 4)), 30, f"replica {index} shrunk")
        await until(lambda: replicas[3].service.replica.restored_cells > 0, 30, "the moved nodes' state restored")
        mark = _scored(replicas)
        await until(lambda: _scored(replicas) > mark + 24 * 5, 60, "scoring after the move")
        # the simulator stops, and the replicas score what the transport took before they stop: a message
        # handed over just before a replica stopped would otherwise count as sent and never scored
        recorder.sending = False

        async def all_sent_scored() -> bool:
            return set(recorder.sent) <= set(await _sink(reader))

        await until(all_sent_scored, 60, "every cell-period sent scored")
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(10)
        for xapp in replicas.values():
            if not xapp.task.done():
                await xapp.stop()
        await server.stop(0)

    try:
        seen = await _sink(reader)
        summary = await _summary(reader)
    finally:
        await reader.close()
    assert {node for nodes_of in summary.values() for node in nodes_of} == set(nodes), "every node summarised"
    for period, nodes_of in summary.items():
        for node, replicas_of in nodes_of.items():
            assert len(replicas_of) == 1, f"{node} summarised by replicas {replicas_of} in period {period}"
    counts = Counter({key: len(statuses) for key, statuses in seen.items()})
    twice = sorted(key for key, n in counts.items() if n > 1)
    assert not twice, f"{len(twice)} cell-periods with more than one verdict, e.g. {twice[:3]}"
    unscored = set(recorder.sent) - set(counts)
    assert not unscored, f"{len(unscored)} cell-periods sent and never scored, e.g. {sorted(unscored)[:3]}"
    assert max(recorder.sent.values()) == 1, "the simulator sent no cell-period twice"
    by_cell: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (cell, period), statuses in seen.items():
        by_cell[cell].append((period, statuses[0]))
    for cell, rows in by_cell.items():
        warming = [period for period, status in sorted(rows)[WARMUP:] if status == CellStatus.WARMING_UP]
        assert not warming, f"{cell} warmed up again after a restart or a move (periods {warming[:3]})"


async def _heartbeat_holds(reader: RedisDataLayer, ordinal: int, nodes: list[str]) -> bool:
    record = (await reader.replica_data().heartbeats()).get(ordinal)
    return record is not None and set(Heartbeat.decode(record).nodes) == set(nodes)


async def _every_cell_has(reader: RedisDataLayer, periods: int) -> bool:
    per_cell = Counter(cell for cell, _ in await _sink(reader))
    return len(per_cell) == 24 and min(per_cell.values()) >= periods


async def _kill_past_checkpoint(
    reader: RedisDataLayer, child: subprocess.Popen[bytes], nodes: list[str]
) -> dict[str, bytes]:
    """SIGKILL the replica once every cell of its nodes has verdicts of two periods its last checkpoint does not
    cover (that checkpoint unchanged around the look); the checkpoint records it was killed past."""
    data = reader.replica_data()
    killed: dict[str, bytes] = {}

    async def past() -> bool:
        records = await data.checkpoints(nodes)
        if set(records) != set(nodes):
            return False
        owed: dict[str, int] = {}
        for record in records.values():
            checkpoint = NodeCheckpoint.decode(record)
            owed.update(zip(checkpoint.cell_ids, checkpoint.expected_ms.tolist(), strict=True))
        later = Counter(cell for cell, period in await _sink(reader) if cell in owed and period >= owed[cell])
        if min(later[cell] for cell in owed) < 2 or await data.checkpoints(nodes) != records:
            return False
        child.kill()
        killed.update(records)
        return True

    await until(past, 60, "replica 1 scoring two periods past its last checkpoint")
    child.wait(10)
    return killed


def _scored(replicas: dict[int, Running]) -> int:
    return sum(x.service.engine.scored_rows for x in replicas.values() if x.service.engine is not None)


async def _summary(reader: RedisDataLayer) -> dict[int, dict[str, list[int]]]:
    """Period -> node -> the replicas whose network summary entries name it."""
    summary: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for record in await reader.replica_data().read_summary():
        entry = SummaryEntry.decode(record)
        assert entry.count.shape == entry.mean.shape == (len(entry.nodes), len(entry.measurements))
        for node in entry.nodes:
            summary[entry.period_start_ms][node].append(entry.replica)
    return summary


async def _sink(reader: RedisDataLayer) -> dict[tuple[str, int], list[int]]:
    """Every verdict in the stream: (cell, period start) -> the statuses written for it."""
    seen: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for _, batch in await reader.read_verdicts():
        for cell, period, status in zip(batch.cell_ids, batch.period_start_ms.tolist(), batch.statuses.tolist(),
                                        strict=True):  # fmt: skip
            seen[cell, period].append(status)
    return seen
