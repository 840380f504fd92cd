"""The A1 policy store: validation naming the field, write-through persistence, restarts, revision, status."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]

from tests.policy_fakes import FakePolicyDataLayer
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.policies import PolicyData
from xapp.datalayer.redis import RedisDataLayer
from xapp.policy.follow import PolicyFollower
from xapp.policy.store import (
    InvalidPolicy,
    PolicyConflict,
    PolicyInstance,
    PolicyStore,
    UnknownPolicyInstance,
    UnknownPolicyType,
)
from xapp.policy.types import CREATE_SCHEMA, MODEL_INSTANCE_ID, POLICY_TYPE_ID, policy_type_document

GENERIC_TYPE = {
    "name": "other",
    "description": "a type some other xApp handles",
    "policy_type_id": 1234,
    "create_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["rate"],
        "properties": {"rate": {"type": "integer", "minimum": 0}},
    },
}


@pytest.fixture
def datalayer() -> FakePolicyDataLayer:
    """The fake, for tests that switch the data layer off or look inside it."""
    return FakePolicyDataLayer()


@pytest.fixture(params=["fake", "memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[PolicyData]:
    """Each data layer that persists policies: the tests' fake, MemoryDataLayer and RedisDataLayer."""
    if request.param == "fake":
        yield FakePolicyDataLayer()
    elif request.param == "memory":
        yield MemoryDataLayer()
    else:
        layer = RedisDataLayer(request.getfixturevalue("redis_url"), prefix=f"test-policy-{uuid.uuid4().hex}")
        await layer.start()
        try:
            yield layer
        finally:
            for type_id, instance_id in await layer.policy_instances():
                await layer.delete_policy_instance(type_id, instance_id)
            for type_id in await layer.policy_types():
                await layer.delete_policy_type(type_id)
            await layer.close()


@pytest.fixture
async def store(datalayer: FakePolicyDataLayer) -> PolicyStore:
    store = PolicyStore(datalayer)
    await store.load()
    return store


def test_create_schema_is_a_valid_draft7_schema() -> None:
    Draft7Validator.check_schema(CREATE_SCHEMA)
    document = policy_type_document()
    assert set(document) == {"name", "description", "policy_type_id", "create_schema"}
    assert (document["policy_type_id"], document["name"]) == (20100, "ranomaly-anomaly-detection")


async def test_load_registers_the_anomaly_type_and_persists_it(backend: PolicyData) -> None:
    store = PolicyStore(backend)
    await store.load()
    assert store.type_ids() == [POLICY_TYPE_ID]
    assert json.loads((await backend.policy_types())[POLICY_TYPE_ID]) == policy_type_document()
    assert store.instances(POLICY_TYPE_ID) == {}


async def test_load_replaces_an_outdated_stored_anomaly_type(backend: PolicyData) -> None:
    outdated = {**policy_type_document(), "description": "old"}
    await backend.put_policy_type(POLICY_TYPE_ID, json.dumps(outdated).encode())
    store = PolicyStore(backend)
    await store.load()
    assert store.policy_type(POLICY_TYPE_ID).document == policy_type_document()
    assert json.loads((await backend.policy_types())[POLICY_TYPE_ID]) == policy_type_document()


async def test_reads_before_load_raise_unavailable(datalayer: FakePolicyDataLayer) -> None:
    with pytest.raises(DataLayerUnavailable):
        PolicyStore(datalayer).type_ids()


async def test_instances_survive_a_restart(backend: PolicyData) -> None:
    store = PolicyStore(backend)
    await store.load()
    body = {"enabled": True, "scope": {"nodes": ["gnb-001"]}, "threshold": {"mode": "sigma", "value": 4.0}}
    written, created = await store.put_instance(POLICY_TYPE_ID, "ops/1:a", body)
    assert created
    await store.create_type(1234, GENERIC_TYPE)
    await store.put_instance(1234, "x", {"rate": 3})
    await store.put_instance(POLICY_TYPE_ID, "gone", {"enabled": False})
    await store.delete_instance(POLICY_TYPE_ID, "gone")

    record = json.loads((await backend.policy_instances())[POLICY_TYPE_ID, "ops/1:a"])
    assert record == {"body": body, "updated_ms": written.updated_ms, "seq": written.seq}

    restarted = PolicyStore(backend)
    await restarted.load()
    assert restarted.type_ids() == [1234, POLICY_TYPE_ID]
    assert restarted.policy_type(1234).document == GENERIC_TYPE
    assert list(restarted.instances(POLICY_TYPE_ID)) == ["ops/1:a"]
    read = restarted.instance(POLICY_TYPE_ID, "ops/1:a")
    assert (read.body, read.updated_ms, read.seq, read.enforced) == (body, written.updated_ms, written.seq, False)
    assert restarted.instance(1234, "x").body == {"rate": 3}
    again, _ = await restarted.put_instance(POLICY_TYPE_ID, "ops-2", {"enabled": True})
    assert again.seq > written.seq  # the sequence continues after the stored ones


