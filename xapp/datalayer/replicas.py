"""What sharded replicas keep in the data layer (docs/scaling.md): heartbeats, node checkpoints, the summary,
and what a replica taking a node reads back from the verdict stream.

`ReplicaData` is the interface; `MemoryReplicaData` keeps it in process memory (one process: the embedded
default), `xapp.datalayer.redis_replicas.RedisReplicaData` in Redis (`ranomaly_contracts.sdl`:
HASH_XAPP_REPLICAS, HASH_XAPP_CHECKPOINTS, STREAM_NETWORK_SUMMARY, STREAM_VERDICTS). Every call talks to the
store directly (none is on the hot path) and raises `DataLayerUnavailable` when it cannot be reached.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Protocol

from ranomaly_contracts.sdl import NETWORK_SUMMARY_MAX, VerdictBatch


class ReplicaData(Protocol):
    """Heartbeats by replica ordinal, checkpoints by node id, and the network summary stream."""

    async def put_heartbeat(self, ordinal: int, record: bytes) -> None:
        """Replace this replica's heartbeat record."""

    async def remove_heartbeat(self, ordinal: int) -> None:
        """Remove this replica's heartbeat (it stops)."""

    async def heartbeats(self) -> dict[int, bytes]:
        """Every replica's last heartbeat record."""

    async def put_checkpoints(self, records: Mapping[str, bytes]) -> None:
        """Replace these nodes' checkpoint records (one write)."""

    async def checkpoints(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        """The checkpoint records of these nodes that exist."""

    async def append_summary(self, record: bytes) -> None:
        """Append one entry to the network summary stream (bounded)."""

    async def read_summary(self) -> list[bytes]:
        """The network summary entries kept, oldest first."""

    async def verdict_position(self) -> str:
        """The id of the verdict stream's newest entry ("0-0" when it has none)."""

    async def verdicts_after(self, entry_id: str, count: int) -> list[tuple[str, VerdictBatch]]:
        """Up to `count` verdict stream entries after `entry_id`, oldest first; ValueError for one that does not
        decode."""


class VerdictLog(Protocol):
    """The in-memory verdict stream (`xapp.datalayer.memory`)."""

    def after(self, start_id: str) -> list[tuple[str, VerdictBatch]]:
        """Entries after start_id, oldest first, with their ids."""

    def last_id(self) -> str:
        """The newest entry's id ("0-0" when empty)."""


class MemoryReplicaData:
    """ReplicaData in process memory (used on the scoring loop only), beside the in-memory verdict stream."""

    def __init__(self, verdicts: VerdictLog, summary_max: int = NETWORK_SUMMARY_MAX) -> None:
        self._verdicts = verdicts
        self._heartbeats: dict[int, bytes] = {}
        self._checkpoints: dict[str, bytes] = {}
        self._summary: deque[bytes] = deque(maxlen=summary_max)

    async def put_heartbeat(self, ordinal: int, record: bytes) -> None:
        """Replace this replica's heartbeat record."""
        self._heartbeats[ordinal] = record

    async def remove_heartbeat(self, ordinal: int) -> None:
        """Remove this replica's heartbeat."""
        self._heartbeats.pop(ordinal, None)

    async def heartbeats(self) -> dict[int, bytes]:
        """Every replica's last heartbeat record."""
        return dict(self._heartbeats)

    async def put_checkpoints(self, records: Mapping[str, bytes]) -> None:
        """Replace these nodes' checkpoint records."""
        self._checkpoints.update(records)

    async def checkpoints(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        """The checkpoint records of these nodes that exist."""
        return {node: self._checkpoints[node] for node in node_ids if node in self._checkpoints}

    async def append_summary(self, record: bytes) -> None:
        """Append one network summary entry."""
        self._summary.append(record)

    async def read_summary(self) -> list[bytes]:
        """The network summary entries kept, oldest first."""
        return list(self._summary)

    async def verdict_position(self) -> str:
        """The id of the verdict stream's newest entry."""
        return self._verdicts.last_id()

    async def verdicts_after(self, entry_id: str, count: int) -> list[tuple[str, VerdictBatch]]:
        """Up to `count` verdict stream entries after `entry_id`."""
        return self._verdicts.after(entry_id)[:count]
