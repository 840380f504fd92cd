"""The in-memory data layer: the embedded default for `make demo` and single-process runs.

It keeps the Redis backend's contract, buffering included: hot-path writes go through the same bounded
buffer and a background writer, and the streams get Redis-style ids and byte budgets. Stream entries are
the written objects themselves; each is measured at its encoded size (what Redis would hold) plus the
prior per-entry overhead of `xapp.datalayer.bounds`, and a stream keeps the newest entries its budget
allows at their mean size. The KPM stream has consumer groups reduced to their last delivered id
(`create_kpm_group`, `consume_kpm`), so that trimming counts what the rApp's group had not read, as in Redis.
Policies and their change stream are `xapp.datalayer.policies.MemoryPolicies`, thread-safe, so
`policy_data()` is the data layer itself.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Generic, TypeVar

from ranomaly_contracts.sdl import (
    RAPP_CONSUMER_GROUP,
    CellState,
    CellStatus,
    IncidentEvent,
    KpmForward,
    VerdictBatch,
    encode_incident,
    encode_verdicts,
)
from xapp.datalayer.base import DataLayerHealth
from xapp.datalayer.bounds import (
    DEFAULT_INCIDENT_STREAM_BYTES,
    DEFAULT_KPM_STREAM_BYTES,
    DEFAULT_VERDICT_STREAM_BYTES,
    StreamBudget,
)
from xapp.datalayer.buffer import (
    DEFAULT_INCIDENT_BUFFER,
    DEFAULT_KPM_BUFFER,
    DEFAULT_VERDICT_BUFFER,
    BackgroundWriter,
    BufferedWrites,
    Drain,
    EntryId,
    OpenIncidents,
    WriteBuffer,
    parse_entry_id,
)
from xapp.datalayer.policies import MemoryPolicies
from xapp.datalayer.replicas import MemoryReplicaData

T = TypeVar("T")


class _Stream(Generic[T]):
    """A stream bounded by its budget: the newest entries, with increasing ids and their measured sizes."""

    def __init__(self, budget: StreamBudget) -> None:
        self.budget = budget
        self.entries: deque[tuple[EntryId, T]] = deque()
        self._sizes: deque[int] = deque()  # bytes of each entry, overhead included
        self._bytes = 0  # their sum
        self._last: EntryId = (0, 0)

    def append(self, payload: T, size: int) -> list[EntryId]:
        """Add an entry of `size` payload bytes with the next id; the ids of the entries trimmed to make room."""
        budget = self.budget
        budget.observe((size,))
        ms = time.time_ns() // 1_000_000
        self._last = (ms, 0) if ms > self._last[0] else (self._last[0], self._last[1] + 1)
        self.entries.append((self._last, payload))
        self._sizes.append(size + round(budget.overhead_bytes))
        self._bytes += self._sizes[-1]
        trimmed = []
        while len(self.entries) > budget.limit:
            trimmed.append(self.entries.popleft()[0])
            self._bytes -= self._sizes.popleft()
        budget.measured(self._bytes, len(self.entries))
        return trimmed

    def after(self, start_id: str) -> list[tuple[str, T]]:
        """Entries after start_id, oldest first, with their ids."""
        start = parse_entry_id(start_id)
        return [(f"{ms}-{seq}", payload) for (ms, seq), payload in self.entries if (ms, seq) > start]

    def last_id(self) -> str:
        """The newest entry's id ("0-0" when empty)."""
        ms, seq = self.entries[-1][0] if self.entries else (0, 0)
        return f"{ms}-{seq}"


