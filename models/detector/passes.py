"""Training's passes over the periods: the step's state recursion run in ONNX Runtime.

Each pass exports the step's period (`DetectorStep.period`) with the outputs it needs as a graph of its own
and steps it through every period, the cells inside their spans batched. ONNX Runtime steps a period of a
few dozen cells two to three times faster than torch's eager mode, whose cost here is almost all per
operation, and it is the runtime the xApp scores with: calibration and thresholds see what deployment
will.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from torch import nn

from models.artifact import GROUP_INPUT, context_groups, time_features
from models.detector.config import TIME_FEATURES
from models.detector.step import DetectorStep
from models.onnx_export import to_onnx_bytes
from models.progress import progress
from ranomaly_contracts.dataset import KpmArrays

INPUTS = ("x", "mask", "time", "state", GROUP_INPUT)
# Cells of a pass are stepped in this many parts, whole nodes each, each on its own thread (what a pass keeps
# is the same with any number: see run_pass).
PARTS = 2
T = TypeVar("T")


@dataclass
class StepInputs:
    """Model inputs of a span of periods for a set of cells."""

    x: np.ndarray  # float32 [T, N, K], 0 where no value
    mask: np.ndarray  # float32 [T, N, K]
    time: np.ndarray  # float32 [T, N, F]
    reported: np.ndarray  # bool [T, N]
    node: np.ndarray  # int64 [N], the node of every cell (its number among the sorted node ids)
    stamps: np.ndarray  # int64 [T, N], each cell's collection start: a node's cells share a period when equal
    # bool [T, N]: the cell is stepped, from its first record to its last; a period inside without a record
    # is stepped as all missing, as the xApp scores a gap row
    live: np.ndarray


def live_periods(reported: np.ndarray) -> np.ndarray:
    """bool [T, N]: each cell's periods from its first record to its last."""
    started = np.logical_or.accumulate(reported, axis=0)
    return started & np.logical_or.accumulate(reported[::-1], axis=0)[::-1]


def step_inputs(arrays: KpmArrays, utc_offset_h: float = 0.0) -> StepInputs:
    """Inputs of every period and cell of the arrays (each cell at its own times when they differ)."""
    values = arrays.values
    present = ~np.isnan(values)
    n_periods, n_cells = arrays.reported.shape
    phase = np.zeros(n_cells, dtype=np.int64) if arrays.phase_ms is None else arrays.phase_ms
    stamps = arrays.times_ms[:, None] + phase[None, :]
    cell_times = time_features(list(TIME_FEATURES), stamps, utc_offset_h).reshape(n_periods, n_cells, -1)
    return StepInputs(
        x=np.where(present, values, 0.0).astype(np.float32),
        mask=present.astype(np.float32),
        time=cell_times.astype(np.float32),
        reported=arrays.reported,
        node=arrays.node_numbers(),
        stamps=stamps,
        live=live_periods(arrays.reported),
    )


