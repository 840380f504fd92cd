"""A1 policy records and their change stream on Redis (see `xapp.datalayer.policies`).

Each write is one MULTI: HSET or HDEL of the record and an XADD of its `PolicyChange` with an exact MAXLEN.
A reader's poll is one pipelined round trip: XREAD COUNT n from its last id (never blocking), XLEN, and the
oldest entry; entries after the reader's id may have been trimmed when the stream is at its bound and its
oldest entry is newer than that id (which errs on the side of a needless reload).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

from ranomaly_contracts.redis_client import REDIS_ERRORS, AsyncRedis
from ranomaly_contracts.sdl import (
    AUDIT_MAX,
    FIELD_DATA,
    POLICY_CHANGES_MAX,
    PolicyChange,
    SdlKeys,
    as_text,
    encode_policy_change,
    parse_policy_instance_field,
    policy_instance_field,
)
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.policies import InstanceKey, PolicyChanges, parse_change_id

T = TypeVar("T")


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class RedisPolicies:
    """Policy persistence over one Redis client; `url` (password hidden) names Redis in errors.

    `owns_client`: release() closes the client (a handle opened for another thread's event loop).
    """

    def __init__(
        self,
        client: AsyncRedis,
        keys: SdlKeys,
        url: str,
        *,
        policy_changes_max: int = POLICY_CHANGES_MAX,
        owns_client: bool = False,
    ) -> None:
        if policy_changes_max < 1:
            raise ValueError(f"policy_changes_max must be at least 1 entry, got {policy_changes_max}")
        self._client = client
        self._keys = keys
        self._url = url
        self._policy_changes_max = policy_changes_max
        self._owns_client = owns_client
        self._errors = 0  # failed calls

    async def _call(self, what: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except REDIS_ERRORS as error:
            self._errors += 1
            raise DataLayerUnavailable(f"Redis at {self._url}: {what} failed: {error}") from error

    async def _changed(self, what: str, change: PolicyChange, key: str, field: str, value: bytes | None) -> None:
        """Set (value) or delete (None) one hash field and append the change, in one MULTI."""
        async with self._client.pipeline(transaction=True) as pipe:
            if value is None:
                pipe.hdel(key, field)
            else:
                pipe.hset(key, field, value)
            pipe.xadd(
                self._keys.policy_changes, {FIELD_DATA: encode_policy_change(change)},
                maxlen=self._policy_changes_max, approximate=False,
            )  # fmt: skip
            await self._call(what, pipe.execute())

    async def policy_types(self) -> dict[int, bytes]:
        """Every stored policy type document by id."""
        stored = await self._call("HGETALL policy types", self._client.hgetall(self._keys.policy_types))
        return {int(type_id): _raw(document) for type_id, document in stored.items()}

    async def put_policy_type(self, type_id: int, document: bytes) -> None:
        """Store a policy type document and append its change."""
        change = PolicyChange("put", type_id)
        await self._changed("HSET policy type", change, self._keys.policy_types, str(type_id), document)

    async def delete_policy_type(self, type_id: int) -> None:
        """Remove a policy type document and append its change."""
        change = PolicyChange("delete", type_id)
        await self._changed("HDEL policy type", change, self._keys.policy_types, str(type_id), None)

    async def policy_instances(self) -> dict[InstanceKey, bytes]:
        """Every stored policy instance record by (type id, instance id)."""
        stored = await self._call("HGETALL policy instances", self._client.hgetall(self._keys.policy_instances))
        return {parse_policy_instance_field(as_text(name)): _raw(record) for name, record in stored.items()}

    async def put_policy_instance(self, type_id: int, instance_id: str, record: bytes) -> None:
        """Store a policy instance record and append its change."""
        change, name = PolicyChange("put", type_id, instance_id), policy_instance_field(type_id, instance_id)
        await self._changed("HSET policy instance", change, self._keys.policy_instances, name, record)

    async def delete_policy_instance(self, type_id: int, instance_id: str) -> None:
        """Remove a policy instance record and append its change."""
        change, name = PolicyChange("delete", type_id, instance_id), policy_instance_field(type_id, instance_id)
        await self._changed("HDEL policy instance", change, self._keys.policy_instances, name, None)

    async def read_policy_types(self, type_ids: Sequence[int]) -> dict[int, bytes | None]:
        """These type documents (None: not stored)."""
        if not type_ids:
            return {}
        fields = [str(type_id) for type_id in type_ids]
        values = await self._call("HMGET policy types", self._client.hmget(self._keys.policy_types, fields))
        return {
            type_id: None if value is None else _raw(value) for type_id, value in zip(type_ids, values, strict=True)
        }

    async def read_policy_instances(self, keys: Sequence[InstanceKey]) -> dict[InstanceKey, bytes | None]:
        """These instance records (None: not stored)."""
        if not keys:
            return {}
        fields = [policy_instance_field(*key) for key in keys]
        values = await self._call("HMGET policy instances", self._client.hmget(self._keys.policy_instances, fields))
        return {key: None if value is None else _raw(value) for key, value in zip(keys, values, strict=True)}

    async def policy_changes_head(self) -> str:
        """The id of the newest change entry ("0-0" if there is none)."""
        newest = await self._call(
            "XREVRANGE policy changes", self._client.xrevrange(self._keys.policy_changes, count=1)
        )
        entry_id = newest[0][0] if newest else None
        return "0-0" if entry_id is None else as_text(entry_id)

    async def read_policy_changes(self, after_id: str, count: int) -> PolicyChanges:
        """Up to `count` change entries after `after_id`, oldest first (XREAD, not blocking)."""
        key = self._keys.policy_changes
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xread({key: after_id}, count=count)
            pipe.xlen(key)
            pipe.xrange(key, count=1)
            streams, length, oldest = await self._call("XREAD policy changes", pipe.execute())
        entries = []
        for _, stream_entries in streams or ():
            for entry_id, fields in stream_entries:
                entries.append((as_text(entry_id), _raw((fields or {}).get(FIELD_DATA.encode(), b""))))
        trimmed = length >= self._policy_changes_max and bool(oldest) and (
            parse_change_id(oldest[0][0]) > parse_change_id(after_id)
        )  # fmt: skip
        return PolicyChanges(entries, trimmed)

    async def append_audit(self, entry: bytes) -> None:
        """XADD the record to the audit stream, trimmed to about AUDIT_MAX entries."""
        add = self._client.xadd(self._keys.audit, {FIELD_DATA: entry}, maxlen=AUDIT_MAX, approximate=True)
        await self._call("XADD audit", add)

    async def release(self) -> None:
        """Close the client if this handle opened it."""
        if self._owns_client:
            await self._client.aclose()
