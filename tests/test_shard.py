"""Sharded replicas, piece by piece: the rendezvous assignment, node checkpoints and the replicas' heartbeats."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
from structlog.testing import capture_logs

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.network_summary import SummaryEntry
from ranomaly_contracts.sdl import CellStatus, VerdictBatch
from tests.xapp_helpers import PERIOD_MS, T0, accepted, batch, engine_on, indication, trivial_runtime
from xapp.datalayer.memory import MemoryDataLayer
from xapp.engine import Engine
from xapp.policy.handler import A1Handler
from xapp.policy.store import PolicyStore
from xapp.shard.assign import owner, share
from xapp.shard.checkpoint import NodeCheckpoint, capture, encode_all, restore, resume_incidents, verdicts_since
from xapp.shard.heartbeat import Heartbeat, Peers
from xapp.shard.replica import Replica
from xapp.shard.summary import NetworkSummary

NODES = [f"gnb-{i:04d}" for i in range(3000)]


def test_every_node_has_one_owner_and_the_shares_are_balanced() -> None:
    shares = [share(NODES, index, 3) for index in range(3)]
    assert sorted(node for part in shares for node in part) == sorted(NODES)
    for part in shares:
        assert 0.29 < len(part) / len(NODES) < 0.38, [len(p) for p in shares]
    assert share(NODES, 0, 1) == NODES


def test_the_assignment_is_the_same_whatever_order_or_process() -> None:
    shuffled = random.Random(3).sample(NODES, len(NODES))
    assert {n: owner(n, 5) for n in shuffled} == {n: owner(n, 5) for n in NODES}
    assert owner("gnb-000", 3) == 0 and owner("gnb-008", 3) == 2, "a documented fixed point (docs/scaling.md)"


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_a_replica_added_takes_only_its_own_share_and_removing_it_moves_them_back(count: int) -> None:
    before = {n: owner(n, count) for n in NODES}
    after = {n: owner(n, count + 1) for n in NODES}
    moved = [n for n in NODES if before[n] != after[n]]
    assert all(after[n] == count for n in moved), "every moved node goes to the new replica, none between old ones"
    assert abs(len(moved) / len(NODES) - 1 / (count + 1)) < 0.04, "about 1/(N+1) of the nodes move"
    assert [n for n in NODES if after[n] == count] == moved


CALM = (10.0, 20.0, 30.0)


async def _fed(layer: MemoryDataLayer, periods: range, version: str = "trivial-1") -> Engine:
    engine = await engine_on(layer, trivial_runtime(version))
    engine.on_accepted(accepted({"n1": ["c1", "c2"], "n2": ["c3"]}))
    for p in periods:
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})))
    engine.flush()
    return engine


async def _statuses(layer: MemoryDataLayer) -> list[tuple[str, int, int]]:
    await layer.flush()
    out = []
    for _, vb in await layer.read_verdicts():
        assert isinstance(vb, VerdictBatch)
        for i, cell in enumerate(vb.cell_ids):
            out.append((cell, (int(vb.period_start_ms[i]) - T0) // PERIOD_MS, int(vb.statuses[i])))
    return out


async def test_a_restored_node_scores_without_warm_up_and_continues_its_periods() -> None:
    first = MemoryDataLayer()
    await first.start()
    engine = await _fed(first, range(3))  # warm-up is 2 periods: warm from period 2 on
    records = encode_all(capture(engine, ["n1", "n2"]))
    checkpoint = NodeCheckpoint.decode(records["n1"])
    assert checkpoint.cell_ids == ["c1", "c2"] and checkpoint.seen.tolist() == [3, 3]
    assert checkpoint.expected_ms.tolist() == [T0 + 3 * PERIOD_MS] * 2

    second = MemoryDataLayer()
    await second.start()
    resumed = await engine_on(second)
    resumed.on_accepted(accepted({"n1": ["c1", "c2"], "n2": ["c3"]}))
    assert restore(resumed, checkpoint) is None  # n1 only: n2 starts afresh
    restored, original = resumed.table.slot_of["c1"], engine.table.slot_of["c1"]
    np.testing.assert_array_equal(resumed.model.state[restored], engine.model.state[original])
    for p in (3, 4):
        resumed.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})))
    resumed.flush()
    got = await _statuses(second)
    assert sorted((c, p) for c, p, _ in got) == [(c, p) for c in ("c1", "c2", "c3") for p in (3, 4)]
    assert {s for c, _, s in got if c != "c3"} == {CellStatus.NORMAL}, "the restored cells need no warm-up"
    assert [s for c, _, s in got if c == "c3"] == [CellStatus.WARMING_UP] * 2, "a node without checkpoint warms up"


async def test_a_node_whose_holder_was_killed_resumes_after_its_last_verdict_not_its_checkpoint() -> None:
    layer = MemoryDataLayer()
    await layer.start()
    engine = await _fed(layer, range(3))
    await layer.flush()
    data = layer.replica_data()
    periodic = NodeCheckpoint.decode(encode_all(capture(engine, ["n1"], await data.verdict_position()))["n1"])
    assert periodic.expected_ms.tolist() == [T0 + 3 * PERIOD_MS] * 2
    for p in (3, 4):  # the holder scores on past its checkpoint (n2 too), and is killed
        engine.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM}), indication("n2", p, {"c3": CALM})))
    engine.flush()
    await layer.flush()

    scored = (await verdicts_since(data, [periodic], page=1)).latest
    assert scored == {"c1": T0 + 4 * PERIOD_MS, "c2": T0 + 4 * PERIOD_MS}, "n1's cells only, every page read"
    let_go = await verdicts_since(data, [replace(periodic, verdicts_after=None)])
    assert let_go.latest == {} and let_go.batches == [], "a node let go: nothing after"
    resumed = await engine_on(layer)
    resumed.on_accepted(accepted({"n1": ["c1", "c2"]}))
    assert restore(resumed, periodic, scored) is None
    table = resumed.table
    assert [int(table.expected_ms[table.slot_of[c]]) for c in ("c1", "c2")] == [T0 + 5 * PERIOD_MS] * 2


JUMPS = ((10.0, 20.0, 30.0), (40.0, 20.0, 30.0))  # the trivial model's score: 30 a period, over its threshold 5


async def test_incidents_of_a_killed_holder_are_continued_and_closed_under_their_own_ids_by_the_next() -> None:
    """c1's incident opens before the holder's last periodic checkpoint, c2's after it; the holder is killed
    in both; the next holder closes both once the cells are calm, and opens none of its own."""
    layer = MemoryDataLayer()
    await layer.start()
    holder = await engine_on(layer)
    holder.on_accepted(accepted({"n1": ["c1", "c2"]}))
    for p in range(9):
        c1 = JUMPS[p % 2] if p >= 3 else CALM
        c2 = JUMPS[p % 2] if p >= 6 else CALM
        holder.on_batch(batch(indication("n1", p, {"c1": c1, "c2": c2})))
        if p == 5:
            holder.flush()
            await layer.flush()
            data = layer.replica_data()
            periodic = NodeCheckpoint.decode(encode_all(capture(holder, ["n1"], await data.verdict_position()))["n1"])
    holder.flush()  # ... and killed: its open incidents stay open in the stream
    await layer.flush()
    opened = {e.cell_id: e.incident_id for _, e in await layer.read_incidents() if e.event == "open"}
    assert set(opened) == {"c1", "c2"}
    assert list(periodic.incidents) == [0], "the checkpoint carries c1's open incident, c2 had none yet"

    since = await verdicts_since(data, [periodic])
    successor = await engine_on(layer)
    successor.on_accepted(accepted({"n1": ["c1", "c2"]}))
    assert restore(successor, periodic, since.latest) is None
    resume_incidents(successor, since, {"c1", "c2"})
    assert successor.incidents.open_count == 2, "both incidents are open again, c2's from the verdicts replayed"
    for p in range(9, 14):
        successor.on_batch(batch(indication("n1", p, {"c1": CALM, "c2": CALM})))
    successor.flush()
    await layer.flush()
    events = [e for _, e in await layer.read_incidents()]
    closed = {e.cell_id: e.incident_id for e in events if e.event == "close"}
    assert closed == opened, "each incident closed under the id its first holder opened it with"
    assert sum(e.event == "open" for e in events) == 2, "the successor opened none of its own"


async def test_a_checkpoint_of_another_model_version_is_not_restored() -> None:
    layer = MemoryDataLayer()
    await layer.start()
    engine = await _fed(layer, range(3), version="trivial-old")
    checkpoint = NodeCheckpoint.decode(encode_all(capture(engine, ["n1"]))["n1"])
    other = await engine_on(layer)
    problem = restore(other, checkpoint)
    assert problem is not None and "trivial-old" in problem
    assert len(other.table) == 0
    with pytest.raises(ValueError, match="not a checkpoint"):
        NodeCheckpoint.decode(b'{"v": 2}')
    with pytest.raises(ValueError, match="checkpoint format 1, this xApp reads 2"):
        NodeCheckpoint.decode(b'{"v": 1, "node": "n1"}')  # an earlier xApp's JSON record: its cells warm up
    with pytest.raises(ValueError, match="disagree in length"):
        NodeCheckpoint.decode(encode_all(capture(engine, ["n1"]))["n1"][:-4])
    carrying = replace(checkpoint, verdicts_after="1-0", incidents={0: [1.0] * 7}, attributed=("m.a",))
    with pytest.raises(ValueError, match="incident row does not hold 7 values and one per measurement"):
        NodeCheckpoint.decode(carrying.encode())
    with pytest.raises(ValueError, match="names a cell the record does not hold"):
        NodeCheckpoint.decode(replace(carrying, incidents={5: [1.0] * 8}).encode())


async def test_taking_many_nodes_logs_their_checkpoints_once_per_outcome_not_once_a_node() -> None:
    layer = MemoryDataLayer()
    await layer.start()
    old = await _fed(layer, range(3))
    data = layer.replica_data()
    await data.put_checkpoints(encode_all(capture(old, ["n1"])))  # readable: restored
    await data.put_checkpoints({f"m{i}": b'{"v": 1, "node": "m"}' for i in range(40)})  # an earlier xApp's format
    store = PolicyStore(layer)
    await store.load()
    replica = Replica(data, store, 0, 1, checkpoint_interval_s=30.0, heartbeat_s=1.0, dead_s=5.0)
    with capture_logs() as logs:
        await replica.share(await engine_on(layer), ["n1", *(f"m{i}" for i in range(40))])
    (unreadable,) = [line for line in logs if line["event"] == "checkpoints_unreadable"]
    assert unreadable["nodes"] == 40 and unreadable["first"] == ["m0", "m1", "m2", "m3", "m4"]
    assert "checkpoint format 1, this xApp reads 2" in unreadable["problem"]
    (restored,) = [line for line in logs if line["event"] == "checkpoints_restored"]
    assert restored["nodes"] == 1 and replica.restored_cells == 2


def test_only_live_replicas_that_lag_hold_a_policy_back() -> None:
    peers = Peers(ordinal=0, dead_s=5.0)
    now = 1_000_000
    beats = {
        0: Heartbeat(0, 3, now, ["a"], {}).encode(),  # this replica: never its own peer
        1: Heartbeat(1, 3, now - 1000, ["b"], {"20100/p": (5, 1)}).encode(),
        2: Heartbeat(2, 4, now - 2000, ["c"], {"20100/p": (4, 9)}).encode(),  # an older version of p
        3: Heartbeat(3, 4, now - 6000, ["d"], {}).encode(),  # dead: its heartbeat is too old
        4: b"not json",
    }
    assert peers.update(beats, now) == [4]
    assert peers.lagging(20100, "p", (5, 1)) == [2]
    assert peers.lagging(20100, "q", (1, 1)) == [1, 2]
    assert peers.replica_count() == 4
    assert peers.holders() == {"b": 1, "c": 2}
    assert Heartbeat.decode(beats[1]).enforced == {"20100/p": (5, 1)}, "a record reads back as written"


async def summarised_engine(
    replica: int, settle_periods: int, cells: dict[str, list[str]]
) -> tuple[Engine, NetworkSummary]:
    """An engine on the in-memory data layer whose scored rows feed a network summary, its nodes' cells accepted."""
    layer = MemoryDataLayer()
    await layer.start()
    engine = await engine_on(layer)
    summary = NetworkSummary(replica, engine.table, engine.measurements, PERIOD_MS, settle_periods=settle_periods)
    engine.on_rows = summary.observe
    engine.on_accepted(accepted(cells))
    return engine, summary


