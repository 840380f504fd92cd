"""A1-P operations of the O-RAN SC A1 mediator over the policy store, independent of the transport.

HTTP (`xapp.policy.http`) and RMR (`xapp.policy.rmr`) both call this handler; status codes follow the
mediator's swagger: 200 reads, 201 type created, 204 type deleted, 202 instance created, replaced or
deleted, 400 bad body, illegal id on create, existing type or type with instances, 404 unknown type or
instance, 503 data layer unavailable. Ids arrive as the transport received them and are checked here: a
type id that is not an integer from 1 to 2147483647 names no type, so reads, deletes and instance writes
answer 404 for it (the mediator's route miss), and creating a type with it 400 (the spec's "illegal ID").
An instance id is any string of 1 to 256 characters (the spec: "can be any string").

An instance's status also names, under `warnings`, the cells, nodes and measurements a type-20100 instance
names that this xApp does not know now (`xapp.policy.known`): the policy is accepted, since they may come later.

An instance's status is the enforcement that a second store, the engine's view, holds for the same version
of the instance (the same `order`); until the engine's view has that version, it is NOT_ENFORCED.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from xapp.datalayer.base import DataLayerUnavailable
from xapp.policy.known import KnownNames, policy_warnings
from xapp.policy.store import (
    ENFORCED,
    NOT_ENFORCED,
    PENDING_REASON,
    InvalidPolicy,
    PolicyConflict,
    PolicyStore,
    UnknownPolicyInstance,
    UnknownPolicyType,
)

log = structlog.get_logger(__name__)

MAX_TYPE_ID = 2_147_483_647
MAX_INSTANCE_ID_LENGTH = 256
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class A1Result:
    """The outcome of one A1 operation: a status code and a JSON body (None: no body)."""

    status: int
    body: Any = None

    @property
    def ok(self) -> bool:
        """Whether the operation succeeded (2xx)."""
        return 200 <= self.status < 300


def parse_type_id(value: object) -> int:
    """A policy type id from an int or a decimal string, 1..2147483647; InvalidPolicy naming it otherwise."""
    if type(value) is int:
        type_id = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        type_id = int(value)
    else:
        raise InvalidPolicy(f"policy_type_id: must be an integer from 1 to {MAX_TYPE_ID}, got {value!r}")
    if not 1 <= type_id <= MAX_TYPE_ID:
        raise InvalidPolicy(f"policy_type_id: must be an integer from 1 to {MAX_TYPE_ID}, got {value!r}")
    return type_id


def parse_json(raw: bytes | str, what: str) -> Any:
    """A JSON value from text (NaN and Infinity refused); InvalidPolicy naming `what` otherwise."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, or a refused constant
        raise InvalidPolicy(f"{what}: not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _require_object(body: object, what: str) -> None:
    if not isinstance(body, dict):
        raise InvalidPolicy(f"{what}: must be a JSON object, got {type(body).__name__}")


def lookup_type_id(value: object) -> int:
    """A policy type id to look up: UnknownPolicyType when it is not one (no type can have it)."""
    try:
        return parse_type_id(value)
    except InvalidPolicy:
        what = f"policy type {value!r} not found: type ids are integers from 1 to {MAX_TYPE_ID}"
        raise UnknownPolicyType(what) from None


def check_instance_id(value: object) -> str:
    """A policy instance id to create: any string of 1 to 256 characters that UTF-8 can carry (control and
    unassigned characters included, as the spec allows); InvalidPolicy naming it otherwise."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_INSTANCE_ID_LENGTH or not _utf8(value):
        raise InvalidPolicy(
            f"policy_instance_id: must be a string of 1 to {MAX_INSTANCE_ID_LENGTH} characters, got {value!r}"
        )
    return value


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, which only a JSON escape can make
        return False
    return True


def _lookup(type_id: object, instance_id: object) -> tuple[int, str]:
    """Ids of an existing instance: any text names one, or none (404)."""
    return lookup_type_id(type_id), str(instance_id)


class A1Handler:
    """The A1-P operations (list, get, create and delete of types and instances, status, healthcheck)."""

    def __init__(
        self,
        store: PolicyStore,
        enforcement: PolicyStore | None = None,
        known: Callable[[], KnownNames] | None = None,
        peers: Callable[[int, str, tuple[int, int]], list[int]] | None = None,
    ) -> None:
        self._store = store
        self._enforcement = store if enforcement is None else enforcement
        self._peers = peers  # sharded replicas: the other live ones not enforcing an instance version yet
        self._known = known  # what the xApp knows now (read on this thread); None: no warnings in statuses
        self.data_deliveries = 0  # POST /data-delivery bodies accepted (counted, not used: no EI job consumes them)

    async def healthcheck(self) -> A1Result:
        """200 when the policies are loaded and the data layer answers, else 503."""
        return await self._run("healthcheck", self._healthcheck)

    async def list_types(self) -> A1Result:
        """200 with the registered type ids."""
        return await self._run("list_types", self._list_types)

    async def get_type(self, type_id: object) -> A1Result:
        """200 with the type document, 404 if unknown."""
        return await self._run("get_type", self._get_type, type_id)

    async def create_type(self, type_id: object, document: object) -> A1Result:
        """201 once created; 400 if it exists already or the document is bad."""
        return await self._run("create_type", self._create_type, type_id, document)

    async def delete_type(self, type_id: object) -> A1Result:
        """204 once deleted; 400 if it still has instances (or is the built-in type), 404 if unknown."""
        return await self._run("delete_type", self._delete_type, type_id)

    async def list_instances(self, type_id: object) -> A1Result:
        """200 with the instance ids of a type, 404 if the type is unknown (the mediator's answer; the spec lists
        only 200 and 503, docs/conformance.md)."""
        return await self._run("list_instances", self._list_instances, type_id)

    async def get_instance(self, type_id: object, instance_id: object) -> A1Result:
        """200 with the instance body, 404 if the type or the instance is unknown."""
        return await self._run("get_instance", self._get_instance, type_id, instance_id)

    async def put_instance(self, type_id: object, instance_id: object, body: object) -> A1Result:
        """202 once created or replaced; 400 if the body is bad, 404 if the type is unknown."""
        return await self._run("put_instance", self._put_instance, type_id, instance_id, body)

    async def delete_instance(self, type_id: object, instance_id: object) -> A1Result:
        """202 once deleted, 404 if the type or the instance is unknown."""
        return await self._run("delete_instance", self._delete_instance, type_id, instance_id)

    async def get_status(self, type_id: object, instance_id: object) -> A1Result:
        """200 with `enforceStatus` (and `enforceReason` when not enforced, `warnings` when it names what the
        xApp does not know), 404 if unknown."""
        return await self._run("get_status", self._get_status, type_id, instance_id)

    async def data_delivery(self, body: object) -> A1Result:
        """200 once counted: an enrichment data delivery (a JSON object), which this xApp runs no job for; 400
        when the body is not an object."""
        if not isinstance(body, dict):
            return A1Result(400, {"detail": f"body: must be a JSON object, got {type(body).__name__}"})
        self.data_deliveries += 1
        job = body.get("job")
        log.info("a1_data_delivered", job=job if isinstance(job, str) else None, count=self.data_deliveries)
        return A1Result(200)

    async def _healthcheck(self) -> A1Result:
        await self._store.check()
        return A1Result(200)

    async def _list_types(self) -> A1Result:
        return A1Result(200, self._store.type_ids())

    async def _get_type(self, type_id: object) -> A1Result:
        return A1Result(200, self._store.policy_type(lookup_type_id(type_id)).document)

    async def _create_type(self, type_id: object, document: object) -> A1Result:
        valid_id = parse_type_id(type_id)
        _require_object(document, "body")
        await self._store.create_type(valid_id, document)
        return A1Result(201)

    async def _delete_type(self, type_id: object) -> A1Result:
        await self._store.delete_type(lookup_type_id(type_id))
        return A1Result(204)

    async def _list_instances(self, type_id: object) -> A1Result:
        return A1Result(200, sorted(self._store.instances(lookup_type_id(type_id))))

    async def _get_instance(self, type_id: object, instance_id: object) -> A1Result:
        return A1Result(200, self._store.instance(*_lookup(type_id, instance_id)).body)

    async def _put_instance(self, type_id: object, instance_id: object, body: object) -> A1Result:
        valid_type = lookup_type_id(type_id)
        self._store.policy_type(valid_type)  # an unknown type is a 404 before the id or body are looked at
        valid_id = check_instance_id(instance_id)
        _require_object(body, "body")
        await self._store.put_instance(valid_type, valid_id, body)
        return A1Result(202)

    async def _delete_instance(self, type_id: object, instance_id: object) -> A1Result:
        await self._store.delete_instance(*_lookup(type_id, instance_id))
        return A1Result(202)

    async def _get_status(self, type_id: object, instance_id: object) -> A1Result:
        record = self._store.instance(*_lookup(type_id, instance_id))
        seen = self._enforcement.find(record.type_id, record.instance_id)
        status: dict[str, Any]
        if seen is None or seen.order != record.order:
            status = {"enforceStatus": NOT_ENFORCED, "enforceReason": PENDING_REASON}
        elif seen.enforced and self._peers is not None and self._peers(seen.type_id, seen.instance_id, seen.order):
            status = {"enforceStatus": NOT_ENFORCED, "enforceReason": PENDING_REASON}  # another replica lags
        elif seen.enforced:
            status = {"enforceStatus": ENFORCED}
        else:
            status = {"enforceStatus": NOT_ENFORCED, "enforceReason": seen.reason}
        warnings = [] if self._known is None else policy_warnings(record, self._known())
        return A1Result(200, {**status, "warnings": warnings} if warnings else status)

    async def _run(self, operation: str, action: Callable[..., Awaitable[A1Result]], *args: object) -> A1Result:
        """Load the store if it is not yet, run the action, and turn refusals into status codes."""
        try:
            if not self._store.loaded:
                await self._store.load()
            return await action(*args)
        except (InvalidPolicy, PolicyConflict) as exc:
            status, detail = 400, str(exc)
        except (UnknownPolicyType, UnknownPolicyInstance) as exc:
            status, detail = 404, str(exc)
        except DataLayerUnavailable as exc:
            status, detail = 503, f"data layer unavailable: {exc}"
        log.info("a1_refused", operation=operation, status=status, detail=detail)
        return A1Result(status, {"detail": detail})