async def test_replace_keeps_one_record_and_reports_not_created(store: PolicyStore) -> None:
    first, created_first = await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": True})
    second, created_second = await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": False})
    assert (created_first, created_second) == (True, False)
    assert second.order > first.order
    assert list(store.instances(POLICY_TYPE_ID)) == ["a"]
    assert store.instance(POLICY_TYPE_ID, "a").body == {"enabled": False}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"enabled": True, "threshold": {"mode": "sigma", "value": -1}}, "threshold.value: -1 is less than or equal"),
        ({"enabled": True, "threshold": {"mode": "sigma"}}, "threshold: 'value' is a required property"),
        ({"enabled": True, "threshold": {"mode": "quantile", "value": 1.5}}, "threshold.value: 1.5 is greater than"),
        ({"enabled": True, "threshold": {"mode": "quantile", "value": 0}}, "threshold.value: 0 is less than or equal"),
        ({"enabled": True, "threshold": {"value": 2.0}}, "threshold: 'mode' is a dependency of 'value'"),
        ({"enabled": True, "threshold": {"mode": "median"}}, "threshold.mode: 'median' is not one of"),
        (
            {"enabled": True, "threshold": {"per_measurement": {"DRB.UEThpDl": 0}}},
            "threshold.per_measurement.DRB.UEThpDl: 0 is less than or equal",
        ),
        ({"enabled": True, "debounce": {"open_after": 0}}, "debounce.open_after: 0 is less than the minimum of 1"),
        ({"enabled": True, "debounce": {"close_after": 1.5}}, "debounce.close_after: 1.5 is not of type 'integer'"),
        ({"enabled": True, "scope": {"nodes": ["a"], "sites": []}}, "scope: Additional properties"),
        ({"enabled": True, "scope": {"cells": [7]}}, "scope.cells.0: 7 is not of type 'string'"),
        ({"enabled": "yes"}, "enabled: 'yes' is not of type 'boolean'"),
        ({"threshold": {"mode": "manifest"}}, "(body): 'enabled' is a required property"),
        ({"enabled": True, "colour": "red"}, "(body): Additional properties are not allowed ('colour' was unexpected)"),
    ],
)
async def test_schema_errors_name_the_field(store: PolicyStore, body: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        await store.put_instance(POLICY_TYPE_ID, "bad", body)
    assert expected in str(caught.value)
    assert store.instances(POLICY_TYPE_ID) == {}


async def test_model_version_only_in_the_model_instance(store: PolicyStore) -> None:
    with pytest.raises(InvalidPolicy, match=r"^model_version: allowed only in instance 'ranomaly-model'"):
        await store.put_instance(POLICY_TYPE_ID, "ops", {"enabled": True, "model_version": "m2"})
    with pytest.raises(InvalidPolicy, match=r"^threshold: instance 'ranomaly-model' carries only enabled and"):
        body = {"enabled": True, "model_version": "m2", "threshold": {"mode": "manifest"}}
        await store.put_instance(POLICY_TYPE_ID, MODEL_INSTANCE_ID, body)
    with pytest.raises(InvalidPolicy, match=r"^model_version: .* does not match"):
        await store.put_instance(POLICY_TYPE_ID, MODEL_INSTANCE_ID, {"enabled": True, "model_version": "../x"})
    record, _ = await store.put_instance(POLICY_TYPE_ID, MODEL_INSTANCE_ID, {"enabled": True, "model_version": "m2"})
    assert record.body["model_version"] == "m2"
    assert list(store.instances(POLICY_TYPE_ID)) == [MODEL_INSTANCE_ID]


async def test_unavailable_data_layer_fails_and_leaves_memory_unchanged(
    datalayer: FakePolicyDataLayer, store: PolicyStore
) -> None:
    await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": True})
    await store.create_type(1234, GENERIC_TYPE)
    revision = store.revision
    datalayer.down = True
    with pytest.raises(DataLayerUnavailable):
        await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": False})
    with pytest.raises(DataLayerUnavailable):
        await store.put_instance(POLICY_TYPE_ID, "b", {"enabled": True})
    with pytest.raises(DataLayerUnavailable):
        await store.delete_instance(POLICY_TYPE_ID, "a")
    with pytest.raises(DataLayerUnavailable):
        await store.delete_type(1234)
    with pytest.raises(DataLayerUnavailable):
        await store.create_type(99, {**GENERIC_TYPE, "policy_type_id": 99})
    assert store.instance(POLICY_TYPE_ID, "a").body == {"enabled": True}
    assert list(store.instances(POLICY_TYPE_ID)) == ["a"]
    assert store.type_ids() == [1234, POLICY_TYPE_ID]
    assert store.revision == revision

    datalayer.down = False
    await store.delete_instance(POLICY_TYPE_ID, "a")
    assert store.instances(POLICY_TYPE_ID) == {}
    assert (POLICY_TYPE_ID, "a") not in datalayer.instances


async def test_load_fails_while_the_data_layer_is_down(datalayer: FakePolicyDataLayer) -> None:
    datalayer.down = True
    store = PolicyStore(datalayer)
    with pytest.raises(DataLayerUnavailable):
        await store.load()
    assert not store.loaded


async def test_load_skips_records_it_cannot_read(backend: PolicyData) -> None:
    store = PolicyStore(backend)
    await store.load()
    await store.put_instance(POLICY_TYPE_ID, "good", {"enabled": True})
    await backend.put_policy_instance(POLICY_TYPE_ID, "garbled", b"{not json")
    invalid = json.dumps({"body": {"on": 1}, "updated_ms": 1, "seq": 1}).encode()
    await backend.put_policy_instance(POLICY_TYPE_ID, "invalid", invalid)
    await backend.put_policy_instance(777, "orphan", json.dumps({"body": {}, "updated_ms": 1, "seq": 1}).encode())
    restarted = PolicyStore(backend)
    await restarted.load()
    assert list(restarted.instances(POLICY_TYPE_ID)) == ["good"]


async def test_revision_and_listeners_follow_every_change(store: PolicyStore) -> None:
    seen: list[int] = []
    store.add_listener(lambda: seen.append(store.revision))

    def broken() -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    start = store.revision
    await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": True})
    await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": False})
    await store.create_type(1234, GENERIC_TYPE)
    await store.delete_type(1234)
    await store.delete_instance(POLICY_TYPE_ID, "a")
    assert seen == [start + 1, start + 2, start + 3, start + 4, start + 5]
    with pytest.raises(InvalidPolicy):
        await store.put_instance(POLICY_TYPE_ID, "a", {})
    assert store.mark_enforced(POLICY_TYPE_ID, "nope", True) is False
    assert store.revision == start + 5  # refusals and marks are no changes


async def test_enforcement_status_is_set_by_the_engine_and_reset_by_updates(store: PolicyStore) -> None:
    record, _ = await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": True})
    assert (record.enforced, record.reason) == (False, "OTHER_REASON")
    revision = store.revision
    assert store.mark_enforced(POLICY_TYPE_ID, "a", True)
    assert (store.instance(POLICY_TYPE_ID, "a").enforced, store.instance(POLICY_TYPE_ID, "a").reason) == (True, None)
    assert store.revision == revision
    assert store.mark_enforced(POLICY_TYPE_ID, "a", False, "SCOPE_NOT_APPLICABLE")
    assert store.instance(POLICY_TYPE_ID, "a").reason == "SCOPE_NOT_APPLICABLE"
    assert store.mark_enforced(POLICY_TYPE_ID, "a", True)
    await store.put_instance(POLICY_TYPE_ID, "a", {"enabled": True, "debounce": {"open_after": 4}})
    assert (store.instance(POLICY_TYPE_ID, "a").enforced, store.instance(POLICY_TYPE_ID, "a").reason) == (
        False,
        "OTHER_REASON",
    )
    with pytest.raises(ValueError, match="reason must be one of"):
        store.mark_enforced(POLICY_TYPE_ID, "a", False, "TIRED")


async def test_generic_types_follow_mediator_semantics(backend: PolicyData) -> None:
    store = PolicyStore(backend)
    await store.load()
    await store.create_type(1234, GENERIC_TYPE)
    assert json.loads((await backend.policy_types())[1234]) == GENERIC_TYPE
    assert store.policy_type(1234).document == GENERIC_TYPE
    with pytest.raises(PolicyConflict, match="already exists"):
        await store.create_type(1234, GENERIC_TYPE)
    with pytest.raises(InvalidPolicy, match=r"^rate: -1 is less than the minimum of 0"):
        await store.put_instance(1234, "x", {"rate": -1})
    await store.put_instance(1234, "x", {"rate": 1})
    with pytest.raises(PolicyConflict, match="still has 1 instances"):
        await store.delete_type(1234)
    await store.delete_instance(1234, "x")
    await store.delete_type(1234)
    assert list(await backend.policy_types()) == [POLICY_TYPE_ID]
    with pytest.raises(UnknownPolicyType):
        store.policy_type(1234)
    with pytest.raises(UnknownPolicyType):
        await store.put_instance(1234, "x", {"rate": 1})
    with pytest.raises(PolicyConflict, match="built into"):
        await store.delete_type(POLICY_TYPE_ID)
    with pytest.raises(PolicyConflict, match="already exists"):
        await store.create_type(POLICY_TYPE_ID, policy_type_document())


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({**GENERIC_TYPE, "policy_type_id": 99}, "policy_type_id: 99 differs from the path's 1234"),
        ({k: v for k, v in GENERIC_TYPE.items() if k != "name"}, "(body): 'name' is a required property"),
        ({**GENERIC_TYPE, "extra": 1}, "(body): Additional properties are not allowed"),
        ({**GENERIC_TYPE, "create_schema": {"type": "thing"}}, "create_schema.type: not a draft-07 schema"),
        ({**GENERIC_TYPE, "create_schema": []}, "create_schema: [] is not of type 'object'"),
    ],
)
async def test_bad_type_documents_are_refused_naming_the_field(
    store: PolicyStore, document: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        await store.create_type(1234, document)
    assert expected in str(caught.value)
    assert store.type_ids() == [POLICY_TYPE_ID]


async def test_unknown_instances_are_reported(store: PolicyStore) -> None:
    with pytest.raises(UnknownPolicyInstance):
        store.instance(POLICY_TYPE_ID, "missing")
    with pytest.raises(UnknownPolicyInstance):
        await store.delete_instance(POLICY_TYPE_ID, "missing")
    with pytest.raises(UnknownPolicyType):
        store.instances(5)


def test_record_encoding_round_trips() -> None:
    record = PolicyInstance(POLICY_TYPE_ID, "a", {"enabled": True}, 1_700_000_000_000, 7, enforced=True, reason=None)
    decoded = PolicyInstance.decode(POLICY_TYPE_ID, "a", record.encode())
    assert (decoded.body, decoded.updated_ms, decoded.seq, decoded.enforced) == (
        {"enabled": True},
        1_700_000_000_000,
        7,
        False,
    )
    with pytest.raises(ValueError, match="integers 'updated_ms' and 'seq'"):
        PolicyInstance.decode(POLICY_TYPE_ID, "a", b'{"body": {}, "updated_ms": "1", "seq": 1}')


async def test_load_happens_once(datalayer: FakePolicyDataLayer, store: PolicyStore) -> None:
    revision = store.revision
    await datalayer.put_policy_instance(
        POLICY_TYPE_ID, "behind-its-back", b'{"body": {"enabled": true}, "updated_ms": 1, "seq": 1}'
    )
    await store.load()
    assert store.revision == revision
    assert store.instances(POLICY_TYPE_ID) == {}


class _HeldReads(MemoryDataLayer):
    """The in-memory data layer (its change stream included) whose instance reads, once `hold` is set, wait after
    reading until `go` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold, self.read, self.go = False, asyncio.Event(), asyncio.Event()

    async def read_policy_instances(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], bytes | None]:
        found = await super().read_policy_instances(keys)
        if self.hold:
            self.read.set()
            await self.go.wait()
        return found


@pytest.mark.parametrize("then", ["delete", "replace"])
async def test_a_record_written_here_while_the_change_stream_read_it_keeps_what_was_written(then: str) -> None:
    data = _HeldReads()
    store = PolicyStore(data)
    await store.load()
    follower = PolicyFollower(store, data)
    await store.put_instance(POLICY_TYPE_ID, "x", {"enabled": True})
    data.hold = True
    polling = asyncio.create_task(follower.poll())  # reads the put's entry, then the record as it is now
    async with asyncio.timeout(10):
        await data.read.wait()
    if then == "delete":
        await store.delete_instance(POLICY_TYPE_ID, "x")
    else:
        await store.put_instance(POLICY_TYPE_ID, "x", {"enabled": False})
    data.go.set()
    await polling
    expected = None if then == "delete" else {"enabled": False}
    held = store.find(POLICY_TYPE_ID, "x")
    assert (None if held is None else held.body) == expected, "what was read before the write must not win"
    data.hold = False
    await follower.poll()  # the write's own entry: the data layer agrees
    held = store.find(POLICY_TYPE_ID, "x")
    assert (None if held is None else held.body) == expected