async def test_the_network_summary_gives_each_node_and_measurement_its_mean_and_count_once_a_period_settled() -> None:
    engine, summary = await summarised_engine(2, 2, {"n1": ["c1", "c2"], "n2": ["c3", "c4"]})

    def feed(*indications: pb.Indication) -> None:
        engine.on_batch(batch(*indications))
        engine.flush()

    feed(indication("n1", 0, {"c1": (1.0, 2.0, math.nan), "c2": (3.0, 4.0, math.nan)}),
         indication("n2", 0, {"c3": (5.0, 6.0, 7.0)}))  # fmt: skip
    feed(indication("n1", 1, {"c1": CALM, "c2": CALM}))
    assert summary.settled() == [], "period 0 may still get late rows"
    feed(indication("n2", 0, {"c4": (9.0, 8.0, 7.0)}), indication("n1", 2, {"c1": CALM, "c2": CALM}))
    (entry,) = [SummaryEntry.decode(record) for record in summary.settled()]
    assert (entry.replica, entry.period_start_ms, entry.period_ms) == (2, T0, PERIOD_MS)
    assert entry.measurements == ["m.a", "m.b", "m.c"] and entry.nodes == ["n1", "n2"]
    assert entry.count.tolist() == [[2, 2, 0], [2, 2, 2]]
    np.testing.assert_array_equal(entry.mean, [[2.0, 3.0, np.nan], [7.0, 7.0, 7.0]])
    feed(indication("n1", 3, {"c1": CALM, "c2": CALM}), indication("n2", 1, {"c3": CALM, "c4": CALM}))
    (entry,) = [SummaryEntry.decode(record) for record in summary.settled()]
    assert entry.period_start_ms == T0 + PERIOD_MS and entry.nodes == ["n1", "n2"]
    assert entry.count.tolist() == [[2, 2, 2], [2, 2, 2]], "n2's rows of period 1, late but within the bound, count"
    feed(indication("n1", 4, {"c1": CALM, "c2": CALM}))
    assert [SummaryEntry.decode(record).period_start_ms for record in summary.settled()] == [T0 + 2 * PERIOD_MS]


