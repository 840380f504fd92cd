"""A1 policy records and their change stream in the data layer (`ranomaly_contracts.sdl` names both).

Every write stores or removes a record and appends a `PolicyChange` to the change stream in one step (a
Redis MULTI; one lock in memory), so a reader that takes the stream's last id before reading the records,
then follows the stream from there, misses no accepted change. `read_policy_changes` answers the entries
after a reader's last id, at most `count`, and whether entries after that id may have been trimmed unread
(the reader then re-reads every record). Failures raise `DataLayerUnavailable`. The A1 server's audit
records go through the same handle (`append_audit`), bounded by `AUDIT_MAX`.

`MemoryPolicies` is the in-memory backend's part: thread-safe, so that the A1 server's thread and the
scoring loop can share it (each call holds one lock for a few dict operations).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ranomaly_contracts.sdl import AUDIT_MAX, POLICY_CHANGES_MAX, PolicyChange, encode_policy_change

InstanceKey = tuple[int, str]  # (policy type id, instance id)
EntryId = tuple[int, int]


def parse_change_id(entry_id: str | bytes) -> EntryId:
    """A change entry id ("<ms>-<seq>") as a comparable pair; ValueError if it is not one."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class PolicyChanges:
    """What a reader gets from the change stream."""

    entries: list[tuple[str, bytes]]  # (entry id, payload), oldest first
    trimmed: bool  # entries after the reader's id may have been trimmed before it read them


class PolicyData(Protocol):
    """Policy records and their change stream; a handle for one event loop (see `DataLayer.policy_data`)."""

    async def policy_types(self) -> dict[int, bytes]:
        """Every stored policy type document by id."""

    async def put_policy_type(self, type_id: int, document: bytes) -> None:
        """Store a policy type document and append its change."""

    async def delete_policy_type(self, type_id: int) -> None:
        """Remove a policy type document and append its change."""

    async def policy_instances(self) -> dict[InstanceKey, bytes]:
        """Every stored policy instance record by (type id, instance id)."""

    async def put_policy_instance(self, type_id: int, instance_id: str, record: bytes) -> None:
        """Store a policy instance record and append its change."""

    async def delete_policy_instance(self, type_id: int, instance_id: str) -> None:
        """Remove a policy instance record and append its change."""

    async def read_policy_types(self, type_ids: Sequence[int]) -> dict[int, bytes | None]:
        """These type documents (None: not stored)."""

    async def read_policy_instances(self, keys: Sequence[InstanceKey]) -> dict[InstanceKey, bytes | None]:
        """These instance records (None: not stored)."""

    async def policy_changes_head(self) -> str:
        """The id of the newest change entry ("0-0" if there is none)."""

    async def read_policy_changes(self, after_id: str, count: int) -> PolicyChanges:
        """Up to `count` change entries after `after_id`, oldest first."""

    async def append_audit(self, entry: bytes) -> None:
        """Append an encoded audit record (`ranomaly_contracts.auth.audit`) to the bounded audit trail."""

    async def release(self) -> None:
        """Close what this handle opened for itself (its own connection, if any)."""


class MemoryPolicies:
    """Policy records and the change stream in process memory, shared by threads."""

    def __init__(self, policy_changes_max: int = POLICY_CHANGES_MAX) -> None:
        if policy_changes_max < 1:
            raise ValueError(f"policy_changes_max must be at least 1 entry, got {policy_changes_max}")
        self._lock = threading.Lock()
        self._policy_types: dict[int, bytes] = {}
        self._policy_instances: dict[InstanceKey, bytes] = {}
        self._changes: deque[tuple[EntryId, bytes]] = deque(maxlen=policy_changes_max)
        self._last_change: EntryId = (0, 0)
        self._trimmed_through: EntryId = (0, 0)  # the newest entry trimmed so far
        self.audit: deque[bytes] = deque(maxlen=AUDIT_MAX)  # the newest audit records, oldest first

    def _append_change(self, change: PolicyChange) -> None:
        """Append a change entry (call with the lock held)."""
        if len(self._changes) == self._changes.maxlen:
            self._trimmed_through = self._changes[0][0]
        ms, (last_ms, last_seq) = time.time_ns() // 1_000_000, self._last_change
        self._last_change = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        self._changes.append((self._last_change, encode_policy_change(change)))

    async def policy_types(self) -> dict[int, bytes]:
        """Every stored policy type document by id."""
        with self._lock:
            return dict(self._policy_types)

    async def put_policy_type(self, type_id: int, document: bytes) -> None:
        """Store a policy type document and append its change."""
        with self._lock:
            self._policy_types[type_id] = bytes(document)
            self._append_change(PolicyChange("put", type_id))

    async def delete_policy_type(self, type_id: int) -> None:
        """Remove a policy type document and append its change."""
        with self._lock:
            self._policy_types.pop(type_id, None)
            self._append_change(PolicyChange("delete", type_id))

    async def policy_instances(self) -> dict[InstanceKey, bytes]:
        """Every stored policy instance record by (type id, instance id)."""
        with self._lock:
            return dict(self._policy_instances)

    async def put_policy_instance(self, type_id: int, instance_id: str, record: bytes) -> None:
        """Store a policy instance record and append its change."""
        with self._lock:
            self._policy_instances[(type_id, instance_id)] = bytes(record)
            self._append_change(PolicyChange("put", type_id, instance_id))

    async def delete_policy_instance(self, type_id: int, instance_id: str) -> None:
        """Remove a policy instance record and append its change."""
        with self._lock:
            self._policy_instances.pop((type_id, instance_id), None)
            self._append_change(PolicyChange("delete", type_id, instance_id))

    async def read_policy_types(self, type_ids: Sequence[int]) -> dict[int, bytes | None]:
        """These type documents (None: not stored)."""
        with self._lock:
            return {type_id: self._policy_types.get(type_id) for type_id in type_ids}

    async def read_policy_instances(self, keys: Sequence[InstanceKey]) -> dict[InstanceKey, bytes | None]:
        """These instance records (None: not stored)."""
        with self._lock:
            return {key: self._policy_instances.get(key) for key in keys}

    async def policy_changes_head(self) -> str:
        """The id of the newest change entry ("0-0" if there is none)."""
        with self._lock:
            ms, seq = self._changes[-1][0] if self._changes else (0, 0)
        return f"{ms}-{seq}"

    async def read_policy_changes(self, after_id: str, count: int) -> PolicyChanges:
        """Up to `count` change entries after `after_id`, oldest first."""
        after = parse_change_id(after_id)
        newer: list[tuple[str, bytes]] = []
        with self._lock:
            for (ms, seq), data in reversed(self._changes):  # the newest first: a follower is rarely far behind
                if (ms, seq) <= after:
                    break
                newer.append((f"{ms}-{seq}", data))
            trimmed = after < self._trimmed_through
        return PolicyChanges(newer[::-1][:count], trimmed)

    async def append_audit(self, entry: bytes) -> None:
        """Keep an audit record (the oldest dropped beyond AUDIT_MAX)."""
        with self._lock:
            self.audit.append(bytes(entry))

    async def release(self) -> None:
        """Nothing to close: the memory is the data layer's."""
