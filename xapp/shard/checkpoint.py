"""Per-node checkpoints of the cells' model state, so that a replica resumes a node without warm-up.

A record (HASH_XAPP_CHECKPOINTS, field: node id) is a JSON header line, then the state as raw bytes:
`{"v": 2, "node": str, "model_version": str, "period_ms": int, "written_ms": int, "cells": [str],
"expected_ms": [int], "seen": [int], "state_size": int, "verdicts_after": str | null}` + `\n` + the model's
state vectors as little-endian float32, `len(cells) x state_size`, row-major; per cell in `cells` order,
`expected_ms` is the next period start the cell owes and `seen` the periods the model has been fed (its warm-up
count). Raw, because a periodic checkpoint writes every cell's state at once (36 MB at 10,000 cells): as JSON
with base64 it was 48 MB, and encoding it held the interpreter (and so the scoring loop) for about 120 ms. A
record of another format version (the JSON-only version 1 included: that replica's cells warm up again), model
version, period or state size is not restored: the state layout differs.

`verdicts_after` is null when the replica wrote the record letting the node go (a release, a stop): it scored
nothing of the node after `expected_ms`, and it closed the cells' open incidents. A periodic record carries the
id of the verdict stream's newest entry read just before the capture: the holder may score on and be killed,
and every verdict it wrote after the capture is in an entry after that id, so the next holder reads them back
(`verdicts_since`) and resumes each cell after its last verdict instead of filling those periods again with gap
rows. A periodic record also carries the cells' anomalous runs and open incidents (`"incidents":
{"measurements": [str], "rows": {"<index in cells>": [float]}}`, `IncidentTracker.carried`; only cells with a
run or an incident): the next holder continues them and replays the verdicts written after the capture through
them (`resume_incidents`), so an incident the killed holder opened is updated and closed under its own id, not
left open for good beside a new one. (A record without these fields, from an older xApp, reads as null and
none.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from xapp.datalayer.buffer import parse_entry_id
from xapp.datalayer.replicas import ReplicaData
from xapp.engine import Engine
from xapp.incidents import CARRIED

VERSION = 2


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
    verdicts_after: str | None = None  # None: written letting the node go; else the verdict stream's id before it
    incidents: dict[int, list[float]] = field(default_factory=dict)  # index in cell_ids -> IncidentTracker.carried
    attributed: tuple[str, ...] = ()  # the measurements the incidents' excess is over

    def encode(self) -> bytes:
        """The record as stored (see the module docstring)."""
        carried = {"measurements": list(self.attributed), "rows": {str(i): r for i, r in self.incidents.items()}}
        header = json.dumps({
            "v": VERSION, "node": self.node_id, "model_version": self.model_version, "period_ms": self.period_ms,
            "written_ms": self.written_ms, "cells": self.cell_ids, "expected_ms": self.expected_ms.tolist(),
            "seen": self.seen.tolist(), "state_size": int(self.state.shape[1]), "verdicts_after": self.verdicts_after,
            "incidents": carried,
        }).encode()  # fmt: skip
        return b"".join((header, b"\n", self.state.astype("<f4").tobytes()))

    @classmethod
    def decode(cls, record: bytes) -> NodeCheckpoint:
        """A stored record read back; ValueError if it is not one."""
        line, _, raw = record.partition(b"\n")
        try:
            fields = json.loads(line)
            if fields.get("v") != VERSION:
                raise ValueError(f"checkpoint format {fields.get('v')!r}, this xApp reads {VERSION}")
            cells = [str(cell) for cell in fields["cells"]]
            size = int(fields["state_size"])
            expected = np.array(fields["expected_ms"], dtype=np.int64)
            seen = np.array(fields["seen"], dtype=np.int64)
            if len(raw) != len(cells) * size * 4 or expected.shape != (len(cells),) or seen.shape != (len(cells),):
                raise ValueError("cells, expected_ms, seen and state disagree in length")
            state = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(len(cells), size)
            after = fields.get("verdicts_after")
            carried = fields.get("incidents") or {"measurements": [], "rows": {}}
            incidents = {int(i): [float(v) for v in row] for i, row in carried["rows"].items()}
            attributed = tuple(str(m) for m in carried["measurements"])
            if any(not 0 <= i < len(cells) for i in incidents):
                raise ValueError("an incident row names a cell the record does not hold")
            if any(len(row) != CARRIED + len(attributed) for row in incidents.values()):
                raise ValueError(f"an incident row does not hold {CARRIED} values and one per measurement")
            return cls(str(fields["node"]), str(fields["model_version"]), int(fields["period_ms"]),
                       int(fields["written_ms"]), cells, expected, seen, state,
                       None if after is None else str(after), incidents, attributed)  # fmt: skip
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a checkpoint record: {exc}") from None


def capture(engine: Engine, node_ids: Iterable[str], verdicts_after: str | None = None) -> list[NodeCheckpoint]:
    """Checkpoints of these nodes' cells (nodes without cells are left out), under the active model: copies,
    so they can be encoded off the scoring loop (`encode_all`). `verdicts_after`: None when the nodes are let go
    (their incidents are closed: none is carried), else the verdict stream's newest id read before this capture."""
    table, model, tracker = engine.table, engine.model, engine.incidents
    now_ms = time.time_ns() // 1_000_000
    checkpoints: list[NodeCheckpoint] = []
    for node in node_ids:
        slots = np.sort(table.node_slots(node))
        if slots.size == 0:
            continue
        active = [] if verdicts_after is None else np.flatnonzero(tracker.active(slots)).tolist()
        checkpoints.append(NodeCheckpoint(
            node, model.version, engine.tuning.period_ms, now_ms, [table.cell_ids[s] for s in slots.tolist()],
            table.expected_ms[slots], model.seen[slots], model.state[slots],  # fancy indexing copies
            verdicts_after, {i: tracker.carried(int(slots[i])) for i in active}, tracker.measurements,
        ))  # fmt: skip
    return checkpoints