class MemoryDataLayer(MemoryPolicies, BufferedWrites):
    """The data layer in process memory (see the module docstring; bounds as in `RedisDataLayer`)."""

    def __init__(
        self,
        *,
        verdict_buffer: int = DEFAULT_VERDICT_BUFFER,
        incident_buffer: int = DEFAULT_INCIDENT_BUFFER,
        kpm_buffer: int = DEFAULT_KPM_BUFFER,
        verdict_stream_bytes: int = DEFAULT_VERDICT_STREAM_BYTES,
        incident_stream_bytes: int = DEFAULT_INCIDENT_STREAM_BYTES,
        kpm_stream_bytes: int = DEFAULT_KPM_STREAM_BYTES,
        close_timeout_s: float = 5.0,
    ) -> None:
        MemoryPolicies.__init__(self)
        self._buffer = WriteBuffer(
            verdict_cells=verdict_buffer, incident_events=incident_buffer, kpm_indications=kpm_buffer
        )
        self._writer = BackgroundWriter(self._buffer, self._apply, self._nothing)
        self._close_timeout_s = close_timeout_s
        self._budgets = {
            "verdicts": StreamBudget("verdicts", verdict_stream_bytes),
            "incidents": StreamBudget("incidents", incident_stream_bytes),
            "kpm": StreamBudget("kpm", kpm_stream_bytes),
        }
        self._verdicts: _Stream[VerdictBatch] = _Stream(self._budgets["verdicts"])
        self._incidents: _Stream[IncidentEvent] = _Stream(self._budgets["incidents"])
        self._kpm: _Stream[KpmForward] = _Stream(self._budgets["kpm"])
        self._kpm_groups: dict[str, EntryId] = {}
        self._trimmed_unread = 0
        self._open = OpenIncidents()
        # cell_id -> (node_id, period_start_ms, score, status, model_version, incident_id)
        self._cells: dict[str, tuple[str, int, float, int, str, str | None]] = {}
        self._manifests: dict[str, bytes] = {}
        self._onnx: dict[str, bytes] = {}
        self._promoted: list[str] = []
        self._signatures: dict[str, bytes] = {}
        self._accepted: dict[str, tuple[int, str]] = {}
        self._replicas = MemoryReplicaData(self._verdicts)

    async def start(self) -> None:
        """Start the background writer."""
        self._writer.start()

    async def close(self) -> None:
        """Flush (bounded wait) and stop the writer."""
        await self._writer.stop(self._close_timeout_s)

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every buffered write is applied."""
        return await self._writer.flush(timeout_s)

    def health(self) -> DataLayerHealth:
        """Current health."""
        return self._health("memory", True)

    async def _nothing(self) -> None:
        """Memory is always there: nothing to probe."""

    async def _apply(self, drain: Drain) -> None:
        encoded = [encode_verdicts(batch) for batch in drain.verdicts]  # refuses a malformed batch, as Redis does
        self._open.apply(drain.incidents)
        for batch, payload in zip(drain.verdicts, encoded, strict=True):
            self._verdicts.append(batch, len(payload))
            rows = zip(
                batch.cell_ids,
                batch.node_ids,
                batch.period_start_ms.tolist(),
                batch.scores.tolist(),
                batch.statuses.tolist(),
                strict=True,
            )
            for cell, node, start, score, status in rows:
                self._cells[cell] = (node, start, score, status, batch.model_version, self._open.get(cell))
        for event in drain.incidents:
            self._incidents.append(event, len(encode_incident(event)))
        delivered = self._kpm_groups.get(RAPP_CONSUMER_GROUP)
        for measurements, indications in drain.kpm_entries():
            # its encoded size: each name and indication with its tag and length (short names, < 2 MB indications)
            size = sum(len(name) + 2 for name in measurements) + sum(i.ByteSize() + 3 for i in indications)
            trimmed = self._kpm.append(KpmForward(measurements, indications), size)
            self._trimmed_unread += sum(delivered is None or entry_id > delivered for entry_id in trimmed)

    async def cell_state(self, cell_id: str) -> CellState | None:
        """The latest state of one cell."""
        row = self._cells.get(cell_id)
        if row is None:
            return None
        node, start, score, status, model, incident = row
        return CellState(cell_id, node, start, score, CellStatus(status), model, incident)

    async def read_verdicts(self, start_id: str = "0") -> list[tuple[str, VerdictBatch]]:
        """Verdict stream entries after start_id."""
        return self._verdicts.after(start_id)

    async def read_incidents(self, start_id: str = "0") -> list[tuple[str, IncidentEvent]]:
        """Incident stream entries after start_id."""
        return self._incidents.after(start_id)

    async def read_kpm(self, start_id: str = "0") -> list[tuple[str, KpmForward]]:
        """KPM stream entries after start_id."""
        return self._kpm.after(start_id)

    def create_kpm_group(self, group: str = RAPP_CONSUMER_GROUP, start_id: str = "0") -> None:
        """Create a consumer group on the KPM stream that has read up to start_id ("$": everything so far)."""
        if start_id == "$":
            self._kpm_groups[group] = self._kpm.entries[-1][0] if self._kpm.entries else (0, 0)
        else:
            self._kpm_groups[group] = parse_entry_id(start_id)

    def consume_kpm(self, group: str = RAPP_CONSUMER_GROUP, count: int = 100) -> list[tuple[str, KpmForward]]:
        """Deliver the group's next count entries (XREADGROUP ... >); KeyError if the group does not exist."""
        if group not in self._kpm_groups:
            raise KeyError(f"no consumer group {group!r} on the KPM stream")
        delivered = self._kpm_groups[group]
        entries = [(entry_id, forward) for entry_id, forward in self._kpm.entries if entry_id > delivered][:count]
        if entries:
            self._kpm_groups[group] = entries[-1][0]
        return [(f"{ms}-{seq}", forward) for (ms, seq), forward in entries]

    def policy_data(self) -> MemoryPolicies:
        """The policies for another thread: this data layer (MemoryPolicies is thread-safe)."""
        return self

    def replica_data(self) -> MemoryReplicaData:
        """Heartbeats, node checkpoints and the network summary, in this process."""
        return self._replicas

    async def promoted_models(self) -> list[str]:
        """Promoted model versions, oldest first."""
        return list(self._promoted)

    async def get_model(self, version: str) -> tuple[bytes, bytes] | None:
        """(manifest.json bytes, model.onnx bytes) of a version, or None."""
        if version not in self._manifests or version not in self._onnx:
            return None
        return self._manifests[version], self._onnx[version]

    async def publish_model(self, version: str, manifest_json: bytes, onnx: bytes, promote: bool = True,
                            signature: bytes | None = None) -> None:  # fmt: skip
        """Store an artifact (and its signature record, if given) under its version and, if promote, append the
        version to the promoted list once."""
        self._manifests[version] = bytes(manifest_json)
        self._onnx[version] = bytes(onnx)
        if signature is not None:
            self._signatures[version] = bytes(signature)
        if promote and version not in self._promoted:
            self._promoted.append(version)

    async def model_signature(self, version: str) -> bytes | None:
        """The signature record of a version's newest promotion, or None."""
        return self._signatures.get(version)

    async def accepted_promotion(self, consumer: str) -> tuple[int, str] | None:
        """(counter, version) of the newest signed promotion this consumer accepted, or None."""
        return self._accepted.get(consumer)

    async def accept_promotion(self, consumer: str, counter: int, version: str) -> None:
        """Record that the consumer accepted this promotion; a lower or equal counter never replaces a higher."""
        if consumer not in self._accepted or self._accepted[consumer][0] < counter:
            self._accepted[consumer] = (counter, version)
