"""Operators' A1 policies: validated against their type's schema, pushed to the Near-RT RIC, kept in the
data layer, and pushed again when the Near-RT side has lost them (a restart).

Policy types: the rApp keeps a copy of every type document it read from the Near-RT side (in
HASH_RAPP_POLICY_TYPES, field = type id). A sync first restores every managed type (a type of a stored
policy, or one of the rApp's own types) that the Near-RT side no longer lists, then pushes the lost
instances (operators' and the rApp's own: the model policy as last named); each type is synced on its own,
so one failing type does not hold up the others, and `sync_failures` names each failing type and why.

A record (JSON in HASH_RAPP_POLICIES, field = policy id) is the Non-RT RIC policy management's
`policy_info` (ric_id, policy_id, policytype_id, service_id, policy_data, transient,
status_notification_uri) plus `last_modified` (ISO 8601 UTC) and, for a policy put with an expiry (the
console's maintenance silences), `expires_ms` (ms since the epoch): the rApp deletes it then (`expired()`).
A policy is stored only once the Near-RT side accepted it. Transient policies are not pushed again after
the Near-RT side lost them: they are dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from ranomaly_contracts.redis_client import REDIS_ERRORS, AsyncRedis
from ranomaly_contracts.sdl import as_text
from rapp.a1.client import A1Client, A1Error

log = structlog.get_logger(__name__)

MODEL_INSTANCE_ID = "ranomaly-model"  # the rApp's own instance (model version); not for operators
OwnInstances = Callable[[], dict[tuple[int, str], dict[str, Any]]]  # (type id, instance id) -> body


class PolicyError(RuntimeError):
    """A refused operation; `status` is the HTTP status it maps to, the message says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class PolicyInfo(BaseModel):
    """One A1 policy as the Non-RT RIC policy management API v2 describes it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    ric_id: str = Field(max_length=256)  # an unknown one (empty too) is a 404, as the O-RAN SC service answers
    policy_id: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:~-]+$")
    policytype_id: str = Field(max_length=16)
    service_id: str = Field("", max_length=256)
    policy_data: dict[str, Any]
    transient: bool = False
    status_notification_uri: str = Field("", max_length=2048)  # kept and shown; no notification is sent


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schema_errors(schema: dict[str, Any], data: Any) -> list[str]:
    """Draft-07 validation errors of data, each naming the field path."""
    validator = Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(part) for part in error.absolute_path) or "(the policy itself)"
        problems.append(
            f"policy_data.{where}: {error.message}" if error.absolute_path else f"policy_data: {error.message}"
        )
    return problems


class PolicyRegistry:
    """Policies of one Near-RT RIC, kept in Redis and mirrored to the RIC over A1-P."""

    def __init__(self, client: A1Client, redis: AsyncRedis, key: str, ric_id: str, types_key: str | None = None,
                 own_types: tuple[int, ...] = (), own_instances: OwnInstances | None = None) -> None:  # fmt: skip
        self.client = client
        self.ric_id = ric_id
        self._redis = redis
        self._key = key
        self._types_key = types_key  # where type documents are kept (None: in memory only)
        self._own_types = own_types  # types synced even without a stored policy (the model's)
        self._own_instances = own_instances  # the rApp's own instances (the model policy), pushed again if lost
        self._records: dict[str, dict[str, Any]] = {}
        self._types: dict[int, dict[str, Any]] = {}  # type id -> document, as read from the Near-RT side
        self._changing = asyncio.Lock()  # one change or sync at a time: a sync never sees half a delete
        self.repushed = 0
        self.types_restored = 0
        self.sync_failures: dict[str, str] = {}  # policytype_id (or "*": the whole sync) -> why, as of the last sync
        self.sync_failed_total: dict[str, int] = {}  # policytype_id -> failed syncs so far

    async def load(self) -> None:
        """Read every stored policy."""
        try:
            stored = await self._redis.hgetall(self._key)
        except REDIS_ERRORS as exc:
            raise PolicyError(503, f"policy store unavailable: {exc}") from None
        self._records = {as_text(key): json.loads(value) for key, value in stored.items()}
        if self._types_key is not None:
            try:
                documents = await self._redis.hgetall(self._types_key)
            except REDIS_ERRORS as exc:
                raise PolicyError(503, f"policy store unavailable: {exc}") from None
            for key, value in documents.items():  # a document read from the Near-RT side meanwhile stays
                self._types.setdefault(int(as_text(key)), json.loads(value))
        log.info("a1_policies_loaded", policies=len(self._records), policy_types=len(self._types))

    def ids(
        self, policytype_id: str | None = None, ric_id: str | None = None, service_id: str | None = None
    ) -> list[str]:
        """Ids of the stored policies matching every filter given."""
        return sorted(
            pid
            for pid, record in self._records.items()
            if (policytype_id is None or record["policytype_id"] == policytype_id)
            and (ric_id is None or record["ric_id"] == ric_id)
            and (service_id is None or record["service_id"] == service_id)
        )

    def kept_type_ids(self) -> list[str]:
        """Types whose documents the rApp holds (read from the Near-RT side), and those of stored policies."""
        held = set(self._types) | {_type_number(r["policytype_id"]) for r in self._records.values()}
        return [str(t) for t in sorted(held)]

    def type_name(self, policytype_id: str) -> str | None:
        """A kept type document's `name` (None: no document kept)."""
        document = self._types.get(int(policytype_id)) if policytype_id.isdigit() else None
        return None if document is None else str(document.get("name", ""))

    def get(self, policy_id: str) -> dict[str, Any]:
        """A stored policy's record."""
        record = self._records.get(policy_id)
        if record is None:
            raise PolicyError(404, f"policy {policy_id!r} not found")
        return record

    async def type_ids(self) -> list[str]:
        """Policy types the Near-RT RIC supports."""
        return [str(t) for t in await self._call(self.client.policy_types())]

    async def type_schema(self, policytype_id: str) -> dict[str, Any]:
        """The create schema of a policy type, from the Near-RT RIC (its document kept)."""
        type_id = _type_number(policytype_id)
        document = self._types.get(type_id) or await self._keep_type(type_id)
        schema: dict[str, Any] = document.get("create_schema", {})
        return schema

    async def _keep_type(self, type_id: int) -> dict[str, Any]:
        """Read a type's document from the Near-RT side and keep it (best effort in the data layer)."""
        document = await self._call(self.client.policy_type(type_id), f"policy type {type_id}")
        if not isinstance(document, dict):
            raise PolicyError(503, f"policy type {type_id}: the Near-RT RIC answered {type(document).__name__}")
        self._types[type_id] = document
        if self._types_key is not None:
            try:
                await self._redis.hset(self._types_key, str(type_id), json.dumps(document))
            except REDIS_ERRORS as exc:
                log.warning("a1_policy_type_not_kept", policytype_id=type_id, problem=str(exc))
        return document

    def expired(self, now_ms: int) -> list[str]:
        """Ids of the stored policies whose expiry has passed."""
        return sorted(pid for pid, r in self._records.items() if r.get("expires_ms") is not None
                      and r["expires_ms"] <= now_ms)  # fmt: skip

    async def put(self, info: PolicyInfo, expires_ms: int | None = None) -> bool:
        """Validate, push and store a policy (with an expiry: deleted by the rApp then); True if it is new."""
        async with self._changing:
            return await self._put(info, expires_ms)

    async def _put(self, info: PolicyInfo, expires_ms: int | None = None) -> bool:
        if info.ric_id != self.ric_id:
            raise PolicyError(404, f"ric_id {info.ric_id!r}: unknown Near-RT RIC; this rApp manages {self.ric_id!r}")
        if info.policy_id == MODEL_INSTANCE_ID:
            raise PolicyError(
                400, f"policy_id {MODEL_INSTANCE_ID!r} is the rApp's own (model version): use the model API"
            )
        old = self._records.get(info.policy_id)
        if old is not None and old["policytype_id"] != info.policytype_id:
            raise PolicyError(400, f"policytype_id: policy {info.policy_id!r} is of type {old['policytype_id']}")
        problems = schema_errors(await self.type_schema(info.policytype_id), info.policy_data)
        if problems:
            raise PolicyError(400, "; ".join(problems))
        await self._call(self.client.put(_type_number(info.policytype_id), info.policy_id, info.policy_data))
        record = {**info.model_dump(), "last_modified": _now()}
        if expires_ms is not None:
            record["expires_ms"] = expires_ms
        await self._store(info.policy_id, record)
        log.info("a1_policy_put", policy_id=info.policy_id, policytype_id=info.policytype_id, created=old is None)
        return old is None

    async def delete(self, policy_id: str) -> None:
        """Delete a policy from the Near-RT RIC, then from the store."""
        async with self._changing:
            record = self.get(policy_id)
            await self._call(self.client.delete(_type_number(record["policytype_id"]), policy_id))
            try:
                await self._redis.hdel(self._key, policy_id)
            except REDIS_ERRORS as exc:
                raise PolicyError(503, f"policy store unavailable: {exc}") from None
            del self._records[policy_id]
            log.info("a1_policy_deleted", policy_id=policy_id)

    async def status(self, policy_id: str) -> dict[str, Any]:
        """`last_modified` and the Near-RT RIC's status of a policy."""
        record = self.get(policy_id)
        near = await self._call(self.client.status(_type_number(record["policytype_id"]), policy_id))
        return {"last_modified": record["last_modified"], "status": near}

    async def sync(self) -> int:
        """Restore lost types, then push again the instances the Near-RT RIC lost (transient policies are
        dropped instead), type by type; return how many instances were pushed. `sync_failures` says which types
        failed and why."""
        async with self._changing:
            failures: dict[str, str] = {}
            pushed = 0
            try:
                held_types = set(await self._call(self.client.policy_types(), "policy types"))
            except PolicyError as exc:
                failures["*"] = exc.detail
            else:
                managed = {_type_number(r["policytype_id"]) for r in self._records.values()} | set(self._own_types)
                for type_id in sorted(managed):
                    try:
                        pushed += await self._sync_type(type_id, type_id in held_types)
                    except (PolicyError, *REDIS_ERRORS) as exc:
                        failures[str(type_id)] = exc.detail if isinstance(exc, PolicyError) else str(exc)
            self._failed(failures)
        self.repushed += pushed
        return pushed

    def _failed(self, failures: dict[str, str]) -> None:
        for policytype_id, problem in failures.items():
            self.sync_failed_total[policytype_id] = self.sync_failed_total.get(policytype_id, 0) + 1
            if self.sync_failures.get(policytype_id) != problem:
                log.warning("a1_sync_failed", policytype_id=policytype_id, problem=problem)
        for recovered in self.sync_failures.keys() - failures.keys():
            log.info("a1_sync_recovered", policytype_id=recovered)
        self.sync_failures = failures

    async def _sync_type(self, type_id: int, held: bool) -> int:
        """Make one type whole on the Near-RT side: the type itself, then its lost instances; how many pushed."""
        if held and type_id not in self._types:
            await self._keep_type(type_id)
        if not held:
            document = self._types.get(type_id)
            if document is None:
                raise PolicyError(503, f"policy type {type_id} is missing on the Near-RT RIC and the rApp "
                                       "holds no copy of it to restore")  # fmt: skip
            await self._call(self.client.put_type(type_id, document), f"restoring policy type {type_id}")
            self.types_restored += 1
            log.warning("a1_policy_type_restored", policytype_id=type_id)
        policytype_id = str(type_id)
        policy_ids = [pid for pid, r in self._records.items() if _type_number(r["policytype_id"]) == type_id]
        own = {iid: body for (t, iid), body in (self._own_instances() if self._own_instances else {}).items()
               if t == type_id}  # fmt: skip
        if not policy_ids and not own:
            return 0
        held_ids = set(await self._call(self.client.instances(type_id), f"policy type {type_id}"))
        pushed = 0
        for instance_id, body in own.items():
            if instance_id not in held_ids:
                await self._call(self.client.put(type_id, instance_id, body), f"policy type {type_id}, {instance_id}")
                pushed += 1
                log.warning("a1_policy_repushed", policy_id=instance_id, policytype_id=policytype_id)
        for policy_id in sorted(policy_ids):
            if policy_id in held_ids:
                continue
            record = self._records[policy_id]
            if record["transient"]:
                await self._redis.hdel(self._key, policy_id)
                del self._records[policy_id]
                log.info("a1_transient_policy_dropped", policy_id=policy_id)
                continue
            where = f"policy type {type_id}, policy {policy_id!r}"
            await self._call(self.client.put(type_id, policy_id, record["policy_data"]), where)
            pushed += 1
            log.warning("a1_policy_repushed", policy_id=policy_id, policytype_id=policytype_id)
        return pushed

    async def _store(self, policy_id: str, record: dict[str, Any]) -> None:
        try:
            await self._redis.hset(self._key, policy_id, json.dumps(record))
        except REDIS_ERRORS as exc:
            raise PolicyError(503, f"policy store unavailable: {exc}; the Near-RT RIC holds {policy_id!r}") from None
        self._records[policy_id] = record

    async def _call(self, operation: Any, what: str = "") -> Any:
        """Await a client call, turning its errors into PolicyErrors with the same status."""
        try:
            return await operation
        except A1Error as exc:
            status = 404 if exc.status == 404 else 400 if exc.status < 500 else 503
            raise PolicyError(status, f"{what + ': ' if what else ''}{exc.detail}") from None


def _type_number(policytype_id: str) -> int:
    try:
        value = int(policytype_id)
    except ValueError:
        raise PolicyError(404, f"policytype_id {policytype_id!r}: O-RAN SC policy types are integers") from None
    if not 1 <= value <= 2_147_483_647:
        raise PolicyError(404, f"policytype_id {policytype_id!r}: outside 1..2147483647")
    return value