class PassGraph(nn.Module):
    """The step's period with the named outputs a pass needs, then the state after it."""

    def __init__(self, step: DetectorStep, outputs: tuple[str, ...], network: bool) -> None:
        super().__init__()
        self.step = step
        self.outputs = outputs
        self.network = network

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, time: torch.Tensor, state: torch.Tensor, group: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The outputs, in order, then state_out."""
        out = self.step.period(x, mask, time, state, group, self.network)
        return (*(out[name] for name in self.outputs), out["state_out"])


class Stepped(NamedTuple):
    """One period of a pass for a group of cells: the cells stepped (their indices in the inputs), what
    went in (x, mask, time and the state before the period, for those cells) and the named outputs."""

    row: int
    cells: np.ndarray
    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def _graph_bytes(graph: PassGraph) -> bytes:
    """The pass's graph as ONNX bytes (not optimised by onnxscript: ONNX Runtime optimises it on loading)."""
    k, size = graph.step.n_measurements, graph.step.layout.size
    example = (torch.rand(2, k), torch.ones(2, k), torch.zeros(2, len(TIME_FEATURES)), torch.zeros(2, size),
               torch.zeros(2))  # fmt: skip
    return to_onnx_bytes(graph, example, INPUTS, (*graph.outputs, "state_out"), optimise=False)


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    """An ONNX Runtime session running on the calling thread (a period's batch is small)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def run_pass(
    step: DetectorStep,
    inputs: StepInputs,
    rows: int,
    outputs: tuple[str, ...],
    network: bool,
    desc: str,
    take: Callable[[Stepped], T | None],
) -> list[T]:
    """Step the first `rows` periods from a zero state and return what `take` keeps of each (None: nothing).

    The cells are split into PARTS fixed parts of whole nodes, each stepped on a thread and a session of its
    own (ONNX Runtime runs without the interpreter lock; one session shared by threads contends on its
    memory arena). What is kept comes in period order and, within a period, in the order of the cells, as
    one part would keep it: the network's training data, and so the model, do not depend on the parts,
    the threads' timing or the cores (minibatches drawn from another order train another network)."""
    onnx_bytes = _graph_bytes(PassGraph(step, outputs, network))
    with ThreadPoolExecutor(PARTS, thread_name_prefix="detector-pass") as pool:
        parts: list[Future[list[tuple[int, T]]]] = [
            pool.submit(_steps, _session(onnx_bytes), step.layout.size, inputs, part, rows, outputs, take,
                        desc if i == 0 else "")
            for i, part in enumerate(node_parts(inputs.node, PARTS))
        ]  # fmt: skip
        merged = heapq.merge(*(part.result() for part in parts), key=lambda kept: kept[0])  # stable: parts in order
        return [item for _, item in merged]


def node_parts(node: np.ndarray, count: int) -> list[npt.NDArray[np.intp]]:
    """Up to count contiguous ranges of cells of about equal size, never splitting a node (a node's cells
    are contiguous: datasets order cells by node)."""
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])  # first cell of every node
    wanted = np.arange(1, count) * len(node) / count
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, wanted), starts.size - 1)])
    return [part for part in np.split(np.arange(len(node)), cuts[cuts > 0]) if part.size]


def _steps(
    session: ort.InferenceSession,
    size: int,
    inputs: StepInputs,
    part: npt.NDArray[np.intp],
    rows: int,
    outputs: tuple[str, ...],
    take: Callable[[Stepped], T | None],
    desc: str,
) -> list[tuple[int, T]]:
    """One part of run_pass (a contiguous range of cells): (period, what take kept of it) in period order;
    the first part shows the progress."""
    low, high = int(part[0]), int(part[-1]) + 1
    state = np.zeros((high - low, size), dtype=np.float32)
    kept: list[tuple[int, T]] = []
    grouped = GROUP_INPUT in {arg.name for arg in session.get_inputs()}  # a pass without the network has no use
    periods = progress(range(rows), desc, "period", rows) if desc else range(rows)
    for row in periods:
        local = np.flatnonzero(inputs.live[row, low:high])
        if local.size == 0:
            continue
        every = local.size == high - low  # slices, not copies, when every cell of the part steps
        cells, rows_of = (part, slice(None)) if every else (local + low, local)
        index = slice(low, high) if every else cells
        feeds = {"x": inputs.x[row, index], "mask": inputs.mask[row, index], "time": inputs.time[row, index],
                 "state": state[rows_of]}  # fmt: skip
        if grouped:
            feeds[GROUP_INPUT] = context_groups(inputs.node[index], inputs.stamps[row, index])
        *produced, after = session.run(None, feeds)
        item = take(Stepped(row, cells, feeds, dict(zip(outputs, produced, strict=True))))
        if item is not None:
            kept.append((row, item))
        if every:
            state = after
        else:
            state[local] = after
    return kept
