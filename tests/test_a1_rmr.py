"""A1 over RMR: the mediator's 20010 quirks in, 20011 replies out, 20012 queries, and malformed messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.policy_fakes import FakePolicyDataLayer
from xapp.policy.handler import A1Handler
from xapp.policy.rmr import A1_POLICY_QUERY, A1_POLICY_REQ, A1_POLICY_RESP, A1RmrAdapter, encode_policy_query
from xapp.policy.store import PolicyStore
from xapp.policy.types import POLICY_TYPE_ID

BODY = {"enabled": True, "scope": {"nodes": ["gnb-001"]}, "threshold": {"mode": "quantile", "value": 0.99}}


@pytest.fixture
def datalayer() -> FakePolicyDataLayer:
    return FakePolicyDataLayer()


@pytest.fixture
def store(datalayer: FakePolicyDataLayer) -> PolicyStore:
    return PolicyStore(datalayer)


@pytest.fixture
def adapter(store: PolicyStore) -> A1RmrAdapter:
    return A1RmrAdapter(A1Handler(store), handler_id="ranomaly-xapp-0")


def request(operation: str, instance_id: str = "ops-1", payload: Any = "", type_id: Any = "20100") -> bytes:
    """A 20010 payload as the mediator sends it: type id and payload (the body) as strings by default."""
    message = {"operation": operation, "policy_type_id": type_id, "policy_instance_id": instance_id, "payload": payload}
    return json.dumps(message).encode()


def reply(raw: bytes | None) -> dict[str, Any]:
    assert raw is not None
    decoded = json.loads(raw)
    assert isinstance(decoded, dict)
    return decoded


def test_message_types_are_the_mediators() -> None:
    assert (A1_POLICY_REQ, A1_POLICY_RESP, A1_POLICY_QUERY) == (20010, 20011, 20012)


def test_the_query_carries_the_type_id_as_a_number() -> None:
    assert json.loads(encode_policy_query()) == {"policy_type_id": 20100}
    assert json.loads(encode_policy_query(7)) == {"policy_type_id": 7}


async def test_create_with_string_type_id_and_string_payload(adapter: A1RmrAdapter, store: PolicyStore) -> None:
    answer = reply(await adapter.handle_request(request("CREATE", payload=json.dumps(BODY))))
    assert answer == {
        "policy_type_id": 20100,
        "policy_instance_id": "ops-1",
        "handler_id": "ranomaly-xapp-0",
        "status": "OK",
    }
    assert isinstance(answer["policy_type_id"], int)
    assert store.instance(POLICY_TYPE_ID, "ops-1").body == BODY


async def test_update_with_number_type_id_and_object_payload(adapter: A1RmrAdapter, store: PolicyStore) -> None:
    await adapter.handle_request(request("CREATE", payload=json.dumps(BODY)))
    updated = {**BODY, "enabled": False}
    answer = reply(await adapter.handle_request(request("UPDATE", payload=updated, type_id=20100)))
    assert (answer["policy_type_id"], answer["status"]) == (20100, "OK")
    assert store.instance(POLICY_TYPE_ID, "ops-1").body == updated


async def test_delete_replies_deleted_even_for_an_unknown_instance(adapter: A1RmrAdapter, store: PolicyStore) -> None:
    await adapter.handle_request(request("CREATE", payload=json.dumps(BODY)))
    assert reply(await adapter.handle_request(request("DELETE")))["status"] == "DELETED"
    assert store.instances(POLICY_TYPE_ID) == {}
    assert reply(await adapter.handle_request(request("DELETE", instance_id="never")))["status"] == "DELETED"


async def test_refused_bodies_reply_error(adapter: A1RmrAdapter, store: PolicyStore) -> None:
    bad = {"enabled": True, "threshold": {"mode": "sigma", "value": -1}}
    assert reply(await adapter.handle_request(request("CREATE", payload=json.dumps(bad))))["status"] == "ERROR"
    model = {"enabled": True, "model_version": "m2"}
    assert reply(await adapter.handle_request(request("CREATE", payload=model)))["status"] == "ERROR"
    answer = reply(await adapter.handle_request(request("CREATE", payload=json.dumps(BODY), type_id="4242")))
    assert (answer["policy_type_id"], answer["status"]) == (4242, "ERROR")
    assert store.instances(POLICY_TYPE_ID) == {}
    assert adapter.malformed == 0  # well-formed messages whose policy was refused


async def test_malformed_payloads_of_an_identified_instance_reply_error(adapter: A1RmrAdapter) -> None:
    for payload in ["{not json", "[1]", "", None, 5]:
        answer = reply(await adapter.handle_request(request("CREATE", payload=payload)))
        assert (answer["policy_instance_id"], answer["status"]) == ("ops-1", "ERROR"), payload
    assert reply(await adapter.handle_request(request("REPLACE", payload=json.dumps(BODY))))["status"] == "ERROR"
    assert adapter.malformed == 3  # the two unparsable strings and the unknown operation


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe garbage",
        b"",
        b"[1, 2]",
        b'{"operation": "CREATE", "policy_instance_id": "x", "payload": "{}"}',
        request("CREATE", type_id="abc"),
        request("CREATE", type_id=0),
        request("CREATE", type_id=20100.0),
        request("CREATE", type_id=True),
        request("CREATE", instance_id=""),
        json.dumps({"operation": "CREATE", "policy_type_id": "20100", "policy_instance_id": 5}).encode(),
    ],
)
async def test_unidentifiable_messages_give_no_reply_and_are_counted(adapter: A1RmrAdapter, raw: bytes) -> None:
    assert await adapter.handle_request(raw) is None
    assert adapter.malformed == 1


async def test_an_unavailable_data_layer_replies_error(
    adapter: A1RmrAdapter, store: PolicyStore, datalayer: FakePolicyDataLayer
) -> None:
    assert reply(await adapter.handle_request(request("CREATE", payload=json.dumps(BODY))))["status"] == "OK"
    datalayer.down = True
    assert reply(await adapter.handle_request(request("UPDATE", payload=json.dumps(BODY))))["status"] == "ERROR"
    assert reply(await adapter.handle_request(request("DELETE")))["status"] == "ERROR"
    datalayer.down = False
    assert list(store.instances(POLICY_TYPE_ID)) == ["ops-1"]


async def test_an_unexpected_failure_is_swallowed_and_counted(store: PolicyStore) -> None:
    class Broken(A1Handler):
        async def put_instance(self, type_id: object, instance_id: object, body: object) -> Any:
            raise KeyError("bug")

    adapter = A1RmrAdapter(Broken(store), handler_id="h")
    assert await adapter.handle_request(request("CREATE", payload=json.dumps(BODY))) is None
    assert adapter.malformed == 1
