"""A1-P over HTTP against a real uvicorn server on loopback: the mediator's paths, codes and bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from ranomaly_contracts.auth.apikey import ApiKey
from ranomaly_contracts.auth.guard import API_KEY_HEADER, Guard
from tests.policy_fakes import FakePolicyDataLayer
from xapp.policy.handler import A1Handler
from xapp.policy.http import a1_router
from xapp.policy.known import KnownNames
from xapp.policy.store import PolicyStore
from xapp.policy.types import POLICY_TYPE_ID, policy_type_document

INSTANCE = f"/policytypes/{POLICY_TYPE_ID}/policies/ops-1"
KEY = "test-key"
BODY = {"enabled": True, "scope": {"cells": ["a1"]}, "threshold": {"mode": "sigma", "value": 4}}
GENERIC = {
    "name": "other",
    "description": "another xApp's type",
    "policy_type_id": 1234,
    "create_schema": {"type": "object", "properties": {"rate": {"type": "integer"}}},
}


@dataclass
class A1Server:
    client: httpx.AsyncClient
    store: PolicyStore
    datalayer: FakePolicyDataLayer
    handler: A1Handler
    origin: str  # http://127.0.0.1:<port>, for /data-delivery (outside /A1-P/v2)
    known: list[KnownNames]  # what the handler is told the xApp knows: the last one


@pytest.fixture
async def a1() -> AsyncIterator[A1Server]:
    datalayer = FakePolicyDataLayer()
    store = PolicyStore(datalayer)
    app = FastAPI()
    known = [KnownNames(cells=frozenset({"a1"}))]  # the cell BODY names
    handler = A1Handler(store, known=lambda: known[-1])
    app.include_router(a1_router(handler, Guard(None, ApiKey(KEY))))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:
            assert not task.done(), "uvicorn stopped while starting"
            await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        base = f"http://127.0.0.1:{port}/A1-P/v2"
        async with httpx.AsyncClient(base_url=base, timeout=5, headers={API_KEY_HEADER: KEY}) as client:
            yield A1Server(client, store, datalayer, handler, f"http://127.0.0.1:{port}", known)
    finally:
        server.should_exit = True
        await task


async def test_healthcheck_follows_the_data_layer(a1: A1Server) -> None:
    assert (await a1.client.get("/healthcheck")).status_code == 200
    a1.datalayer.down = True
    response = await a1.client.get("/healthcheck")
    assert response.status_code == 503
    assert "data layer unavailable" in response.json()["detail"]


async def test_the_anomaly_type_is_listed_and_served(a1: A1Server) -> None:
    response = await a1.client.get("/policytypes")
    assert (response.status_code, response.json()) == (200, [POLICY_TYPE_ID])
    response = await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}")
    assert (response.status_code, response.json()) == (200, policy_type_document())


async def test_instance_lifecycle(a1: A1Server) -> None:
    response = await a1.client.put(INSTANCE, json=BODY, params={"notificationDestination": "http://nonrt/notify"})
    assert (response.status_code, response.content) == (202, b"")
    response = await a1.client.get(INSTANCE)
    assert (response.status_code, response.json()) == (200, BODY)
    response = await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}/policies")
    assert (response.status_code, response.json()) == (200, ["ops-1"])
    response = await a1.client.get(INSTANCE + "/status")
    assert (response.status_code, response.json()) == (
        200,
        {"enforceStatus": "NOT_ENFORCED", "enforceReason": "OTHER_REASON"},
    )
    assert a1.store.mark_enforced(POLICY_TYPE_ID, "ops-1", True)
    assert (await a1.client.get(INSTANCE + "/status")).json() == {"enforceStatus": "ENFORCED"}

    replaced = {**BODY, "enabled": False}
    assert (await a1.client.put(INSTANCE, json=replaced)).status_code == 202
    assert (await a1.client.get(INSTANCE)).json() == replaced
    assert (await a1.client.get(INSTANCE + "/status")).json()["enforceStatus"] == "NOT_ENFORCED"

    response = await a1.client.delete(INSTANCE, params={"notificationDestination": "http://nonrt/notify"})
    assert (response.status_code, response.content) == (202, b"")
    assert (await a1.client.get(INSTANCE)).status_code == 404
    assert (await a1.client.get(INSTANCE + "/status")).status_code == 404
    assert (await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}/policies")).json() == []


BAD_BODIES = [
    (
        b'{"enabled": true, "threshold": {"mode": "sigma", "value": -1}}',
        "threshold.value: -1 is less than or equal",
    ),
    (b'{"enabled": true, "model_version": "m2"}', "model_version: allowed only in instance 'ranomaly-model'"),
    (b"[1, 2]", "body: must be a JSON object, got list"),
    (b'"text"', "body: must be a JSON object, got str"),
    (b"{not json", "body: not valid JSON"),
    (
        b'{"enabled": true, "threshold": {"mode": "sigma", "value": NaN}}',
        "body: not valid JSON: NaN is not a JSON number",
    ),
    (b"", "body: missing"),
]


async def test_bad_instance_bodies_are_400_naming_the_problem(a1: A1Server) -> None:
    for content, expected in BAD_BODIES:
        response = await a1.client.put(INSTANCE, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, content
        assert expected in response.json()["detail"], content
    assert (await a1.client.get(INSTANCE)).status_code == 404


async def test_illegal_type_ids_name_no_type_404_and_are_400_on_create(a1: A1Server) -> None:
    for type_id in ["abc", "0", "2147483648", "-5", "1.5", "99999999999", "%20", "null,null"]:
        for response in (
            await a1.client.get(f"/policytypes/{type_id}"),
            await a1.client.get(f"/policytypes/{type_id}/policies"),
            await a1.client.put(f"/policytypes/{type_id}/policies/x", json={"enabled": True}),
            await a1.client.get(f"/policytypes/{type_id}/policies/x"),
            await a1.client.get(f"/policytypes/{type_id}/policies/x/status"),
            await a1.client.delete(f"/policytypes/{type_id}/policies/x"),
            await a1.client.delete(f"/policytypes/{type_id}"),
        ):
            assert response.status_code == 404, (type_id, response.request.method, response.request.url)
            assert response.json()["detail"].startswith("policy type "), response.json()
            assert "type ids are integers from 1 to 2147483647" in response.json()["detail"]
        response = await a1.client.put(f"/policytypes/{type_id}", json=GENERIC)
        assert response.status_code == 400, type_id
        assert response.json()["detail"].startswith("policy_type_id: must be an integer from 1 to 2147483647")
    response = await a1.client.put(f"/policytypes/{POLICY_TYPE_ID}/policies/{'x' * 300}", json={"enabled": True})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("policy_instance_id: must be a string of 1 to 256")
    assert (await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}/policies/{'x' * 300}")).status_code == 404


async def test_instance_ids_may_hold_any_character(a1: A1Server) -> None:
    for instance_id in ["\x04", "ø\x14\x05", "\U000d4cab", "a b?c#d", "\u200b", "%", "null,null"]:
        path = f"/policytypes/{POLICY_TYPE_ID}/policies/{quote(instance_id, safe='')}"
        assert (await a1.client.put(path, json={"enabled": False})).status_code == 202, repr(instance_id)
        assert (await a1.client.get(path)).json() == {"enabled": False}, repr(instance_id)
        assert (await a1.client.get(path + "/status")).status_code == 200, repr(instance_id)
        assert instance_id in (await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}/policies")).json()
        assert (await a1.client.delete(path)).status_code == 202, repr(instance_id)
        assert (await a1.client.get(path)).status_code == 404, repr(instance_id)
    # a '/' splits the path before routing, as in the mediator's routes: no instance route matches (404)
    response = await a1.client.put(f"/policytypes/{POLICY_TYPE_ID}/policies/a%2Fb", json={"enabled": False})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/policytypes/1", "GET, HEAD, PUT, DELETE, OPTIONS"),
        (INSTANCE, "GET, HEAD, PUT, DELETE, OPTIONS"),
        (INSTANCE + "/status", "GET, HEAD, OPTIONS"),
        ("/policytypes", "GET, HEAD, OPTIONS"),
        ("/healthcheck", "GET, HEAD, OPTIONS"),
        ("{origin}/data-delivery", "POST, OPTIONS"),
    ],
)
async def test_unserved_methods_are_405_with_every_served_method_in_allow(a1: A1Server, path: str, allow: str) -> None:
    url = path.format(origin=a1.origin)
    served = {m.strip() for m in allow.split(",")}
    for method in ("TRACE", "PATCH", "POST", "PUT", "DELETE", "CONNECT"):
        if method in served:
            continue
        response = await a1.client.request(method, url)
        assert (response.status_code, response.headers.get("allow")) == (405, allow), (method, path)
    response = await a1.client.options(url)
    assert (response.status_code, response.headers["allow"]) == (204, allow)


async def test_data_delivery_is_accepted_and_counted(a1: A1Server) -> None:
    url = f"{a1.origin}/data-delivery"
    assert (await a1.client.post(url, json={"job": "j1", "payload": [1, 2]})).status_code == 200
    assert (await a1.client.post(url)).status_code == 200
    for body in (b"[1]", b"null", b"{"):
        response = await a1.client.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and "body: " in response.json()["detail"], body
    assert a1.handler.data_deliveries == 2
    assert (await a1.client.post(url, json={}, headers={API_KEY_HEADER: "wrong"})).status_code == 401
    assert a1.handler.data_deliveries == 2


async def test_unknown_types_and_instances_are_404(a1: A1Server) -> None:
    assert (await a1.client.get("/policytypes/2147483647")).status_code == 404
    assert (await a1.client.get("/policytypes/7/policies")).status_code == 404
    assert (await a1.client.put("/policytypes/7/policies/x", json={"enabled": True})).status_code == 404
    assert (await a1.client.delete("/policytypes/7")).status_code == 404
    for response in (
        await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}/policies/none"),
        await a1.client.delete(f"/policytypes/{POLICY_TYPE_ID}/policies/none"),
        await a1.client.get(f"/policytypes/{POLICY_TYPE_ID}/policies/none/status"),
    ):
        assert response.status_code == 404
        assert "'none'" in response.json()["detail"]


async def test_type_lifecycle_follows_the_mediator(a1: A1Server) -> None:
    response = await a1.client.put("/policytypes/1234", json=GENERIC)
    assert (response.status_code, response.content) == (201, b"")
    assert (await a1.client.get("/policytypes")).json() == [1234, POLICY_TYPE_ID]
    assert (await a1.client.get("/policytypes/1234")).json() == GENERIC
    response = await a1.client.put("/policytypes/1234", json=GENERIC)
    assert response.status_code == 400 and "already exists" in response.json()["detail"]
    assert (await a1.client.put("/policytypes/1234/policies/i", json={"rate": 2})).status_code == 202
    response = await a1.client.put("/policytypes/1234/policies/j", json={"rate": "fast"})
    assert response.status_code == 400 and response.json()["detail"] == "rate: 'fast' is not of type 'integer'"
    response = await a1.client.delete("/policytypes/1234")
    assert response.status_code == 400 and "still has 1 instances" in response.json()["detail"]
    assert (await a1.client.delete("/policytypes/1234/policies/i")).status_code == 202
    response = await a1.client.delete("/policytypes/1234")
    assert (response.status_code, response.content) == (204, b"")
    assert (await a1.client.get("/policytypes/1234")).status_code == 404
    response = await a1.client.put("/policytypes/55", json={**GENERIC, "policy_type_id": 55, "create_schema": "x"})
    assert response.status_code == 400 and "create_schema: 'x' is not of type 'object'" in response.json()["detail"]
    assert (await a1.client.delete(f"/policytypes/{POLICY_TYPE_ID}")).status_code == 400


async def test_unavailable_data_layer_is_503_and_changes_nothing(a1: A1Server) -> None:
    assert (await a1.client.put(INSTANCE, json=BODY)).status_code == 202
    a1.datalayer.down = True
    response = await a1.client.put(INSTANCE, json={"enabled": False})
    assert response.status_code == 503 and "fake store: down" in response.json()["detail"]
    assert (await a1.client.delete(INSTANCE)).status_code == 503
    assert (await a1.client.put("/policytypes/1234", json=GENERIC)).status_code == 503
    a1.datalayer.down = False
    assert (await a1.client.get(INSTANCE)).json() == BODY


async def test_requests_before_the_data_layer_is_reachable_are_503_then_load(a1: A1Server) -> None:
    a1.datalayer.down = True
    assert (await a1.client.get("/policytypes")).status_code == 503
    assert not a1.store.loaded
    a1.datalayer.down = False
    assert (await a1.client.get("/policytypes")).json() == [POLICY_TYPE_ID]
    assert a1.store.loaded


async def test_a_policy_naming_what_the_xapp_does_not_know_is_accepted_and_its_status_says_which(a1: A1Server) -> None:
    a1.known.append(KnownNames(frozenset({"c1", "c2"}), frozenset({"n1"}), frozenset({"dl_prb", "ul_prb"})))
    body = {"enabled": True, "scope": {"cells": ["c1", "c9", "c8"], "nodes": ["n1", "n7"]},
            "threshold": {"per_measurement": {"dl_prb": 3, "cqi": 2}}}  # fmt: skip
    assert (await a1.client.put(INSTANCE, json=body)).status_code == 202
    status = (await a1.client.get(INSTANCE + "/status")).json()
    assert status["warnings"] == [
        "scope.cells: cells this xApp does not know now (applied once they appear): 'c8', 'c9'",
        "scope.nodes: nodes this xApp does not know now (applied once they appear): 'n7'",
        "threshold.per_measurement: measurements this xApp does not know now (applied once they appear): 'cqi'",
    ]
    assert status["enforceStatus"] == "NOT_ENFORCED"  # nothing enforces in this test: the warning sits beside it
    a1.known.append(KnownNames(frozenset({"c1", "c8", "c9"}), frozenset({"n1", "n7"}), frozenset({"dl_prb", "cqi"})))
    assert "warnings" not in (await a1.client.get(INSTANCE + "/status")).json()  # they came: no warning
    generic = "/policytypes/1234/policies/g"
    assert (await a1.client.put("/policytypes/1234", json=GENERIC)).status_code == 201
    assert (await a1.client.put(generic, json={"scope": {"cells": ["zz"]}})).status_code == 202
    assert "warnings" not in (await a1.client.get(generic + "/status")).json()  # another type's fields mean nothing


def test_the_openapi_declares_401_and_403_where_a_credential_is_needed() -> None:
    app = FastAPI()
    app.include_router(a1_router(A1Handler(PolicyStore(FakePolicyDataLayer())), Guard(None, ApiKey(KEY))))
    paths = app.openapi()["paths"]
    operations = {(m.upper(), p): op for p, item in paths.items() for m, op in item.items()}
    assert len(operations) == 11 and ("POST", "/data-delivery") in operations
    for (method, path), operation in operations.items():
        declared = {"401", "403"} <= set(operation["responses"])
        assert declared == (path != "/A1-P/v2/healthcheck"), (method, path)
