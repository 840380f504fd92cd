"""The data layer interface the xApp works against; Redis and in-memory backends implement it alike.

Hot-path writes (`write_verdicts`, `write_incident`, `forward_kpm`) never block and never raise: they go
into bounded buffers that a background writer drains; what a full buffer refuses is counted per kind.
A1 policies and their change stream are `xapp.datalayer.policies.PolicyData`; `policy_data()` gives a
handle of them for another thread's event loop. Everything else is async and talks to the store directly;
a store that cannot be reached raises `DataLayerUnavailable`, which callers turn into 503s or retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import CellState, IncidentEvent, VerdictBatch
from xapp.datalayer.bounds import StreamStats
from xapp.datalayer.policies import PolicyData
from xapp.datalayer.replicas import ReplicaData


class DataLayerUnavailable(RuntimeError):
    """The store cannot be reached now; the message says which store and why."""


@dataclass(frozen=True)
class DataLayerHealth:
    """What health and metrics report about the data layer."""

    backend: str  # "redis" | "memory"
    connected: bool
    degraded: bool  # writes are buffering or were dropped since the last successful flush
    degraded_s: float  # how long it has been degraded without a break (0: it is not)
    buffered: int  # hot-path writes waiting to be written
    dropped: dict[str, int] = field(default_factory=dict)  # per kind ("verdicts", "incidents", "kpm"), since start
    errors: int = 0  # failed store operations since start
    trimmed_unread: int = 0  # KPM stream entries trimmed before the rApp's consumer group read them
    streams: dict[str, StreamStats] = field(default_factory=dict)  # per kind: memory and entry limit


class DataLayer(PolicyData, Protocol):
    """Shared data layer of the xApp (see ranomaly_contracts.sdl for names and payloads)."""

    async def start(self) -> None:
        """Connect (without failing if the store is down) and start the background writer."""

    async def close(self) -> None:
        """Flush what is buffered (bounded wait), stop the writer and disconnect."""

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every buffered write is written; False if that did not happen within timeout_s."""

    def health(self) -> DataLayerHealth:
        """Current health, without I/O."""

    # hot path: non-blocking, buffered, never raises
    def write_verdicts(self, batch: VerdictBatch) -> None:
        """Append the batch to the verdict stream and update each cell's latest state."""

    def write_incident(self, event: IncidentEvent) -> None:
        """Append an incident event to the incident stream."""

    def forward_kpm(self, measurements: Sequence[str], indications: Sequence[pb.Indication]) -> None:
        """Forward received indications to the KPM stream for the Non-RT side."""

    # reads (tests, health, the rApp)
    async def cell_state(self, cell_id: str) -> CellState | None:
        """The latest state of one cell, or None if it was never written."""

    async def read_verdicts(self, start_id: str = "0") -> list[tuple[str, VerdictBatch]]:
        """Verdict stream entries after start_id, oldest first, with their ids."""

    async def read_incidents(self, start_id: str = "0") -> list[tuple[str, IncidentEvent]]:
        """Incident stream entries after start_id, oldest first, with their ids."""

    def policy_data(self) -> PolicyData:
        """The A1 policies for another thread's event loop (its own connection where the backend needs one)."""

    def replica_data(self) -> ReplicaData:
        """Heartbeats, node checkpoints and the network summary of sharded replicas (docs/scaling.md)."""

    # model registry: raises DataLayerUnavailable
    async def promoted_models(self) -> list[str]:
        """Promoted model versions, oldest first."""

    async def get_model(self, version: str) -> tuple[bytes, bytes] | None:
        """(manifest.json bytes, model.onnx bytes) of a version, or None if the registry lacks it."""

    async def publish_model(self, version: str, manifest_json: bytes, onnx: bytes, promote: bool = True,
                            signature: bytes | None = None) -> None:  # fmt: skip
        """Store an artifact (and its signature record, if given) under its version and, if promote, append the
        version to the promoted list."""

    async def model_signature(self, version: str) -> bytes | None:
        """The signature record of a version's newest promotion (`models.signing`), or None if it has none."""

    async def accepted_promotion(self, consumer: str) -> tuple[int, str] | None:
        """(counter, version) of the newest signed promotion this consumer accepted, or None."""

    async def accept_promotion(self, consumer: str, counter: int, version: str) -> None:
        """Record that the consumer accepted this promotion; a lower or equal counter never replaces a higher."""
