"""Network context: the `group` input of the Models contract, the detector's use of it, the xApp supplying it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from models.artifact import Artifact, ArtifactError, artifact_bytes_digest, context_groups, load_session, parse_artifact
from models.detector import DetectorConfig
from models.detector.passes import node_parts, step_inputs
from models.detector.step import CONTEXT_LIMIT, DetectorStep, mates_mean
from models.detector.train import fit_step
from models.onnx_export import to_onnx_bytes
from models.trivial import trivial_artifact
from ranomaly_contracts.dataset import KpmArrays
from tests.xapp_helpers import MEASUREMENTS, PERIOD_MS, accepted, batch, engine_on, indication
from xapp.datalayer.memory import MemoryDataLayer
from xapp.runtime import ModelRuntime

pytestmark = pytest.mark.timeout(900)  # trains two small models: generous for a busy 2-core machine
DAY = 288  # 5-minute periods


def test_groups_number_the_rows_of_one_node_and_one_collection_time_alike() -> None:
    groups = context_groups(np.array([7, 3, 7, 7, 3, 9]), np.array([0, 0, 0, 300, 0, 0]))
    assert groups.dtype == np.float32
    assert groups.tolist() == [1.0, 0.0, 1.0, 2.0, 0.0, 3.0], "numbered from 0 in (node, time) order"


def test_mates_mean_is_the_other_usable_rows_of_the_group() -> None:
    values = torch.tensor([[1.0], [3.0], [5.0], [100.0], [7.0]])
    usable = torch.tensor([[True], [True], [True], [False], [True]])
    mates = mates_mean(values, usable, torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))
    assert mates[:, 0].tolist() == [4.0, 3.0, 2.0, 3.0, 0.0], "an unusable row has mates but is no one's mate"


def test_training_passes_never_split_a_node() -> None:
    node = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    parts = node_parts(node, 2)
    assert len(parts) == 2 and np.array_equal(np.concatenate(parts), np.arange(len(node)))
    assert all(len(set(node[a]) & set(node[b])) == 0 for a in parts for b in parts if a is not b)
    assert len(node_parts(np.zeros(5, dtype=np.int64), 2)) == 1, "one node: one part"


def _sites(shared: float, seed: int, days: int = 4) -> KpmArrays:
    """Four nodes of three cells, two measurements at a level of each cell's own with unit noise per cell;
    `shared` is the spread of a noise every cell of a node shares in a period (what moves a whole site)."""
    rng = np.random.default_rng(seed)
    periods, nodes, per_node = days * DAY, 4, 3
    level = 50.0 + 5.0 * np.arange(nodes * per_node * 2).reshape(nodes * per_node, 2)
    site = np.repeat(rng.normal(0.0, shared, (periods, nodes, 2)), per_node, axis=1)
    values = level + site + rng.normal(0.0, 1.0, (periods, nodes * per_node, 2))
    return KpmArrays(
        times_ms=1_767_571_200_000 + np.arange(periods, dtype=np.int64) * 300_000,
        node_ids=tuple(f"n{n}" for n in range(nodes) for _ in range(per_node)),
        cell_ids=tuple(f"n{n}-c{c}" for n in range(nodes) for c in range(per_node)),
        measurements=("a", "b"),
        values=values.astype(np.float32),
        reported=np.ones((periods, nodes * per_node), dtype=bool),
    )


def _errors(step: DetectorStep, arrays: KpmArrays) -> tuple[np.ndarray, np.ndarray]:
    """u of every cell-period after the first day, scored with the node groups (u and the score's input)."""
    inputs = step_inputs(arrays)
    state = torch.zeros(arrays.values.shape[1], step.layout.size)
    errors, scores = [], []
    with torch.no_grad():
        for row in range(arrays.values.shape[0]):
            group = torch.from_numpy(context_groups(inputs.node, inputs.stamps[row]))
            feeds = [torch.from_numpy(a[row]) for a in (inputs.x, inputs.mask, inputs.time)]
            out = step.period(*feeds, state, group)
            state = out["state_out"]
            if row >= DAY:
                errors.append(out["u"].numpy())
                scores.append(out["score"].numpy())
    return np.stack(errors), np.stack(scores)


@pytest.fixture(scope="module")
def shared_step() -> DetectorStep:
    """A detector trained where a node's cells share two thirds of their noise variance."""
    return fit_step(_sites(1.4, 1), 300.0, DetectorConfig(epochs=2, warmup_periods=12, hidden=8)).step


def test_training_learns_the_share_of_a_nodes_common_error_and_none_where_cells_are_independent(
    shared_step: DetectorStep,
) -> None:
    independent = fit_step(_sites(0.0, 2), 300.0, DetectorConfig(epochs=2, warmup_periods=12, hidden=8)).step
    # shared noise of spread 1.4 beside 1 of each cell's own: a slope of 1.96 / (1.96 + 1 / 2) = 0.8 on the
    # mean of two mates; with independent cells what the mates share is only the small network's own error
    assert (shared_step.context_gain > 0.6).all(), f"shared noise: gain {shared_step.context_gain.tolist()}"
    assert (independent.context_gain < 0.3).all(), f"independent: gain {independent.context_gain.tolist()}"


def test_taking_out_the_shared_error_narrows_normal_errors_yet_a_node_wide_anomaly_still_alarms(
    shared_step: DetectorStep,
) -> None:
    test = _sites(1.4, 3, days=2)
    with_context, _ = _errors(shared_step, test)
    blind = DetectorStep(2, 8)
    blind.load_state_dict(shared_step.state_dict())
    blind.sustain_level = shared_step.sustain_level
    blind.context_gain.zero_()
    without_context, _ = _errors(blind, test)
    assert with_context.std() < 0.8 * without_context.std(), "the node's shared noise is no longer the cell's error"

    broken = test.values.copy()
    outage = slice(DAY + 100, DAY + 124)  # two hours in which every cell of node 0 carries 15 units more
    broken[outage, :3] += 15.0
    _, scores = _errors(shared_step, replace(test, values=broken))
    rows = slice(outage.start - DAY, outage.stop - DAY)
    threshold = 1.0  # calibrated deviations are about 1 at the normal 99.9 % level
    assert (scores[rows, :3].max(axis=0) > 2 * threshold).all(), "every cell of the node alarms"
    assert 15.0 > 3 * CONTEXT_LIMIT, "the shift is far beyond what the context may explain"


class _MatesProbe(nn.Module):
    """A model with network context whose score is the mean of the first measurement over the row's mates."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor, time: torch.Tensor, state: torch.Tensor,
                group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        mates = mates_mean(x, mask > 0.5, group)
        return mates[:, 0], mates, state + 0.0 * time[:, :1]


def _probe(declared: bool) -> Artifact:
    fields, _ = trivial_artifact(MEASUREMENTS, PERIOD_MS / 1000, version="mates-probe", warmup_periods=0)
    k = len(MEASUREMENTS)
    example = (torch.rand(2, k), torch.ones(2, k), torch.zeros(2, 1), torch.zeros(2, k), torch.zeros(2))
    onnx_bytes = to_onnx_bytes(_MatesProbe(), example, ("x", "mask", "time", "state", "group"),
                               ("score", "deviation", "state_out"))  # fmt: skip
    fields = {**fields, "sha256": artifact_bytes_digest(onnx_bytes), "context": "node-period" if declared else None}
    return parse_artifact(json.dumps(fields), onnx_bytes, "mates probe")


def test_a_graph_taking_group_without_the_manifest_declaring_context_is_refused() -> None:
    with pytest.raises(ArtifactError, match=r"unexpected \['group'\]"):
        load_session(_probe(declared=False))
    fields, onnx_bytes = trivial_artifact(MEASUREMENTS, PERIOD_MS / 1000)
    with pytest.raises(ArtifactError, match=r"missing \['group'\]"):
        load_session(parse_artifact(json.dumps({**fields, "context": "node-period"}), onnx_bytes, "trivial"))


async def test_the_xapp_gives_each_row_its_own_nodes_cells_of_the_same_period() -> None:
    layer = MemoryDataLayer()
    await layer.start()
    engine = await engine_on(layer, ModelRuntime.load(_probe(declared=True), MEASUREMENTS, PERIOD_MS))
    engine.on_accepted(accepted({"n0": ("n0-c0", "n0-c1", "n0-c2"), "n1": ("n1-c0", "n1-c1")}))
    late = indication("n0", 0, {"n0-c0": [10.0, 0, 0], "n0-c1": [20.0, 0, 0], "n0-c2": [60.0, 0, 0]})
    engine.on_batch(batch(
        indication("n1", 0, {"n1-c0": [1.0, 0, 0], "n1-c1": [3.0, 0, 0]}),
        indication("n1", 1, {"n1-c0": [5.0, 0, 0], "n1-c1": [np.nan, 0, 0]}),
        late,  # period 0 of n0 after period 1 of n1, in the same message: grouped by node and period
    ))  # fmt: skip
    engine.flush()
    await layer.flush()
    scores = {(cell, int(vb.period_start_ms[i])): float(vb.scores[i])
              for _, vb in await layer.read_verdicts() for i, cell in enumerate(vb.cell_ids)}  # fmt: skip
    t0, t1 = late.header.collection_start_ms, late.header.collection_start_ms + PERIOD_MS
    assert scores[("n0-c0", t0)] == 40.0 and scores[("n0-c2", t0)] == 15.0, "the node's other cells, same period"
    assert scores[("n1-c0", t0)] == 3.0 and scores[("n1-c1", t0)] == 1.0
    assert scores[("n1-c1", t1)] == 5.0 and scores[("n1-c0", t1)] == 0.0, "a mate without a value is no mate"
    engine.close()
