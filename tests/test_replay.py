"""`sim replay`: a dataset folder played as E2 nodes over gRPC."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from e2sim.export import export_world
from e2sim.replay import ReplaySource
from e2sim.server import StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly_contracts.dataset import read_dataset, to_arrays
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2 as gt
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2_grpc as gt_grpc
from tests.conftest import start_sim
from tests.e2_client import collect

PERIOD_MS = 900_000


@pytest.fixture
def dataset_with_gaps(tmp_path: Path) -> Path:
    """One day of 9 cells at 15 minutes, with two rows removed."""
    export_world(World(WorldConfig(seed=4, n_cells=9, events_per_cell_day=3.0)), tmp_path, days=1, period_s=900)
    kpm = pd.read_csv(tmp_path / "kpm.csv")
    kpm.drop(index=[10, 11]).to_csv(tmp_path / "kpm.csv", index=False)
    return tmp_path


async def test_replay_streams_the_dataset_rows(dataset_with_gaps: Path) -> None:
    dataset = read_dataset(dataset_with_gaps)
    arrays = to_arrays(dataset)
    server, channel = await start_sim(ReplaySource(dataset), StreamOptions(realtime=False))
    try:
        accepted, indications, _ = await collect(channel, pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS))
        assert list(accepted.measurements) == list(arrays.measurements)
        assert {i.collection_start_ms for i in indications} == set(arrays.times_ms.tolist())
        assert sum(len(i.cell_ids) for i in indications) == len(dataset.kpm), "one cell-report per row"
        index = {c: k for k, c in enumerate(arrays.cell_ids)}
        for i in indications:
            row = (i.collection_start_ms - int(arrays.times_ms[0])) // PERIOD_MS
            cells = [index[c] for c in i.cell_ids]
            np.testing.assert_array_equal(i.values, arrays.values[row, cells])
        by_node_seq: dict[str, list[int]] = {}
        for i in indications:
            by_node_seq.setdefault(i.node_id, []).append(i.sequence)
        assert all(seq == list(range(len(arrays.times_ms))) for seq in by_node_seq.values())

        truth = await gt_grpc.GroundTruthStub(channel).ListAnomalies(
            gt.ListAnomaliesRequest(
                start_ms=int(arrays.times_ms[0]), end_ms=int(arrays.times_ms[-1]) + PERIOD_MS,
                reporting_period_ms=PERIOD_MS,
            )
        )  # fmt: skip
        assert dataset.labels is not None and len(truth.anomalies) == len(dataset.labels) > 0
    finally:
        await channel.close()
        await server.stop(0)


async def test_replay_leaves_out_cells_without_a_row(dataset_with_gaps: Path) -> None:
    dataset = read_dataset(dataset_with_gaps)
    server, channel = await start_sim(ReplaySource(dataset), StreamOptions(realtime=False))
    try:
        _, indications, _ = await collect(channel, pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS))
        first_period = [i for i in indications if i.sequence == 1]
        reported = {c for i in first_period for c in i.cell_ids}
        assert len(reported) == 9 - 2, "the two removed rows belong to the second period"
    finally:
        await channel.close()
        await server.stop(0)


async def test_replay_refuses_another_period(dataset_with_gaps: Path) -> None:
    server, channel = await start_sim(ReplaySource(read_dataset(dataset_with_gaps)), StreamOptions(realtime=False))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await collect(channel, pb.SubscriptionRequest(reporting_period_ms=60_000))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "[900000, 900000]" in (refused.value.details() or "")
    finally:
        await channel.close()
        await server.stop(0)


async def test_a_replay_resumed_past_its_last_period_ends_instead_of_replaying(dataset_with_gaps: Path) -> None:
    server, channel = await start_sim(ReplaySource(read_dataset(dataset_with_gaps)), StreamOptions(realtime=False))
    try:
        request = pb.SubscriptionRequest(reporting_period_ms=PERIOD_MS)
        accepted, indications, _ = await collect(channel, request)
        request.resume_after_ms.update({i.node_id: i.collection_start_ms for i in indications})
        assert {n.node_id for n in accepted.nodes} == set(request.resume_after_ms)
        _, again, _ = await collect(channel, request)
        assert again == [], "the dataset is not sent again"
    finally:
        await channel.close()
        await server.stop(0)
