"""The collector: the xApp's KPM and incident streams into the history folder, each entry exactly once.

It reads the KPM stream and the incidents stream (`ranomaly_contracts.sdl`) as one consumer of the group
RAPP_CONSUMER_GROUP, created at id 0 with MKSTREAM when absent so nothing already in a stream is missed.
Each read becomes one batch per stream in `rapp.history` (durable Parquet parts that carry the batch's
entry ids), and the batch's entries are acknowledged only once that write is durable.

Exactly once: a crash before the acknowledgement leaves the entries pending for this consumer. On start,
and after any failed cycle, the collector reads its own pending entries first (XREADGROUP from id 0) and
asks the history which of them are already in a complete batch: those are acknowledged without writing
them again; the parts of a batch killed halfway are removed and its entries written again. It reads new
entries (id ">") only once nothing is pending. The consumer name must therefore stay the same across
restarts (settings.consumer_name).

A KPM row whose (cell, period) the history holds already is not written again (`rapp.history`), and
counted (`duplicates`): what a replayed E2 stream forwards twice is stored once.

A malformed entry (an undecodable payload, or no payload: an entry trimmed while pending) is counted,
logged at most once per stream every `log_interval_s`, and acknowledged with its batch. Redis errors and
failed writes are retried with doubling backoff up to `retry_max_s`; a group that went missing (Redis
restarted without persistence) is created again. Retention (`rapp.history.HistoryStore.drop_expired`)
runs at start and every `retention_interval_s`.

`on_incidents`, when given, receives the decoded incident events of each batch once they are on disk and
before they are acknowledged, in stream order (`rapp.notify`); events a restart finds already written are
handed over again, so the callback must ignore repeats. If it raises, the cycle fails and is retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import cast

import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from ranomaly_contracts.ratelog import RateLimitedLog
from ranomaly_contracts.redis_auth import RedisAuth
from ranomaly_contracts.redis_client import REDIS_ERRORS, by_slot, redis_client
from ranomaly_contracts.sdl import (
    FIELD_DATA,
    PREFIX,
    RAPP_CONSUMER_GROUP,
    IncidentEvent,
    as_text,
    decode_incident,
    decode_kpm,
    sdl_keys,
)
from ranomaly_contracts.tls import ClientTls
from rapp.history import INCIDENTS, KPM, HistoryStore, KpmRows, kpm_rows
from rapp.settings import RappSettings

log = structlog.get_logger(__name__)

_DATA = FIELD_DATA.encode()
Entry = tuple[str, dict[bytes, bytes]]  # entry id, fields
_Reply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]


@dataclass
class CollectStats:
    """What one collect cycle did (or, in `CollectorStats.totals`, every cycle so far)."""

    entries: int = 0  # stream entries read, both streams
    rows: int = 0  # KPM rows written
    incidents: int = 0  # incident events written
    malformed: int = 0  # entries that could not be decoded (acknowledged, not written)
    already_written: int = 0  # pending entries found on disk after a restart (acknowledged, not written)
    duplicates: int = 0  # KPM rows not written: their (cell, period) is in the history already
    acked: int = 0  # entries acknowledged

    def add(self, other: CollectStats) -> None:
        """Add another's counts to these."""
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class CollectorStats:
    """The collector's state for health and metrics."""

    totals: CollectStats = field(default_factory=CollectStats)
    connected: bool = False  # the last cycle reached Redis
    redis_errors: int = 0  # failed cycles: Redis unreachable or refusing
    other_errors: int = 0  # failed cycles: history writes (disk) and anything unexpected
    partitions_dropped: int = 0  # day partitions removed by retention
    last_success_s: float | None = None  # wall clock of the last cycle that completed


def _payload(data: bytes | None) -> bytes:
    if data is None:
        raise ValueError(f"no {FIELD_DATA!r} field (an entry trimmed while pending, or not the xApp's)")
    return data


def _payloads(entries: Sequence[Entry]) -> list[tuple[str, bytes | None]]:
    return [(entry_id, values.get(_DATA)) for entry_id, values in entries]


def _incident_events(entries: Sequence[Entry]) -> list[IncidentEvent]:
    """The well-formed incident events among the entries (the write counts the malformed ones)."""
    events = []
    for _, data in _payloads(entries):
        with suppress(ValueError):
            events.append(decode_incident(_payload(data)))
    return events


