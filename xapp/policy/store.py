"""A1 policy types and instances: validated, held in memory, written through to the data layer.

Every change is persisted first and applied to memory only once the data layer took it; when the data layer
raises `DataLayerUnavailable` the change fails and memory stays as it was. The data layer appends each
accepted change to its policy change stream, and every store (this xApp's A1 server, the engine's view, other
replicas) applies it with `refresh()` (`xapp.policy.follow` reads the stream from `cursor`). Each change of
memory bumps `revision` and calls the registered listeners, so the scoring engine notices within one period.
Type 20100 is built in: a store always holds this xApp's own version of it.

Encodings in the data layer (`ranomaly_contracts.sdl`, HASH_POLICY_TYPES and HASH_POLICY_INSTANCES):

- a policy type: its document as JSON, in the mediator's `policy_type_schema` shape
  `{"name": str, "description": str, "policy_type_id": int, "create_schema": {draft-07 schema}}`;
- a policy instance record: JSON `{"body": {...}, "updated_ms": int, "seq": int}`, where `body` is the
  instance exactly as A1 sent it, `updated_ms` the wall clock (ms since the epoch) of its last create or
  replace, and `seq` a sequence that increases with every write (ties of `updated_ms` are ordered by it).
  The enforcement status is not stored: it is this replica's state, NOT_ENFORCED until its engine marks it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import structlog
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from ranomaly_contracts.sdl import PolicyChange
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.policies import PolicyData
from xapp.policy.types import POLICY_TYPE_ID, instance_rule_errors, policy_type_document

log = structlog.get_logger(__name__)

ENFORCED = "ENFORCED"
NOT_ENFORCED = "NOT_ENFORCED"
ENFORCE_REASONS = ("SCOPE_NOT_APPLICABLE", "STATEMENT_NOT_APPLICABLE", "OTHER_REASON")
"""Why an instance is not enforced, as the mediator's status response enumerates it."""
PENDING_REASON = "OTHER_REASON"  # created or replaced, not yet applied by the engine

_TYPE_DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["name", "description", "policy_type_id", "create_schema"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "policy_type_id": {"type": "integer"},
        "create_schema": {"type": "object"},
    },
}
_TYPE_DOCUMENT_VALIDATOR = Draft7Validator(_TYPE_DOCUMENT_SCHEMA)


class PolicyError(Exception):
    """A refused A1 operation; the message says what was wrong."""


class InvalidPolicy(PolicyError):
    """A bad body or an illegal id."""


class PolicyConflict(PolicyError):
    """The type exists already, still has instances, or is built in."""


class UnknownPolicyType(PolicyError):
    """No policy type with this id."""


class UnknownPolicyInstance(PolicyError):
    """No policy instance with this id in this type."""


@dataclass(frozen=True, slots=True)
class PolicyType:
    """A registered policy type: its document and the validator of its instances."""

    type_id: int
    document: dict[str, Any]
    validator: Any  # Draft7Validator of document["create_schema"]