async def test_the_network_summary_sums_each_node_once_when_its_rows_come_apart_in_a_batch() -> None:
    engine, summary = await summarised_engine(0, 1, {"n1": ["c1"], "n2": ["c2", "c3"], "n3": ["c4"]})
    first = {"n1": {"c1": CALM}, "n2": {"c2": CALM, "c3": CALM}, "n3": {"c4": CALM}}
    engine.on_batch(batch(*(indication(node, 0, cells) for node, cells in first.items())))
    engine.flush()
    later = [("n2", {"c2": (2.0, 2.0, 2.0)}), ("n3", {"c4": (4.0, 4.0, 4.0)}), ("n1", {"c1": (1.0, math.nan, 1.0)}),
             ("n2", {"c3": (6.0, 2.0, math.nan)})]  # fmt: skip
    engine.on_batch(batch(*(indication(node, 1, cells) for node, cells in later)))  # n2's cells apart, nodes unordered
    engine.flush()
    engine.on_batch(batch(indication("n1", 2, {"c1": CALM})))
    engine.flush()
    entries = [SummaryEntry.decode(record) for record in summary.settled()]
    (entry,) = [entry for entry in entries if entry.period_start_ms == T0 + PERIOD_MS]
    by_node = dict(zip(entry.nodes, zip(entry.mean.tolist(), entry.count.tolist(), strict=True), strict=True))
    assert by_node["n1"][1] == [1, 0, 1] and by_node["n1"][0][0] == 1.0 and math.isnan(by_node["n1"][0][1])
    assert by_node["n2"] == ([4.0, 2.0, 2.0], [2, 2, 1])
    assert by_node["n3"] == ([4.0, 4.0, 4.0], [1, 1, 1])