def encode_all(checkpoints: Iterable[NodeCheckpoint]) -> dict[str, bytes]:
    """Node id -> record (about 3.6 KB a cell with the detector)."""
    return {checkpoint.node_id: checkpoint.encode() for checkpoint in checkpoints}


@dataclass
class Since:
    """The verdicts a killed holder wrote after its checkpoints, of those checkpoints' nodes: each cell's latest
    period start, and the verdicts in stream order (cells, period starts, statuses, scores), to replay."""

    latest: dict[str, int] = field(default_factory=dict)
    batches: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


async def verdicts_since(data: ReplicaData, checkpoints: Iterable[NodeCheckpoint], page: int = 256) -> Since:
    """The verdicts in the stream after the checkpoints that carry a stream id (the others let their node go:
    nothing was scored after them), of those checkpoints' nodes. Reads the stream from the oldest of those ids
    on, `page` entries a call: at most the stream's byte budget."""
    taken = [checkpoint for checkpoint in checkpoints if checkpoint.verdicts_after is not None]
    nodes = {checkpoint.node_id for checkpoint in taken}
    since = Since()
    if not taken:
        return since
    after = min((checkpoint.verdicts_after or "0-0" for checkpoint in taken), key=parse_entry_id)
    while entries := await data.verdicts_after(after, page):
        for _, batch in entries:
            rows = [i for i, node in enumerate(batch.node_ids) if node in nodes]
            if not rows:
                continue
            cells, periods = [batch.cell_ids[i] for i in rows], np.asarray(batch.period_start_ms)[rows]
            since.batches.append((cells, periods, np.asarray(batch.statuses)[rows], np.asarray(batch.scores)[rows]))
            for cell, period in zip(cells, periods.tolist(), strict=True):
                if period > since.latest.get(cell, -1):
                    since.latest[cell] = period
        after = entries[-1][0]
    return since


def restore(engine: Engine, checkpoint: NodeCheckpoint, scored: Mapping[str, int] | None = None) -> str | None:
    """Give the checkpoint's cells that the engine does not track yet their slots, model state, runs and open
    incidents; None when restored, else why not (another model version, period or state size). A cell in
    `scored` (`Since.latest`) owes the period after its latest verdict, if that is later than the checkpoint's."""
    model = engine.model
    if checkpoint.model_version != model.version:
        return f"written under model {checkpoint.model_version}, {model.version} scores"
    if checkpoint.period_ms != engine.tuning.period_ms:
        return f"written at {checkpoint.period_ms} ms periods, the xApp runs {engine.tuning.period_ms}"
    if checkpoint.state.shape[1] != model.state.shape[1]:
        return f"state size {checkpoint.state.shape[1]}, the model's is {model.state.shape[1]}"
    table, scored = engine.table, scored or {}
    for row, cell in enumerate(checkpoint.cell_ids):
        if cell in table.slot_of:
            continue
        expected = int(checkpoint.expected_ms[row])
        if cell in scored:
            expected = max(expected, scored[cell] + checkpoint.period_ms)
        slot = table.add(cell, checkpoint.node_id, expected)
        model.state[slot] = checkpoint.state[row]
        model.seen[slot] = checkpoint.seen[row]
        if row in checkpoint.incidents:
            engine.incidents.carry_on(slot, checkpoint.incidents[row], checkpoint.attributed)
    engine.metrics.cells.set(len(table))
    return None


def resume_incidents(engine: Engine, since: Since, cells: set[str]) -> None:
    """Replay the verdicts written after the checkpoints through these restored cells' runs and incidents, as
    their killed holder saw them (its events are in the stream already: none is written again)."""
    slot_of = engine.table.slot_of
    verdicts = []
    for batch_cells, periods, statuses, scores in since.batches:
        rows = [i for i, cell in enumerate(batch_cells) if cell in cells and cell in slot_of]
        if rows:
            slots = np.array([slot_of[batch_cells[i]] for i in rows], dtype=np.int64)
            verdicts.append((slots, statuses[rows], scores[rows], periods[rows]))
    engine.replay_incidents(verdicts)
