"""The simulator's E2 service over real gRPC channels on loopback."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import numpy as np
import pytest

from e2sim import catalogue as cat
from e2sim.server import SERVICE_MODEL_OID, SimServer, StreamOptions
from e2sim.world import World
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2 as gt
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2_grpc as gt_grpc
from tests.conftest import start_sim
from tests.e2_client import collect

PERIOD_MS = 60_000
Sim = tuple[SimServer, grpc.aio.Channel]


async def test_list_nodes_describes_nodes_cells_and_the_kpm_catalogue(accelerated_sim: Sim, small_world: World) -> None:
    _, channel = accelerated_sim
    response = await pb_grpc.E2NodeStub(channel).ListNodes(pb.ListNodesRequest())
    assert [n.node_id for n in response.nodes] == list(small_world.node_ids)
    assert [c.cell_id for n in response.nodes for c in n.cells] == list(small_world.cell_ids)
    assert len({c.nr_cell_identity for n in response.nodes for c in n.cells}) == len(small_world.cell_ids)
    ran = response.ran_function
    assert ran.service_model_oid == SERVICE_MODEL_OID and ran.short_name == "ORAN-E2SM-KPM"
    assert {m.name: m.unit for m in ran.measurements} == cat.UNITS
    assert ran.min_reporting_period_ms == 10 and ran.max_reporting_period_ms == 3_600_000


async def test_subscription_streams_exactly_the_selected_records(accelerated_sim: Sim, small_world: World) -> None:
    server, channel = accelerated_sim
    nodes = list(small_world.node_ids[1:3])
    measurements = ["DRB.UEThpDl", "RRU.PrbUsedDl", "L1M.DL-SS-SINR.SSB"]
    request = pb.SubscriptionRequest(
        subscriber_id="t", node_ids=nodes, measurements=measurements, reporting_period_ms=PERIOD_MS,
        max_indications_per_message=5,
    )  # fmt: skip
    accepted, indications, batches = await collect(channel, request)
    assert list(accepted.measurements) == measurements
    assert [n.node_id for n in accepted.nodes] == nodes
    assert len(indications) == 30 * len(nodes) and max(batches) == 5
    first = small_world.stream_start(PERIOD_MS, 0, realtime=False).first_period
    expected = small_world.block(first, 30, PERIOD_MS).values
    columns = [cat.MEASUREMENT_INDEX[m] for m in measurements]
    cell_index = {c: i for i, c in enumerate(small_world.cell_ids)}
    for node in nodes:
        mine = [i for i in indications if i.node_id == node]
        assert [i.sequence for i in mine] == list(range(30)), "per-node sequence numbers count periods"
        for i in mine:
            row = i.collection_start_ms // PERIOD_MS - first
            cells = [cell_index[c] for c in i.cell_ids]
            assert all(small_world.node_ids[small_world.cell_node[c]] == node for c in cells)
            np.testing.assert_array_equal(i.values, expected[row][cells][:, columns])
    assert not server.e2.active


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"node_ids": ["gnb-999"]}, "node_ids: unknown node 'gnb-999'"),
        ({"cell_ids": ["gnb-000-c9"]}, "cell_ids: unknown cell 'gnb-000-c9'"),
        ({"measurements": ["RRU.PrbUsedDl", "Bogus.Counter"]}, "unknown measurement 'Bogus.Counter'"),
        ({"measurements": ["DRB.UEThpDl", "DRB.UEThpDl"]}, "measurements: 'DRB.UEThpDl' is listed twice"),
        ({"reporting_period_ms": 0}, "reporting_period_ms: a reporting period is required"),
        ({"reporting_period_ms": 5}, "reporting_period_ms: 5 ms is outside"),
        ({"node_ids": ["gnb-000"], "cell_ids": ["gnb-001-c0"]}, "belongs to node 'gnb-001'"),
        ({"max_indications_per_message": 100_000}, "max_indications_per_message"),
    ],
)
async def test_bad_subscription_is_refused_naming_what_is_wrong(
    accelerated_sim: Sim, fields: dict[str, object], message: str
) -> None:
    server, channel = accelerated_sim
    request = pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(request, key).extend(value)
        else:
            setattr(request, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await collect(channel, request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (refused.value.details() or "")
    assert not server.e2.active


async def test_many_subscribers_at_once_each_get_their_whole_stream(accelerated_sim: Sim, small_world: World) -> None:
    _, channel = accelerated_sim
    requests = [
        pb.SubscriptionRequest(subscriber_id=f"s{k}", cell_ids=[small_world.cell_ids[k]], reporting_period_ms=PERIOD_MS)
        for k in range(6)
    ] + [pb.SubscriptionRequest(subscriber_id="all", reporting_period_ms=300_000)]
    results = await asyncio.gather(*(collect(channel, r) for r in requests))
    for k, (_, indications, _) in enumerate(results[:6]):
        assert [i.cell_ids for i in indications] == [[small_world.cell_ids[k]]] * 30
    assert sum(len(i.cell_ids) for i in results[6][1]) == 30 * len(small_world.cell_ids)


async def test_a_subscriber_that_disconnects_is_cleaned_up(small_world: World) -> None:
    server, channel = await start_sim(small_world, StreamOptions(realtime=False))  # endless streams
    try:
        stub = pb_grpc.E2NodeStub(channel)
        tasks_before = len(asyncio.all_tasks())
        for _ in range(5):
            call = stub.Subscribe(pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS))
            received = 0
            async for _message in call:
                received += 1
                if received == 4:
                    break
            assert server.e2.active
            call.cancel()
        deadline = time.monotonic() + 5
        while server.e2.active and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not server.e2.active, "subscriptions leaked after their subscribers left"
        assert len(asyncio.all_tasks()) <= tasks_before + 1
    finally:
        await channel.close()
        await server.stop(0)


async def test_realtime_stream_sends_each_period_when_it_ends(small_world: World) -> None:
    server, channel = await start_sim(small_world, StreamOptions(realtime=True, periods=4))
    try:
        arrivals: list[tuple[float, int]] = []
        request = pb.SubscriptionRequest(reporting_period_ms=100, cell_ids=[small_world.cell_ids[0]])
        async for message in pb_grpc.E2NodeStub(channel).Subscribe(request):
            for indication in message.batch.indications:
                arrivals.append((time.time() * 1000, indication.header.collection_start_ms))
        assert len(arrivals) == 4
        starts = [start for _, start in arrivals]
        assert all(s % 100 == 0 for s in starts) and np.diff(starts).tolist() == [100, 100, 100]
        lateness = [arrived - (start + 100) for arrived, start in arrivals]
        assert min(lateness) > -5, "a period was sent before it ended"
        assert max(lateness) < 80, f"periods sent late: {lateness}"
    finally:
        await channel.close()
        await server.stop(0)


async def test_ground_truth_is_served_beside_the_stream(accelerated_sim: Sim, small_world: World) -> None:
    _, channel = accelerated_sim
    stub = gt_grpc.GroundTruthStub(channel)
    start = small_world.stream_start(PERIOD_MS, 0, realtime=False).first_period * PERIOD_MS
    end = start + 3 * 86_400_000
    response = await stub.ListAnomalies(
        gt.ListAnomaliesRequest(start_ms=start, end_ms=end, reporting_period_ms=PERIOD_MS)
    )
    expected = small_world.labels(start, end, PERIOD_MS)
    assert expected, "three days of 12 cells carry some anomalies"
    assert [(a.cell_id, a.kind, a.first_ms, a.last_ms) for a in response.anomalies] == [
        (lb.cell_id, lb.kind, lb.first_ms, lb.last_ms) for lb in expected
    ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListAnomalies(gt.ListAnomaliesRequest(start_ms=end, end_ms=start, reporting_period_ms=PERIOD_MS))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_resumed_subscription_sends_each_node_only_the_periods_after_its_resume_point(
    accelerated_sim: Sim, small_world: World
) -> None:
    _, channel = accelerated_sim
    request = pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS)
    _, first, _ = await collect(channel, request)  # 30 periods: the stream ends
    last = {i.node_id: i.collection_start_ms for i in first}
    behind = small_world.node_ids[0]
    last[behind] -= 5 * PERIOD_MS  # this node's last 5 periods were not accepted
    request.resume_after_ms.update(last | {"gnb-not-here": 1})  # a node the subscription lacks is ignored
    _, second, _ = await collect(channel, request)
    sent = [(i.node_id, i.collection_start_ms) for i in first + second]
    assert len(set(sent)) == len(sent) - 5, "nothing sent twice but the 5 periods not accepted"
    for node in small_world.node_ids:
        mine = [i for i in second if i.node_id == node]
        assert mine[0].collection_start_ms == last[node] + PERIOD_MS, f"{node} resumes right after its point"
        assert [i.sequence for i in mine] == list(range(len(mine))), "sequence numbers count from the resume"
        starts = sorted({start for n, start in sent if n == node})
        assert starts == list(range(starts[0], starts[-1] + PERIOD_MS, PERIOD_MS)), f"{node}: nothing lost"
    # the stream's 30 periods start at the earliest resume point: the node behind gets 30, the others 25
    assert Counter(i.node_id for i in second) == {node: 30 if node == behind else 25 for node in small_world.node_ids}


async def test_a_fixed_span_is_never_lengthened_by_a_resumed_subscription(small_world: World) -> None:
    server, channel = await start_sim(small_world, StreamOptions(realtime=False, span=30))
    try:
        request = pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS)
        _, first, _ = await collect(channel, request)  # the span's 30 periods: the stream ends
        last = {i.node_id: i.collection_start_ms for i in first}
        behind = small_world.node_ids[0]
        last[behind] -= 5 * PERIOD_MS  # this node's last 5 periods were not accepted
        request.resume_after_ms.update(last)
        _, second, _ = await collect(channel, request)
    finally:
        await channel.close()
        await server.stop(0)
    assert Counter(i.node_id for i in first) == dict.fromkeys(small_world.node_ids, 30)
    assert Counter(i.node_id for i in second) == {behind: 5}, "the resumed stream ends where the span does"
    assert max(i.collection_start_ms for i in second) == max(i.collection_start_ms for i in first)
