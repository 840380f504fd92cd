"""Per-node checkpoints of the cells' model state, so that a replica resumes a node without warm-up.

A record (HASH_XAPP_CHECKPOINTS, field: node id) is JSON:
`{"v": 1, "node": str, "model_version": str, "period_ms": int, "written_ms": int, "cells": [str],
"expected_ms": [int], "seen": [int], "state_size": int, "state": base64}` where, per cell in `cells` order,
`expected_ms` is the next period start the cell owes, `seen` the periods the model has been fed (its warm-up
count), and `state` the model's state vectors as little-endian float32, `len(cells) x state_size`, row-major.
A record of another model version, period or state size is not restored: the state layout differs.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from xapp.engine import Engine

VERSION = 1


@dataclass(frozen=True)
class NodeCheckpoint:
    """One node's cells and what the active model carries for them."""

    node_id: str
    model_version: str
    period_ms: int
    written_ms: int
    cell_ids: list[str]
    expected_ms: np.ndarray  # int64 [n]
    seen: np.ndarray  # int64 [n]
    state: np.ndarray  # float32 [n, state_size]

    def encode(self) -> bytes:
        """The record as stored (see the module docstring)."""
        return json.dumps({
            "v": VERSION, "node": self.node_id, "model_version": self.model_version, "period_ms": self.period_ms,
            "written_ms": self.written_ms, "cells": self.cell_ids, "expected_ms": self.expected_ms.tolist(),
            "seen": self.seen.tolist(), "state_size": int(self.state.shape[1]),
            "state": base64.b64encode(self.state.astype("<f4").tobytes()).decode(),
        }).encode()  # fmt: skip

    @classmethod
    def decode(cls, record: bytes) -> NodeCheckpoint:
        """A stored record read back; ValueError if it is not one."""
        try:
            fields = json.loads(record)
            if fields.get("v") != VERSION:
                raise ValueError(f"checkpoint format {fields.get('v')!r}, this xApp reads {VERSION}")
            cells = [str(cell) for cell in fields["cells"]]
            size = int(fields["state_size"])
            state = np.frombuffer(base64.b64decode(fields["state"]), dtype="<f4").astype(np.float32)
            expected = np.array(fields["expected_ms"], dtype=np.int64)
            seen = np.array(fields["seen"], dtype=np.int64)
            if state.size != len(cells) * size or expected.shape != (len(cells),) or seen.shape != (len(cells),):
                raise ValueError("cells, expected_ms, seen and state disagree in length")
            return cls(str(fields["node"]), str(fields["model_version"]), int(fields["period_ms"]),
                       int(fields["written_ms"]), cells, expected, seen, state.reshape(len(cells), size))  # fmt: skip
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a checkpoint record: {exc}") from None


def capture(engine: Engine, node_ids: Iterable[str]) -> list[NodeCheckpoint]:
    """Checkpoints of these nodes' cells (nodes without cells are left out), under the active model: copies,
    so they can be encoded off the scoring loop (`encode_all`)."""
    table, model = engine.table, engine.model
    now_ms = time.time_ns() // 1_000_000
    checkpoints: list[NodeCheckpoint] = []
    for node in node_ids:
        slots = np.sort(table.node_slots(node))
        if slots.size == 0:
            continue
        checkpoints.append(NodeCheckpoint(
            node, model.version, engine.tuning.period_ms, now_ms, [table.cell_ids[s] for s in slots.tolist()],
            table.expected_ms[slots], model.seen[slots], model.state[slots],  # fancy indexing copies
        ))  # fmt: skip
    return checkpoints


def encode_all(checkpoints: Iterable[NodeCheckpoint]) -> dict[str, bytes]:
    """Node id -> record (about 4.8 KB a cell with the detector: run it on a worker thread)."""
    return {checkpoint.node_id: checkpoint.encode() for checkpoint in checkpoints}


def restore(engine: Engine, checkpoint: NodeCheckpoint) -> str | None:
    """Give the checkpoint's cells that the engine does not track yet their slots and model state; None when
    restored, else why not (another model version, period or state size)."""
    model = engine.model
    if checkpoint.model_version != model.version:
        return f"written under model {checkpoint.model_version}, {model.version} scores"
    if checkpoint.period_ms != engine.tuning.period_ms:
        return f"written at {checkpoint.period_ms} ms periods, the xApp runs {engine.tuning.period_ms}"
    if checkpoint.state.shape[1] != model.state.shape[1]:
        return f"state size {checkpoint.state.shape[1]}, the model's is {model.state.shape[1]}"
    table = engine.table
    for row, cell in enumerate(checkpoint.cell_ids):
        if cell in table.slot_of:
            continue
        slot = table.add(cell, checkpoint.node_id, int(checkpoint.expected_ms[row]))
        model.state[slot] = checkpoint.state[row]
        model.seen[slot] = checkpoint.seen[row]
    engine.metrics.cells.set(len(table))
    return None
