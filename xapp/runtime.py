"""One loaded model scoring cells: its ONNX session and the per-cell state it carries between periods.

It knows only ARCHITECTURE.md's Models contract: the manifest's measurement order, time features,
state size and warm-up, and the inputs x, mask, time, state (and group, for a model that declares network
context) -> outputs score, deviation, state_out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import onnxruntime as ort

from models.artifact import (
    GROUP_INPUT,
    NODE_PERIOD,
    Artifact,
    ArtifactError,
    context_groups,
    load_session,
    time_features,
)
from xapp.cells import extend_rows
from xapp.errors import ModelLoadError

Feeds: TypeAlias = dict[str, np.ndarray]
Outputs: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray]
_INPUTS = ("x", "mask", "time", "state")
_OUTPUTS = ("score", "deviation", "state_out")


class ModelRuntime:
    """A model ready to score rows given in the subscription's measurement order."""

    def __init__(self, artifact: Artifact, session: ort.InferenceSession, subscribed: Sequence[str]) -> None:
        manifest = artifact.manifest
        missing = [m for m in manifest.measurements if m not in subscribed]
        if missing:
            raise ModelLoadError(f"model {manifest.version} needs measurements the subscription lacks: {missing}")
        self.artifact = artifact
        self.version = manifest.version
        self.measurements = manifest.measurements
        self.warmup = manifest.warmup_periods
        self._session = session
        self._columns = np.array([list(subscribed).index(m) for m in manifest.measurements], dtype=np.intp)
        self._identity = bool(np.array_equal(self._columns, np.arange(len(subscribed))))
        self._time_names = list(manifest.time_features)
        self._inputs = (*_INPUTS, GROUP_INPUT) if manifest.context == NODE_PERIOD else _INPUTS
        self._utc_offset_h = manifest.utc_offset_h
        self.state = np.zeros((0, manifest.state_size), dtype=np.float32)
        self.seen = np.zeros(0, dtype=np.int64)  # periods fed per slot (reported or gap)

    @classmethod
    def load(
        cls, artifact: Artifact, subscribed: Sequence[str], period_ms: int, intra_op_threads: int = 1
    ) -> ModelRuntime:
        """Check the artifact against the subscription and open its session (which runs it once)."""
        manifest = artifact.manifest
        if round(manifest.period_s * 1000) != period_ms:
            raise ModelLoadError(
                f"model {manifest.version} was trained at {manifest.period_s:g} s periods; "
                f"the subscription reports every {period_ms / 1000:g} s"
            )
        try:
            session = load_session(artifact, intra_op_threads)
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from None
        return cls(artifact, session, subscribed)

    def resize(self, capacity: int) -> None:
        """Grow the per-slot state to capacity cells."""
        self.state = extend_rows(self.state, capacity, 0.0)
        self.seen = extend_rows(self.seen, capacity, 0)

    def reset(self, slot: int) -> None:
        """A new cell in this slot: zero state, nothing seen."""
        self.state[slot] = 0.0
        self.seen[slot] = 0

    def prepare(
        self, slots: np.ndarray, x: np.ndarray, mask: np.ndarray, period_ms: np.ndarray, node_of_slot: np.ndarray
    ) -> Feeds:
        """The inputs of one scoring call for these slots (each at most once), their state gathered now, and
        the arrays its outputs are written to (allocated here, so that the scoring thread allocates none).

        x and mask are [n, K_subscribed] float32 in subscription order (x 0 where no value); node_of_slot the
        node of every slot (any integer id; `CellTable.node_number`), read only for a model with network
        context: a row's context is the other cells of its node in the same period and the same call.
        """
        if not self._identity:
            x, mask = x[:, self._columns], mask[:, self._columns]
        n = len(slots)
        context = {GROUP_INPUT: context_groups(node_of_slot[slots], period_ms)} if GROUP_INPUT in self._inputs else {}
        return {
            **context,
            "x": np.ascontiguousarray(x),
            "mask": np.ascontiguousarray(mask),
            "time": time_features(self._time_names, period_ms, self._utc_offset_h),
            "state": self.state[slots],
            "score": np.empty(n, dtype=np.float32),
            "deviation": np.empty((n, len(self.measurements)), dtype=np.float32),
            "state_out": np.empty((n, self.state.shape[1]), dtype=np.float32),
        }

    def run(self, feeds: Feeds) -> Outputs:
        """Run the session into the prepared outputs: score [n], deviation [n, K_model] and the state after this
        period [n, S]. Safe off the event loop's thread: it touches no per-slot array, and releases the GIL."""
        binding = self._session.io_binding()
        for name in self._inputs:
            binding.bind_cpu_input(name, feeds[name])
        for name in _OUTPUTS:
            out = feeds[name]
            binding.bind_output(name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self._session.run_with_iobinding(binding)
        return feeds["score"], feeds["deviation"], feeds["state_out"]

    def commit(self, slots: np.ndarray, state_out: np.ndarray) -> np.ndarray:
        """Advance the slots' state with a run's output; warm [n]: the cell had seen warmup periods before."""
        self.state[slots] = state_out
        warm = self.seen[slots] >= self.warmup
        self.seen[slots] += 1
        return warm