@dataclass(frozen=True, slots=True)
class PolicyInstance:
    """One policy instance: its body, when it was last written, and its enforcement status. Do not mutate."""

    type_id: int
    instance_id: str
    body: dict[str, Any]
    updated_ms: int
    seq: int
    enforced: bool = False
    reason: str | None = PENDING_REASON  # one of ENFORCE_REASONS when not enforced, None when enforced

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: a larger key was updated more recently."""
        return self.updated_ms, self.seq

    def encode(self) -> bytes:
        """The record as the data layer stores it (see the module docstring)."""
        return json.dumps({"body": self.body, "updated_ms": self.updated_ms, "seq": self.seq}).encode()

    @classmethod
    def decode(cls, type_id: int, instance_id: str, record: bytes) -> PolicyInstance:
        """A stored record read back, NOT_ENFORCED; ValueError if it is not one."""
        fields = json.loads(record)
        if not isinstance(fields, dict):
            raise ValueError(f"record is {type(fields).__name__}, not an object")
        body, updated_ms, seq = fields.get("body"), fields.get("updated_ms"), fields.get("seq")
        if not isinstance(body, dict) or type(updated_ms) is not int or type(seq) is not int:
            raise ValueError("record needs an object 'body' and integers 'updated_ms' and 'seq'")
        return cls(type_id, instance_id, body, updated_ms, seq)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _schema_errors(validator: Any, body: Any) -> list[str]:
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}" for e in errors]


def _policy_type(type_id: int, document: Any) -> PolicyType:
    """A checked policy type; InvalidPolicy naming the field otherwise."""
    errors = _schema_errors(_TYPE_DOCUMENT_VALIDATOR, document)
    if errors:
        raise InvalidPolicy("; ".join(errors))
    if document["policy_type_id"] != type_id:
        raise InvalidPolicy(f"policy_type_id: {document['policy_type_id']} differs from the path's {type_id}")
    schema = document["create_schema"]
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f".{p}" for p in exc.absolute_path)
        raise InvalidPolicy(f"create_schema{where}: not a draft-07 schema: {exc.message}") from None
    return PolicyType(type_id, {**document, "policy_type_id": type_id}, Draft7Validator(schema))


class PolicyStore:
    """Policy types and instances in memory, written through to the data layer; `load()` before use."""

    def __init__(self, datalayer: PolicyData, clock_ms: Callable[[], int] = _wall_ms) -> None:
        self._datalayer = datalayer
        self.cursor = "0-0"  # the last change stream entry this store reflects
        self._clock_ms = clock_ms
        self._types: dict[int, PolicyType] = {}
        self._instances: dict[int, dict[str, PolicyInstance]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()
        self._loaded = False
        self._seq = 0
        self._revision = 0
        # Local writes (this store's A1 operations): a record written here while `refresh` read it from the data
        # layer keeps what was written, since what was read may be older (a deleted instance would come back).
        self._writes = 0
        self._written: dict[tuple[int, str | None], int] = {}  # record -> the write count after its last write

    @property
    def loaded(self) -> bool:
        """Whether `load()` has succeeded."""
        return self._loaded

    @property
    def revision(self) -> int:
        """Incremented on every change of types or instances (not on enforcement marks)."""
        return self._revision

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every change; its exceptions are logged, never raised."""
        self._listeners.append(callback)

    async def load(self) -> None:
        """Read every type and instance from the data layer and register type 20100 if absent or outdated.

        Stored records that cannot be decoded or no longer validate are logged and left out. Once loaded,
        further calls do nothing: changes arrive through `refresh()` and `resync()`.
        """
        async with self._lock:
            if self._loaded:
                return
            cursor = await self._datalayer.policy_changes_head()
            types, instances, _, outdated = await self._read_all()
            if outdated:
                await self._datalayer.put_policy_type(POLICY_TYPE_ID, json.dumps(policy_type_document()).encode())
            self._seq = max((record.seq for by_id in instances.values() for record in by_id.values()), default=0)
            self._types, self._instances, self._loaded, self.cursor = types, instances, True, cursor
            log.info("a1_policies_loaded", types=len(types), instances=sum(map(len, instances.values())))
            self._changed()

    async def _read_all(self) -> tuple[dict[int, PolicyType], dict[int, dict[str, PolicyInstance]], set[Any], bool]:
        """Every stored type and instance that decodes and validates (type 20100: the built-in version), the keys
        of those that do not (logged), and whether the stored 20100 is absent or outdated. Decoded on a worker
        thread (see `refresh`)."""
        stored_types = await self._datalayer.policy_types()
        records = await self._datalayer.policy_instances()
        return await asyncio.to_thread(self._decode_all, stored_types, records)

    def _decode_all(
        self, stored_types: dict[int, bytes], records: dict[tuple[int, str], bytes]
    ) -> tuple[dict[int, PolicyType], dict[int, dict[str, PolicyInstance]], set[Any], bool]:
        types: dict[int, PolicyType] = {}
        refused: set[Any] = set()
        for type_id, raw in stored_types.items():
            try:
                types[type_id] = _policy_type(type_id, json.loads(raw))
            except (ValueError, InvalidPolicy) as exc:
                log.warning("a1_stored_type_skipped", type_id=type_id, error=str(exc))
                refused.add(type_id)
        builtin = policy_type_document()
        outdated = POLICY_TYPE_ID not in types or types[POLICY_TYPE_ID].document != builtin
        if outdated:
            types[POLICY_TYPE_ID] = _policy_type(POLICY_TYPE_ID, builtin)
        instances: dict[int, dict[str, PolicyInstance]] = {type_id: {} for type_id in types}
        for (type_id, instance_id), raw in records.items():
            try:
                instances[type_id][instance_id] = self._decode(types, type_id, instance_id, raw)
            except ValueError as exc:
                log.warning("a1_stored_instance_skipped", type_id=type_id, instance_id=instance_id, error=str(exc))
                refused.add((type_id, instance_id))
        return types, instances, refused, outdated

    def _decode(self, types: dict[int, PolicyType], type_id: int, instance_id: str, raw: bytes) -> PolicyInstance:
        """A stored instance record, checked against its type; ValueError saying why it is refused."""
        if type_id not in types:
            raise ValueError(f"policy type {type_id} is not stored")
        record = PolicyInstance.decode(type_id, instance_id, raw)
        errors = self._instance_errors(types[type_id], instance_id, record.body)
        if errors:
            raise ValueError("; ".join(errors))
        return record

    async def refresh(self, changes: Collection[PolicyChange]) -> Counter[str]:
        """Re-read the records these changes name (one change per record) and hold what the data layer holds.

        A record that cannot be decoded or validated, and a record a `put` names that is gone, keep the version
        held before (nothing accepted is lost; a later delete removes it). Returns those problems by reason
        ("record_corrupt", "record_missing"), each logged as an error. Records are decoded and validated on a
        worker thread, so that the calling loop (the scoring loop) is held up for a GIL slice at a time.
        """
        began = self._writes
        ops = {(change.type_id, change.instance_id): change.op for change in changes}
        type_ids = [type_id for type_id, instance_id in ops if instance_id is None and type_id != POLICY_TYPE_ID]
        keys = [(type_id, instance_id) for type_id, instance_id in ops if instance_id is not None]
        documents = await self._datalayer.read_policy_types(type_ids)
        records = await self._datalayer.read_policy_instances(keys)
        problems: Counter[str] = Counter()
        async with self._lock:
            self._require_loaded()
            changed = False
            for type_id, raw in documents.items():
                if self._written.get((type_id, None), 0) <= began:
                    changed |= self._refresh_type(type_id, raw, ops[type_id, None], problems)
            decoded = await asyncio.to_thread(self._decode_records, dict(self._types), records)
            for (type_id, instance_id), record in decoded.items():
                if self._written.get((type_id, instance_id), 0) <= began:  # else written here since: its entry follows
                    changed |= self._refresh_instance(type_id, instance_id, record, ops[type_id, instance_id], problems)
            self._written = {key: count for key, count in self._written.items() if count > began}
            if changed:
                self._changed()
        return problems

    def _refresh_type(self, type_id: int, raw: bytes | None, op: str, problems: Counter[str]) -> bool:
        held = self._types.get(type_id)
        if raw is None:
            if op == "put" and held is not None:
                problems["record_missing"] += 1
                log.error("a1_change_record_missing", type_id=type_id, kept=True)
                return False
            if held is None:
                return False
            del self._types[type_id], self._instances[type_id]
            return True
        try:
            ptype = _policy_type(type_id, json.loads(raw))
        except (ValueError, InvalidPolicy) as exc:
            problems["record_corrupt"] += 1
            log.error("a1_change_record_corrupt", type_id=type_id, kept=held is not None, error=str(exc))
            return False
        if held is not None and held.document == ptype.document:
            return False
        self._types[type_id] = ptype
        self._instances.setdefault(type_id, {})
        return True

    def _decode_records(
        self, types: dict[int, PolicyType], records: dict[tuple[int, str], bytes | None]
    ) -> dict[tuple[int, str], PolicyInstance | ValueError | None]:
        """Each record decoded and validated, or why not, or None if it is not stored."""
        decoded: dict[tuple[int, str], PolicyInstance | ValueError | None] = {}
        for (type_id, instance_id), raw in records.items():
            try:
                decoded[type_id, instance_id] = None if raw is None else self._decode(types, type_id, instance_id, raw)
            except ValueError as exc:
                decoded[type_id, instance_id] = exc
        return decoded

    def _refresh_instance(
        self, type_id: int, instance_id: str, record: PolicyInstance | ValueError | None, op: str,
        problems: Counter[str],
    ) -> bool:  # fmt: skip
        held = self._instances.get(type_id, {}).get(instance_id)
        if record is None:
            if op == "put" and held is not None:
                problems["record_missing"] += 1
                log.error("a1_change_record_missing", type_id=type_id, instance_id=instance_id, kept=True)
                return False
            if held is None:
                return False
            del self._instances[type_id][instance_id]
            return True
        if isinstance(record, ValueError):
            problems["record_corrupt"] += 1
            log.error(
                "a1_change_record_corrupt", type_id=type_id, instance_id=instance_id, kept=held is not None,
                error=str(record),
            )  # fmt: skip
            return False
        if held is not None and (held.order, held.body) == (record.order, record.body):
            return False
        self._instances[type_id][instance_id] = record
        self._seq = max(self._seq, record.seq)
        return True

    async def resync(self) -> int:
        """Re-read every record (change entries were lost or unreadable) and hold what the data layer holds.

        Records that are refused keep the version held before; unchanged records keep their enforcement.
        Returns how many were refused (logged).
        """
        cursor = await self._datalayer.policy_changes_head()
        types, instances, refused, _ = await self._read_all()
        async with self._lock:
            self._require_loaded()
            for key in refused:
                if isinstance(key, int) and key in self._types:
                    types[key] = self._types[key]
                    instances.setdefault(key, {}).update(self._instances[key])
            for key in refused:
                if isinstance(key, tuple) and key[0] in instances and key[1] in self._instances.get(key[0], {}):
                    instances[key[0]][key[1]] = self._instances[key[0]][key[1]]
            for type_id, by_id in instances.items():
                for instance_id, record in by_id.items():
                    held = self._instances.get(type_id, {}).get(instance_id)
                    if held is not None and (held.order, held.body) == (record.order, record.body):
                        by_id[instance_id] = held
                    self._seq = max(self._seq, record.seq)
            self._types, self._instances, self.cursor = types, instances, cursor
            log.info("a1_policies_resynced", types=len(types), instances=sum(map(len, instances.values())))
            self._changed()
        return len(refused)

    async def check(self) -> None:
        """Read the data layer once; DataLayerUnavailable if it cannot be reached now."""
        await self._datalayer.policy_types()

    def type_ids(self) -> list[int]:
        """Registered policy type ids, ascending."""
        self._require_loaded()
        return sorted(self._types)

    def policy_type(self, type_id: int) -> PolicyType:
        """A registered type; UnknownPolicyType otherwise."""
        self._require_loaded()
        found = self._types.get(type_id)
        if found is None:
            raise UnknownPolicyType(f"policy type {type_id} not found")
        return found

    def instances(self, type_id: int) -> dict[str, PolicyInstance]:
        """A snapshot of a type's instances by id; UnknownPolicyType if the type is not registered."""
        self.policy_type(type_id)
        return dict(self._instances[type_id])

    def instance(self, type_id: int, instance_id: str) -> PolicyInstance:
        """One instance; UnknownPolicyType or UnknownPolicyInstance otherwise."""
        self.policy_type(type_id)
        found = self._instances[type_id].get(instance_id)
        if found is None:
            raise UnknownPolicyInstance(f"policy instance {instance_id!r} of type {type_id} not found")
        return found

    async def create_type(self, type_id: int, document: Any) -> PolicyType:
        """Register a new type; PolicyConflict if it exists (replacing is not allowed), InvalidPolicy if bad."""
        async with self._lock:
            self._require_loaded()
            if type_id in self._types:
                raise PolicyConflict(f"policy type {type_id} already exists; delete it first to replace it")
            ptype = _policy_type(type_id, document)
            await self._datalayer.put_policy_type(type_id, json.dumps(ptype.document).encode())
            self._types[type_id], self._instances[type_id] = ptype, {}
            self._wrote(type_id, None)
            log.info("a1_type_created", type_id=type_id)
            self._changed()
            return ptype

    async def delete_type(self, type_id: int) -> None:
        """Remove a type that has no instances; type 20100 is built in and stays."""
        async with self._lock:
            self.policy_type(type_id)
            if type_id == POLICY_TYPE_ID:
                raise PolicyConflict(f"policy type {type_id} is built into this xApp and cannot be deleted")
            if self._instances[type_id]:
                raise PolicyConflict(
                    f"policy type {type_id} still has {len(self._instances[type_id])} instances; delete them first"
                )
            await self._datalayer.delete_policy_type(type_id)
            del self._types[type_id], self._instances[type_id]
            self._wrote(type_id, None)
            log.info("a1_type_deleted", type_id=type_id)
            self._changed()

    async def put_instance(self, type_id: int, instance_id: str, body: Any) -> tuple[PolicyInstance, bool]:
        """Create or replace an instance after validating it; (the record, whether it was created)."""
        async with self._lock:
            ptype = self.policy_type(type_id)
            errors = self._instance_errors(ptype, instance_id, body)
            if errors:
                raise InvalidPolicy("; ".join(errors))
            self._seq += 1
            record = PolicyInstance(type_id, instance_id, copy.deepcopy(body), self._clock_ms(), self._seq)
            await self._datalayer.put_policy_instance(type_id, instance_id, record.encode())
            created = instance_id not in self._instances[type_id]
            self._instances[type_id][instance_id] = record
            self._wrote(type_id, instance_id)
            log.info("a1_instance_put", type_id=type_id, instance_id=instance_id, created=created)
            self._changed()
            return record, created

    async def delete_instance(self, type_id: int, instance_id: str) -> None:
        """Remove an instance; UnknownPolicyType or UnknownPolicyInstance if there is none."""
        async with self._lock:
            self.instance(type_id, instance_id)
            await self._datalayer.delete_policy_instance(type_id, instance_id)
            del self._instances[type_id][instance_id]
            self._wrote(type_id, instance_id)
            log.info("a1_instance_deleted", type_id=type_id, instance_id=instance_id)
            self._changed()

    def find(self, type_id: int, instance_id: str) -> PolicyInstance | None:
        """The instance held now, or None; safe to call from another thread (one dict lookup each)."""
        return self._instances.get(type_id, {}).get(instance_id)

    def mark_enforced(self, type_id: int, instance_id: str, enforced: bool, reason: str | None = None) -> bool:
        """Set an instance's enforcement status (the engine calls this); False if the instance is gone.

        A reason, one of ENFORCE_REASONS (default OTHER_REASON), applies only when not enforced.
        Call it in the same step as reading the instances, so a newer body is never marked by mistake.
        """
        if not enforced and reason is not None and reason not in ENFORCE_REASONS:
            raise ValueError(f"reason must be one of {ENFORCE_REASONS}, got {reason!r}")
        found = self._instances.get(type_id, {}).get(instance_id)
        if found is None:
            return False
        status = None if enforced else (reason or PENDING_REASON)
        self._instances[type_id][instance_id] = replace(found, enforced=enforced, reason=status)
        return True

    def _instance_errors(self, ptype: PolicyType, instance_id: str, body: Any) -> list[str]:
        errors = _schema_errors(ptype.validator, body)
        if not errors and ptype.type_id == POLICY_TYPE_ID:
            errors = instance_rule_errors(instance_id, body)
        return errors

    def _wrote(self, type_id: int, instance_id: str | None) -> None:
        self._writes += 1
        self._written[type_id, instance_id] = self._writes

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise DataLayerUnavailable("policy store not loaded from the data layer yet")

    def _changed(self) -> None:
        self._revision += 1
        for callback in self._listeners:
            try:
                callback()
            except Exception:  # a listener's bug must not fail an A1 operation that is already persisted
                log.exception("a1_listener_failed", callback=repr(callback))