class Collector:
    """Reads the KPM and incidents streams into a `HistoryStore`; see the module's docstring.

    `prefix` replaces the key prefix of `ranomaly_contracts.sdl` (tests). `batch` entries are read per
    stream and cycle; a read of new entries waits up to `block_ms` (0: it does not wait, and `run` pauses
    `retry_initial_s` after a cycle that found nothing). `tls` verifies a rediss:// server and presents a
    client certificate; `auth` is the ACL user; `cluster`: `redis_url` names a seed node of a Redis Cluster."""

    def __init__(
        self,
        redis_url: str,
        history_dir: str | Path,
        *,
        consumer: str = "rapp-1",
        prefix: str = PREFIX,
        batch: int = 200,
        block_ms: int = 1000,
        retention_days: float = 30.0,
        retention_interval_s: float = 3600.0,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 5.0,
        log_interval_s: float = 10.0,
        on_incidents: Callable[[Sequence[IncidentEvent]], None] | None = None,
        tls: ClientTls | None = None,
        auth: RedisAuth | None = None,
        cluster: bool = False,
    ) -> None:
        self.keys = sdl_keys(prefix)
        self.store = HistoryStore(Path(history_dir))
        self.stats = CollectorStats()
        self._consumer = consumer
        self._batch = batch
        self._block_ms = block_ms
        self._retention_days = retention_days
        self._retention_interval_s = retention_interval_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._client = redis_client(
            redis_url,
            cluster=cluster,
            tls=tls,
            auth=auth,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s + block_ms / 1000,  # a blocking read waits block_ms before it answers
            retry=Retry(NoBackoff(), 0),  # run() retries, with its own backoff
        )
        self._streams = {self.keys.kpm: KPM, self.keys.incidents: INCIDENTS}
        self._pending = dict.fromkeys(self._streams, True)  # whether to read this consumer's pending entries
        self._groups_ready = False
        self._leftovers_removed = False
        self._malformed_log = RateLimitedLog(log, log_interval_s)
        self._on_incidents = on_incidents

    @classmethod
    def from_settings(
        cls,
        settings: RappSettings,
        prefix: str = PREFIX,
        on_incidents: Callable[[Sequence[IncidentEvent]], None] | None = None,
    ) -> Collector:
        """A collector configured by the rApp's settings."""
        return cls(
            settings.redis_url,
            settings.history_dir,
            consumer=settings.consumer_name,
            prefix=prefix,
            batch=settings.collect_batch,
            block_ms=settings.collect_block_ms,
            retention_days=settings.history_retention_days,
            on_incidents=on_incidents,
            tls=settings.redis_client_tls(),
            auth=settings.redis_auth(),
            cluster=settings.redis_cluster,
        )

    async def close(self) -> None:
        """Disconnect from Redis."""
        await self._client.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until stop is set; failures are logged and retried with bounded backoff, never raised."""
        delay = self._retry_initial_s
        retention_due = 0.0
        while not stop.is_set():
            try:
                cycle = await self.collect_once()
                if time.monotonic() >= retention_due:
                    await self.apply_retention()
                    retention_due = time.monotonic() + self._retention_interval_s
            except REDIS_ERRORS as error:
                self.stats.redis_errors += 1
                self.stats.connected = False
                log.warning("collector_redis_error", error=str(error), retry_in_s=delay)
            except Exception:
                self.stats.other_errors += 1
                log.exception("collector_cycle_failed", retry_in_s=delay)
            else:
                delay = self._retry_initial_s
                if cycle.entries == 0 and self._block_ms == 0:
                    await self._pause(stop, self._retry_initial_s)
                continue
            await self._pause(stop, delay)
            delay = min(delay * 2, self._retry_max_s)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def apply_retention(self) -> list[str]:
        """Drop the day partitions older than the retention limit; their names (store/date=...)."""
        dropped = await asyncio.to_thread(self.store.drop_expired, self._retention_days)
        if dropped:
            self.stats.partitions_dropped += len(dropped)
            log.info("history_partitions_dropped", partitions=dropped, retention_days=self._retention_days)
        return dropped

    async def collect_once(self) -> CollectStats:
        """One read, write and acknowledgement for both streams; raises what failed (entries stay pending)."""
        cycle = CollectStats()
        try:
            await self._prepare()
            pending = [stream for stream, flag in self._pending.items() if flag]
            read = await self._read(pending)
            for stream, entries in read.items():
                if entries:
                    await self._collect(stream, entries, stream in pending, cycle)
            for stream in pending:
                if len(read.get(stream, ())) < self._batch:
                    self._pending[stream] = False  # this consumer has nothing left pending there
        except ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                self._pending = dict.fromkeys(self._streams, True)
                raise
            log.warning("collector_group_missing", error=str(error))
            self._groups_ready = False
        except BaseException:
            self._pending = dict.fromkeys(self._streams, True)  # a read may have been delivered unseen
            raise
        finally:
            self.stats.totals.add(cycle)
        self.stats.connected = True
        self.stats.last_success_s = time.time()
        return cycle

    async def _prepare(self) -> None:
        if not self._leftovers_removed:
            removed = await asyncio.to_thread(self.store.remove_leftovers)
            if removed:
                log.info("history_leftovers_removed", count=removed)
            self._leftovers_removed = True
        if self._groups_ready:
            return
        for stream in self._streams:
            try:
                await self._client.xgroup_create(stream, RAPP_CONSUMER_GROUP, id="0", mkstream=True)
                log.info("collector_group_created", stream=stream, group=RAPP_CONSUMER_GROUP)
            except ResponseError as error:
                if not str(error).startswith("BUSYGROUP"):
                    raise
        self._groups_ready = True

    async def _read(self, pending: list[str]) -> dict[str, list[Entry]]:
        """This consumer's pending entries of the given streams, else new entries of every stream.

        One XREADGROUP per hash slot on a cluster (`by_slot`), the slots' reads at once; with more than one slot
        a read first takes what is there and waits (block_ms) only when every stream was empty, so that an idle
        stream does not hold back a busy one."""
        if pending:
            ids, block = dict.fromkeys(pending, "0"), None  # pending reads never block
        else:
            ids, block = dict.fromkeys(self._streams, ">"), self._block_ms or None
        groups = by_slot(self._client, list(ids))
        read = await self._read_groups(groups, ids, block if len(groups) == 1 else None)
        if block is not None and len(groups) > 1 and not any(read.values()):
            read = await self._read_groups(groups, ids, block)
        return read

    async def _read_groups(
        self, groups: list[list[str]], ids: dict[str, str], block: int | None
    ) -> dict[str, list[Entry]]:
        replies = await asyncio.gather(
            *(
                self._client.xreadgroup(
                    RAPP_CONSUMER_GROUP,
                    self._consumer,
                    {stream: ids[stream] for stream in group},
                    count=self._batch,
                    block=block,
                )
                for group in groups
            )
        )
        streams_read = [stream for reply in replies for stream in cast(_Reply, reply or [])]  # RESP2 replies
        return {
            as_text(name): [(as_text(entry_id), values or {}) for entry_id, values in entries]
            for name, entries in streams_read
        }

    async def _collect(self, stream: str, entries: list[Entry], pending: bool, cycle: CollectStats) -> None:
        """Write the entries not yet on disk as one batch, then acknowledge them all."""
        kind = self._streams[stream]
        ids = [entry_id for entry_id, _ in entries]
        cycle.entries += len(ids)
        done = await asyncio.to_thread(self.store.written, kind, ids) if pending else set()
        fresh = [entry for entry in entries if entry[0] not in done]
        cycle.already_written += len(entries) - len(fresh)
        if done:
            log.info("collector_pending_already_written", stream=stream, entries=len(done))
        if fresh:
            write = self._write_kpm if kind == KPM else self._write_incidents
            duplicates = self.store.duplicates
            written, malformed = await asyncio.to_thread(write, _payloads(fresh))
            if kind == KPM:
                cycle.rows += written
                cycle.duplicates += self.store.duplicates - duplicates
            else:
                cycle.incidents += written
            cycle.malformed += len(malformed)
            for entry_id, reason in malformed:
                self._malformed_log.warning(stream, "collector_malformed_entry", stream=stream, entry_id=entry_id,
                                            error=reason)  # fmt: skip
        if kind == INCIDENTS and self._on_incidents is not None:
            events = _incident_events(entries)
            if events:
                self._on_incidents(events)
        cycle.acked += await self._client.xack(stream, RAPP_CONSUMER_GROUP, *ids)

    def _write_kpm(self, entries: list[tuple[str, bytes | None]]) -> tuple[int, list[tuple[str, str]]]:
        decoded: list[KpmRows] = []
        malformed = []
        for entry_id, data in entries:
            try:
                decoded.append(kpm_rows(decode_kpm(_payload(data))))
            except ValueError as error:
                malformed.append((entry_id, str(error)))
        return self.store.write_kpm([entry_id for entry_id, _ in entries], decoded), malformed

    def _write_incidents(self, entries: list[tuple[str, bytes | None]]) -> tuple[int, list[tuple[str, str]]]:
        decoded: list[IncidentEvent] = []
        malformed = []
        for entry_id, data in entries:
            try:
                decoded.append(decode_incident(_payload(data)))
            except ValueError as error:
                malformed.append((entry_id, str(error)))
        return self.store.write_incidents([entry_id for entry_id, _ in entries], decoded), malformed
