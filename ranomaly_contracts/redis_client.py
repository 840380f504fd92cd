"""The apps' asyncio Redis client: one server's (`redis.asyncio.Redis`) or a Redis Cluster's (Valkey's too).

Both apps choose with the `redis_cluster` setting: off (the default), `redis_url` names one Redis; on, it
names any node of a cluster (a seed: redis-py's `RedisCluster` asks it for the slot map and connects to every
master, following MOVED/ASK redirections). TLS (`ranomaly_contracts.tls.redis_options`) and the ACL user
(`ranomaly_contracts.redis_auth`) apply to every node alike. Key names are hash-tagged for a cluster in
`ranomaly_contracts.sdl` whatever the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ranomaly_contracts.redis_auth import RedisAuth
from ranomaly_contracts.tls import ClientTls, redis_options

AsyncRedis: TypeAlias = aioredis.Redis | RedisCluster
# What a Redis call may raise: redis-py's errors, those of the cluster client outside RedisError (no node
# reachable, a slot no node serves) and the socket's.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
# Of those, what passes once Redis is back: no connection, a timeout, a cluster down or moving slots.
REDIS_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError, RedisClusterException, ClusterDownError,
                   TryAgainError)  # fmt: skip


def redis_client(
    url: str, *, cluster: bool = False, tls: ClientTls | None = None, auth: RedisAuth | None = None, **options: Any
) -> AsyncRedis:
    """A client for `url` (a cluster's seed node when `cluster`), with TLS, the ACL user and redis-py `options`
    (timeouts, retry) on every connection."""
    kwargs = {**options, **redis_options(tls), **(auth.redis_options() if auth else {})}
    if cluster:
        return RedisCluster.from_url(url, **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)


def by_slot(client: AsyncRedis, keys: Sequence[str]) -> list[list[str]]:
    """The keys in groups that one multi-key command may name: all together on one server, per hash slot on a
    cluster (first appearance order kept)."""
    if not isinstance(client, RedisCluster):
        return [list(keys)] if keys else []
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())
