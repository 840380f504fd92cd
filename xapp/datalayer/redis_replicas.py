"""`ReplicaData` in Redis: HASH_XAPP_REPLICAS, HASH_XAPP_CHECKPOINTS and STREAM_NETWORK_SUMMARY (one entry field,
FIELD_DATA), and reads of STREAM_VERDICTS. Uses the data layer's client; errors become `DataLayerUnavailable`."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from ranomaly_contracts.redis_client import REDIS_ERRORS
from ranomaly_contracts.sdl import FIELD_DATA, NETWORK_SUMMARY_MAX, SdlKeys, VerdictBatch, as_text, decode_verdicts
from xapp.datalayer.base import DataLayerUnavailable

T = TypeVar("T")


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class RedisReplicaData:
    """ReplicaData over a redis-py asyncio client (the data layer's own)."""

    def __init__(
        self, client: aioredis.Redis | RedisCluster, keys: SdlKeys, url: str, summary_max: int = NETWORK_SUMMARY_MAX
    ) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._summary_max = summary_max

    async def _call(self, what: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except REDIS_ERRORS as error:
            raise DataLayerUnavailable(f"Redis at {self._url}: {what} failed: {error}") from error

    async def put_heartbeat(self, ordinal: int, record: bytes) -> None:
        """Replace this replica's heartbeat record."""
        await self._call("HSET heartbeat", self._client.hset(self._keys.xapp_replicas, str(ordinal), record))

    async def remove_heartbeat(self, ordinal: int) -> None:
        """Remove this replica's heartbeat."""
        await self._call("HDEL heartbeat", self._client.hdel(self._keys.xapp_replicas, str(ordinal)))

    async def heartbeats(self) -> dict[int, bytes]:
        """Every replica's last heartbeat record."""
        stored = await self._call("HGETALL heartbeats", self._client.hgetall(self._keys.xapp_replicas))
        return {int(_raw(name)): _raw(record) for name, record in stored.items()}

    async def put_checkpoints(self, records: Mapping[str, bytes]) -> None:
        """Replace these nodes' checkpoint records (one HSET)."""
        if records:
            await self._call(
                "HSET checkpoints", self._client.hset(self._keys.xapp_checkpoints, mapping=cast(Any, dict(records)))
            )

    async def checkpoints(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        """The checkpoint records of these nodes that exist (one HMGET)."""
        if not node_ids:
            return {}
        values = await self._call("HMGET checkpoints", self._client.hmget(self._keys.xapp_checkpoints, list(node_ids)))
        return {node: _raw(value) for node, value in zip(node_ids, values, strict=True) if value is not None}

    async def append_summary(self, record: bytes) -> None:
        """Append one network summary entry (XADD MAXLEN ~)."""
        add = self._client.xadd(self._keys.network_summary, {FIELD_DATA: record}, maxlen=self._summary_max,
                                approximate=True)  # fmt: skip
        await self._call("XADD network summary", add)

    async def read_summary(self) -> list[bytes]:
        """The network summary entries kept, oldest first."""
        read = self._client.xrange(self._keys.network_summary)
        entries = cast(list[tuple[Any, dict[Any, Any]]], await self._call("XRANGE network summary", read))
        return [_raw(fields.get(FIELD_DATA.encode(), fields.get(FIELD_DATA, b""))) for _, fields in entries]

    async def verdict_position(self) -> str:
        """The id of the verdict stream's newest entry ("0-0" when it has none)."""
        read = self._client.xrevrange(self._keys.verdicts, count=1)
        newest = cast(list[tuple[Any, Any]], await self._call("XREVRANGE verdicts", read))
        return as_text(newest[0][0]) if newest else "0-0"

    async def verdicts_after(self, entry_id: str, count: int) -> list[tuple[str, VerdictBatch]]:
        """Up to `count` verdict stream entries after `entry_id`, oldest first (XRANGE); ValueError for an entry
        that does not decode."""
        read = self._client.xrange(self._keys.verdicts, min=f"({entry_id}", count=count)
        entries = cast(list[tuple[Any, dict[Any, Any]]], await self._call("XRANGE verdicts", read))
        return [(as_text(key), decode_verdicts(_raw(fields.get(FIELD_DATA.encode(), b"")))) for key, fields in entries]