def test_a_network_summary_entry_reads_back_and_a_malformed_one_says_what_is_wrong() -> None:
    entry = SummaryEntry(1, T0, PERIOD_MS, ["m.a", "m.b"], ["n1"], np.array([[3, 0]]), np.array([[1.5, np.nan]]))
    back = SummaryEntry.decode(entry.encode())
    assert back.nodes == ["n1"] and back.count.tolist() == [[3, 0]] and back.mean[0, 0] == 1.5
    with pytest.raises(ValueError, match="no header line"):
        SummaryEntry.decode(b'{"v": 2}')
    with pytest.raises(ValueError, match="version is not 2"):
        SummaryEntry.decode(b'{"nodes": []}\n')
    with pytest.raises(ValueError, match="bytes of arrays for 1 nodes x 2 measurements"):
        SummaryEntry.decode(entry.encode()[:-1])
    with pytest.raises(ValueError, match="lacks or misspells 'replica'"):
        SummaryEntry.decode(b'{"v": 2, "nodes": [], "measurements": []}\n')


async def test_an_a1_status_reads_enforced_only_when_no_live_replica_lags() -> None:
    layer = MemoryDataLayer()
    store = PolicyStore(layer)
    await store.load()
    instance, _ = await store.put_instance(20100, "p", {"enabled": False})
    lagging: list[int] = [2]
    asked: list[tuple[int, str, tuple[int, int]]] = []

    def peers(type_id: int, instance_id: str, order: tuple[int, int]) -> list[int]:
        asked.append((type_id, instance_id, order))
        return lagging

    handler = A1Handler(store, peers=peers)
    pending = {"enforceStatus": "NOT_ENFORCED", "enforceReason": "OTHER_REASON"}
    assert (await handler.get_status(20100, "p")).body == pending, "not enforced here yet"
    store.mark_enforced(20100, "p", True)
    assert (await handler.get_status(20100, "p")).body == pending, "enforced here, replica 2 lags"
    assert asked[-1] == (20100, "p", instance.order)
    lagging.clear()
    assert (await handler.get_status(20100, "p")).body == {"enforceStatus": "ENFORCED"}
