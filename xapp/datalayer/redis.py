"""The Redis data layer (redis-py asyncio), as the O-RAN SC RIC's shared data layer.

Hot-path writes are buffered (see `xapp.datalayer.buffer`); the background writer sends each drain in one
pipelined round trip (no MULTI): one XADD per verdict batch, per incident event and per KPM entry, and an
exact XTRIM per stream written, to the entry limit its byte budget gives (`xapp.datalayer.bounds`); every
`stream_sample_s` the same round trip asks MEMORY USAGE and XLEN of each stream. The cells' latest states go
out between a period's bursts (`RedisDataLayer`). Payloads are encoded there, never on the hot path. While Redis is
away, writes keep buffering up to the bounds, the writer retries with bounded exponential backoff and
writes the backlog in order when Redis is back. A drain that failed is sent again whole, so an entry Redis
applied before the connection broke may appear twice.

Trimmed KPM entries count as unread when the rApp's consumer group had not been delivered them: the writer
keeps the ids its XADDs returned, and each drain reads the group's last-delivered-id just before the trim
and the first entry left after it (Redis 6.2 has no entries-read). Entries delivered between those two
reads count as unread, so the count errs on the side of loss.

Policies and the model registry are written through (policies and their change stream by
`xapp.datalayer.redis_policies`, which this class extends); a Redis that cannot be reached raises
`DataLayerUnavailable` naming the URL (password hidden) and the error.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ranomaly_contracts.redis_auth import RedisAuth
from ranomaly_contracts.redis_client import REDIS_ERRORS, REDIS_TRANSIENT, redis_client
from ranomaly_contracts.sdl import (
    ACCEPT_PROMOTION_SCRIPT,
    FIELD_DATA,
    PREFIX,
    PROMOTE_ONCE_SCRIPT,
    RAPP_CONSUMER_GROUP,
    CellState,
    IncidentEvent,
    KpmForward,
    SdlKeys,
    VerdictBatch,
    as_text,
    decode_cell_state,
    decode_incident,
    decode_kpm,
    decode_verdicts,
    encode_incident,
    encode_kpm,
    encode_verdicts,
    sdl_keys,
)
from ranomaly_contracts.tls import ClientTls
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
    QuietWork,
    WriteBuffer,
    parse_entry_id,
)
from xapp.datalayer.cellstates import CellStateRounds
from xapp.datalayer.redis_policies import RedisPolicies
from xapp.datalayer.redis_replicas import RedisReplicaData

log = structlog.get_logger(__name__)


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def redact_url(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


class RedisDataLayer(RedisPolicies, BufferedWrites):
    """The data layer on Redis.

    Bounds: `*_buffer` in each kind's unit (verdict cell-periods, incident events, KPM indications),
    `*_stream_bytes` in bytes of Redis memory per stream; the defaults and what they assume are in
    `xapp.datalayer.buffer` and `xapp.datalayer.bounds`.
    `prefix` replaces the key prefix of `ranomaly_contracts.sdl` (a separate namespace, for example in
    tests); `tls` verifies a rediss:// server and presents a client certificate; `auth` is the ACL user;
    `cluster`: `url` names a seed node of a Redis Cluster (`ranomaly_contracts.redis_client`).
    Timeouts bound every Redis call; the writer's backoff doubles from retry_initial_s up to retry_max_s;
    close() waits up to close_timeout_s for the buffers to be written.

    The latest state per cell is written in rounds, at most one every `cell_state_interval_s`, in the
    writer's quiet gaps (xapp/datalayer/cellstates.py); `flush()` writes it at once.
    """

    def __init__(
        self,
        url: str,
        *,
        verdict_buffer: int = DEFAULT_VERDICT_BUFFER,
        incident_buffer: int = DEFAULT_INCIDENT_BUFFER,
        kpm_buffer: int = DEFAULT_KPM_BUFFER,
        verdict_stream_bytes: int = DEFAULT_VERDICT_STREAM_BYTES,
        incident_stream_bytes: int = DEFAULT_INCIDENT_STREAM_BYTES,
        kpm_stream_bytes: int = DEFAULT_KPM_STREAM_BYTES,
        stream_sample_s: float = 10.0,
        prefix: str = PREFIX,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 5.0,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        close_timeout_s: float = 5.0,
        cell_state_interval_s: float = 1.0,
        tls: ClientTls | None = None,
        auth: RedisAuth | None = None,
        cluster: bool = False,
    ) -> None:
        self._url = redact_url(url)
        self._keys = sdl_keys(prefix)
        self._budgets = {
            "verdicts": StreamBudget("verdicts", verdict_stream_bytes),
            "incidents": StreamBudget("incidents", incident_stream_bytes),
            "kpm": StreamBudget("kpm", kpm_stream_bytes),
        }
        self._stream_sample_s = stream_sample_s
        self._sampled_at = -stream_sample_s  # the first write samples
        self._close_timeout_s = close_timeout_s
        self._connect = functools.partial(
            redis_client,
            url,
            cluster=cluster,
            tls=tls,
            auth=auth,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # the writer retries, with its own backoff; other calls fail fast
        )
        self._client = self._connect()
        RedisPolicies.__init__(self, self._client, self._keys, self._url)
        self._buffer = WriteBuffer(
            verdict_cells=verdict_buffer, incident_events=incident_buffer, kpm_indications=kpm_buffer
        )
        self._open = OpenIncidents()
        self._cell_states = CellStateRounds(cell_state_interval_s, self._open.by_cell)
        self._writer = BackgroundWriter(
            self._buffer,
            self._write,
            self._ping,
            retryable=REDIS_TRANSIENT,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            quiet=QuietWork(self._cell_states.due, self._write_cell_state_part),
        )
        self._kpm_ids: deque[EntryId] = deque()  # ids of this writer's KPM entries still in the stream
        self._trimmed_unread = 0

    @property
    def keys(self) -> SdlKeys:
        """The keys this data layer writes and reads."""
        return self._keys

    async def start(self) -> None:
        """Check Redis (a Redis that is down is only logged) and start the background writer."""
        if self._writer.running:
            return
        try:
            await self._client.ping()
        except REDIS_ERRORS as error:
            self._writer.connected = False
            log.warning("sdl_redis_unavailable_at_start", url=self._url, error=str(error))
        self._writer.start()

    async def close(self) -> None:
        """Flush (bounded wait), stop the writer and disconnect."""
        await self._writer.stop(self._close_timeout_s)
        await self._write_cells()
        await self._client.aclose()

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every buffered write is in Redis (the latest cell states included)."""
        return await self._writer.flush(timeout_s) and await self._write_cells()

    def health(self) -> DataLayerHealth:
        """Current health, without I/O."""
        return self._health("redis", self._writer.connected, self._errors)

    async def _ping(self) -> None:
        await self._client.ping()

    async def _write(self, drain: Drain) -> None:
        """Write one drain in one round trip; raises (before any I/O) if a write cannot be encoded."""
        keys = self._keys
        self._open.apply(drain.incidents)
        verdicts = []
        for batch in drain.verdicts:
            verdicts.append(encode_verdicts(batch))
            self._cell_states.note(batch)
        now = time.monotonic()
        states = self._cell_states
        round_part = states.next_part() if states.overdue() else []
        cells = states.fields(round_part)
        incidents = [encode_incident(event) for event in drain.incidents]
        kpm = [encode_kpm(measurements, indications) for measurements, indications in drain.kpm_entries()]
        streams = {"verdicts": (keys.verdicts, verdicts), "incidents": (keys.incidents, incidents)}
        sample = now - self._sampled_at >= self._stream_sample_s
        async with self._client.pipeline(transaction=False) as pipe:
            for key, payloads in (*streams.values(), (keys.kpm, kpm)):
                for payload in payloads:
                    pipe.xadd(key, {FIELD_DATA: payload})
            if cells:
                pipe.hset(keys.cells, mapping=cells)  # type: ignore[arg-type]  # bytes values are fine
            for kind, (key, payloads) in streams.items():
                if payloads:
                    pipe.xtrim(key, maxlen=self._limit(kind, payloads), approximate=False)
            kpm_at = len(pipe)
            if kpm:
                pipe.xinfo_groups(keys.kpm)
                pipe.xtrim(keys.kpm, maxlen=self._limit("kpm", kpm), approximate=False)
                pipe.xrange(keys.kpm, count=1)
            sampled_at = len(pipe)
            if sample:
                for key in (keys.verdicts, keys.incidents, keys.kpm):
                    pipe.memory_usage(key)
                    pipe.xlen(key)
            results = await pipe.execute()
        states.written(round_part)
        if kpm:
            added = len(verdicts) + len(incidents)
            self._count_trimmed(results[added : added + len(kpm)], *results[kpm_at : kpm_at + 3])
        if sample:
            self._sampled_at = now
            for index, budget in enumerate(self._budgets.values()):
                memory, entries = results[sampled_at + 2 * index : sampled_at + 2 * index + 2]
                budget.calibrate(int(memory or 0), int(entries))

    def _limit(self, kind: str, payloads: list[bytes]) -> int:
        """The kind's stream limit, its mean entry size following the payloads being written."""
        budget = self._budgets[kind]
        budget.observe(map(len, payloads))
        return budget.limit

    async def _write_cell_state_part(self) -> None:
        """Write the next part of the round of cell states (an error ends the round: its cells wait for the next)."""
        states = self._cell_states
        part = states.next_part()
        try:
            fields = states.fields(part)
            if fields:
                await self._client.hset(self._keys.cells, mapping=fields)  # type: ignore[arg-type]
        except (*REDIS_ERRORS, ValueError) as error:  # ValueError: a verdict batch that cannot be encoded
            log.warning("sdl_cell_states_not_written", cells=states.pending, error=str(error))
            states.abandon()
            return
        states.written(part)

    async def _write_cells(self) -> bool:
        """Write the pending latest states now; False if Redis refused or cannot be reached."""
        states = self._cell_states
        if not states.pending:
            return True
        fields = states.fields()
        try:
            await self._client.hset(self._keys.cells, mapping=fields)  # type: ignore[arg-type]
        except REDIS_ERRORS as error:
            log.warning("sdl_cell_states_not_written", cells=states.pending, error=str(error))
            return False
        states.all_written(fields)
        return True

    def _count_trimmed(self, added: list[bytes], groups: list[dict[str, Any]], trimmed: int, first: list[Any]) -> None:
        """Forget the ids of KPM entries no longer in the stream; count the trimmed ones the group had not read."""
        self._kpm_ids.extend(parse_entry_id(entry_id) for entry_id in added)
        first_left = parse_entry_id(first[0][0]) if first else None
        gone = []
        while self._kpm_ids and (first_left is None or self._kpm_ids[0] < first_left):
            gone.append(self._kpm_ids.popleft())
        # the trim took the newest of the entries that are gone; older ones went another way (a restart)
        delivered = next(
            (parse_entry_id(g["last-delivered-id"]) for g in groups if g["name"] == RAPP_CONSUMER_GROUP.encode()),
            None,
        )
        self._trimmed_unread += sum(
            delivered is None or entry_id > delivered for entry_id in gone[max(0, len(gone) - trimmed) :]
        )

    async def cell_state(self, cell_id: str) -> CellState | None:
        """The latest state of one cell, or None if it was never written."""
        value = await self._call("HGET cell state", self._client.hget(self._keys.cells, cell_id))
        return None if value is None else decode_cell_state(value)

    async def _entries(self, key: str, start_id: str) -> list[tuple[str, bytes]]:
        entries = await self._call(f"XRANGE {key}", self._client.xrange(key, min=f"({start_id}"))
        out = []
        for entry_id, fields in entries or ():
            data = (fields or {}).get(FIELD_DATA.encode())
            if entry_id is None or data is None:
                raise ValueError(f"{key} entry {entry_id!r}: no {FIELD_DATA!r} field")
            out.append((as_text(entry_id), _raw(data)))
        return out

    async def read_verdicts(self, start_id: str = "0") -> list[tuple[str, VerdictBatch]]:
        """Verdict stream entries after start_id, oldest first, with their ids."""
        return [
            (entry_id, decode_verdicts(data)) for entry_id, data in await self._entries(self._keys.verdicts, start_id)
        ]

    async def read_incidents(self, start_id: str = "0") -> list[tuple[str, IncidentEvent]]:
        """Incident stream entries after start_id, oldest first, with their ids."""
        return [
            (entry_id, decode_incident(data)) for entry_id, data in await self._entries(self._keys.incidents, start_id)
        ]

    async def read_kpm(self, start_id: str = "0") -> list[tuple[str, KpmForward]]:
        """KPM stream entries after start_id, oldest first, with their ids."""
        return [(entry_id, decode_kpm(data)) for entry_id, data in await self._entries(self._keys.kpm, start_id)]

    def policy_data(self) -> RedisPolicies:
        """The policies over a connection of their own, for another thread's event loop (release() closes it)."""
        return RedisPolicies(self._connect(), self._keys, self._url, owns_client=True)

    def replica_data(self) -> RedisReplicaData:
        """Heartbeats, node checkpoints and the network summary, on this data layer's connection."""
        return RedisReplicaData(self._client, self._keys, self._url)

    async def promoted_models(self) -> list[str]:
        """Promoted model versions, oldest first."""
        versions = await self._call("LRANGE promoted models", self._client.lrange(self._keys.models_promoted, 0, -1))
        return [as_text(version) for version in versions]

    async def get_model(self, version: str) -> tuple[bytes, bytes] | None:
        """(manifest.json bytes, model.onnx bytes) of a version, or None if the registry lacks it."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(self._keys.models_manifest, version)
            pipe.hget(self._keys.models_onnx, version)
            manifest, onnx = await self._call("HGET model", pipe.execute())
        return None if manifest is None or onnx is None else (manifest, onnx)

    async def publish_model(self, version: str, manifest_json: bytes, onnx: bytes, promote: bool = True,
                            signature: bytes | None = None) -> None:  # fmt: skip
        """Store an artifact (and its signature record, if given) under its version and, if promote, append the
        version to the promoted list once."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.models_manifest, version, manifest_json)
            pipe.hset(self._keys.models_onnx, version, onnx)
            if signature is not None:
                pipe.hset(self._keys.models_signature, version, signature)
            if promote:
                pipe.eval(PROMOTE_ONCE_SCRIPT, 1, self._keys.models_promoted, version)
            await self._call("publish model", pipe.execute())

    async def model_signature(self, version: str) -> bytes | None:
        """The signature record of a version's newest promotion, or None."""
        record = await self._call("HGET model signature", self._client.hget(self._keys.models_signature, version))
        return None if record is None else _raw(record)

    async def accepted_promotion(self, consumer: str) -> tuple[int, str] | None:
        """(counter, version) of the newest signed promotion this consumer accepted, or None."""
        key = self._keys.models_accepted
        counter, version = await self._call("HMGET accepted promotion",
                                            self._client.hmget(key, [consumer, f"{consumer}:version"]))  # fmt: skip
        if counter is None or version is None or not as_text(counter).isdigit():
            return None
        return int(as_text(counter)), as_text(version)

    async def accept_promotion(self, consumer: str, counter: int, version: str) -> None:
        """Record that the consumer accepted this promotion; a lower or equal counter never replaces a higher."""
        script = self._client.eval(ACCEPT_PROMOTION_SCRIPT, 1, self._keys.models_accepted, consumer, counter, version)
        await self._call("accept promotion", script)
