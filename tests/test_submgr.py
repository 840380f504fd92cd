"""E2 subscriptions through the subscription manager's REST API, over real HTTP on loopback: the request bodies
against the vendored API definition, the fake manager's go-swagger refusals, notifications, refusals, a
restarted manager, an unreachable one, and deletion on close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from structlog.testing import capture_logs

from ranomaly.redis_process import free_port
from tests.submgr_fake import SPEC_PATH, SubmgrFake, SubscribedAction, spec, swagger_refusal, validator
from xapp.ric.submgr import (
    NOTIFICATION_PATH,
    Action,
    ClientEndpoint,
    E2Subscription,
    SubmgrClient,
    SubscriptionError,
    SubscriptionKeeper,
    SubscriptionNotification,
    notification_router,
    subscription_params,
)

TRIGGER = bytes([0x08, 0x03, 0xE8, 0x00, 0xFF])  # stands for an encoded E2SM-KPM event trigger
DEFINITION = bytes(range(256))  # every octet value survives the trip
CELLS = {"gnb-001-c1": E2Subscription("gnb_001", 2, TRIGGER, [Action(1, DEFINITION)], 11),
         "gnb-002-c1": E2Subscription("gnb_002", 2, TRIGGER, [Action(1, b"\x01")], 12)}  # fmt: skip
# what ricxappframe's NewSubscriber posts: its tests/test_subscribe.py asserts this SubscriptionParams.to_dict()
RICXAPPFRAME_BODY = {
    "client_endpoint": {"host": "localhost", "http_port": 8091, "rmr_port": 4061},
    "e2_subscription_directives": {"e2_retry_count": 2, "e2_timeout_timer_value": 10, "rmr_routing_needed": False},
    "meid": "gnb123456", "ran_function_id": 1231,
    "subscription_details": {
        "action_to_be_setup_list": {
            "action_definition": [11, 12, 13, 14, 15], "action_id": 1, "action_type": "policy",
            "subsequent_action": {"subsequent_action_type": "continue", "time_to_wait": "w10ms"},
        },
        "event_triggers": [1, 2, 3, 4, 5], "xapp_event_instance_id": 12110,
    },
    "subscription_id": "sub10",
}  # fmt: skip


async def until(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Wait until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class XappSide:
    """The xApp's HTTP server with the notification route; notifications go to `forward` once set."""

    def __init__(self) -> None:
        self.received: list[SubscriptionNotification] = []
        self.forward: Callable[[SubscriptionNotification], None] | None = None
        app = FastAPI()
        app.include_router(notification_router(self._arrived))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        self.port = 0

    def _arrived(self, notification: SubscriptionNotification) -> None:
        self.received.append(notification)
        if self.forward is not None:
            self.forward(notification)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        await until(lambda: self.server.started, what="the xApp's server to listen")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


class Kept:
    """A keeper of CELLS against the fake, with what its callbacks saw; `stop` stops and closes it."""

    def __init__(self, fake: SubmgrFake, xapp: XappSide, http_port: int | None = None, **options: Any) -> None:
        endpoint = ClientEndpoint("127.0.0.1", http_port or xapp.port, 4560)
        self.client = SubmgrClient(fake.base_url, endpoint, timeout_s=2, retries=1, backoff_s=0.02)
        self.instances: list[tuple[int, str]] = []
        self.lost: list[str] = []
        settings = {"check_interval_s": 30.0, "retry_min_s": 0.05, "retry_max_s": 0.2} | options
        self.keeper = SubscriptionKeeper(
            self.client, [(subs, cell) for cell, subs in CELLS.items()],
            lambda instance, cell: self.instances.append((instance, cell)), self.lost.append, **settings,
        )  # fmt: skip
        xapp.forward = self.keeper.on_notification
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self.keeper.run(self._stop))

    async def stop(self) -> None:
        self._stop.set()
        async with asyncio.timeout(5):
            await self.task
        await self.keeper.close()
        await self.client.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[SubmgrFake]:
    fake = SubmgrFake(notify_retry_s=0.05)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def xapp() -> AsyncIterator[XappSide]:
    side = XappSide()
    await side.start()
    yield side
    await side.stop()


def test_request_bodies_validate_and_ricxappframe_keys_do_not() -> None:
    assert spec()["x-origin"]["licence"].startswith("Apache License 2.0"), SPEC_PATH
    params = validator("SubscriptionParams")
    body = subscription_params(
        CELLS["gnb-001-c1"], ClientEndpoint("service-ricxapp-ranomaly-xapp-http.ricxapp", 8080, 4560)
    )
    assert list(params.iter_errors(body)) == []
    detail = body["SubscriptionDetails"][0]
    assert detail["EventTriggers"] == list(TRIGGER)
    assert detail["ActionToBeSetupList"] == [
        {"ActionID": 1, "ActionType": "report", "ActionDefinition": list(range(256))}
    ]
    missing = {error.message for error in params.iter_errors(RICXAPPFRAME_BODY)}
    assert missing == {
        f"'{key}' is a required property" for key in ("ClientEndpoint", "Meid", "RANFunctionID", "SubscriptionDetails")
    }
    assert swagger_refusal(RICXAPPFRAME_BODY) == (422, {"code": 602, "message": "ClientEndpoint in body is required"})


async def test_the_fake_refuses_what_go_swagger_refuses(fake: SubmgrFake) -> None:
    good = subscription_params(CELLS["gnb-001-c1"], ClientEndpoint("127.0.0.1", free_port(), 4560))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fake.port}") as http:
        at_base = await http.post("/ric/v1", json=good)  # ricxappframe's POST path
        assert (at_base.status_code, at_base.json()) == (404, {"code": 404, "message": "path /ric/v1 was not found"})
        wrong_keys = await http.post("/ric/v1/subscriptions", json=RICXAPPFRAME_BODY)
        assert (wrong_keys.status_code, wrong_keys.json()["message"]) == (422, "ClientEndpoint in body is required")
        on_one = await http.post("/ric/v1/subscriptions/abc", json=good)
        assert (on_one.status_code, on_one.headers["allow"]) == (405, "DELETE")
        assert (await http.post("/ric/v1/subscriptions", content=b"{")).status_code == 400
        created = await http.post("/ric/v1/subscriptions", json=good)
        assert created.status_code == 201 and created.json()["SubscriptionInstances"] is None
        assert fake.subscriptions.keys() == {created.json()["SubscriptionId"]}


@pytest.mark.parametrize("notify_first", [False, True], ids=["after-answer", "before-answer"])
async def test_each_subscription_is_bound_to_its_instance(fake: SubmgrFake, xapp: XappSide, notify_first: bool) -> None:
    fake.notify_before_response = notify_first
    seen: list[tuple[str, int, bytes, list[SubscribedAction], int]] = []
    fake.on_subscribe = lambda *args: seen.append(args)
    kept = Kept(fake, xapp)
    await until(lambda: len(kept.instances) == 2, what="both subscriptions")
    listed = {data.subscription_id: data.meid for data in await kept.client.list_subscriptions()}
    assert sorted((listed[instance], cell) for instance, cell in kept.instances) == [
        ("gnb_001", "gnb-001-c1"), ("gnb_002", "gnb-002-c1")
    ]  # fmt: skip
    assert dict(kept.keeper.instances) == dict(kept.instances)
    by_node = {meid: (function, trigger, actions) for meid, function, trigger, actions, _ in seen}
    assert by_node["gnb_001"] == (2, TRIGGER, [SubscribedAction(1, "report", DEFINITION)])
    assert fake.deliveries == [200, 200]
    await kept.stop()
    assert fake.subscriptions == {}


async def test_a_refusal_is_logged_and_retried(fake: SubmgrFake, xapp: XappSide) -> None:
    cause = "RICSubscriptionFailure. E2NodeCause: (Cause:ricRequest, Value 8)"
    fake.refusals = [(cause, "E2Node")]
    with capture_logs() as logs:
        kept = Kept(fake, xapp)
        await until(lambda: len(kept.instances) == 2, what="both subscriptions, one after a refusal")
    refused = [entry for entry in logs if entry["event"] == "subscription_refused"]
    assert len(refused) == 1 and refused[0]["cause"] == cause and refused[0]["source"] == "E2Node"
    assert len(fake.subscriptions) == 2  # the refused one was deleted before the retry
    assert not kept.task.done()
    await kept.stop()
    assert fake.subscriptions == {}


async def test_a_restarted_manager_gets_the_subscriptions_again(fake: SubmgrFake, xapp: XappSide) -> None:
    kept = Kept(fake, xapp, check_interval_s=0.3)
    await until(lambda: len(kept.instances) == 2, what="both subscriptions")
    fake.restart()
    restarted = time.monotonic()
    await until(lambda: len(kept.instances) == 4, what="both subscriptions again")
    assert time.monotonic() - restarted < 0.3 + 1.0
    assert sorted(kept.lost) == sorted(CELLS)
    assert sorted(data["Meid"] for data in fake.listing()) == ["gnb_001", "gnb_002"]
    assert {cell for _, cell in kept.instances[2:]} == set(CELLS)
    assert set(kept.keeper.instances) == {d["SubscriptionId"] for d in fake.listing()}
    await kept.stop()
    assert fake.subscriptions == {}


async def test_close_deletes_what_the_manager_is_still_processing(fake: SubmgrFake, xapp: XappSide) -> None:
    fake.e2_delay_s = 0.3  # the manager answers DELETE with 400 until the E2 node has answered
    with capture_logs() as logs:
        kept = Kept(fake, xapp)
        await until(lambda: len(fake.subscriptions) == 2, what="both POSTs")
        await kept.stop()
    assert fake.subscriptions == {} and kept.instances == []
    assert not [entry for entry in logs if entry["event"] == "subscription_not_deleted"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "body: Invalid JSON"),
        (b'{"SubscriptionInstances": []}', "SubscriptionId: Field required"),
        (b'{"SubscriptionId": "s", "SubscriptionInstances": [{"XappEventInstanceId": 1, "E2EventInstanceId": "x"}]}',
         "SubscriptionInstances.0.E2EventInstanceId: Input should be a valid integer"),
        (b'{"SubscriptionId": "s", "SubscriptionInstances": [{"XappEventInstanceId": 1, "E2EventInstanceId": 70000}]}',
         "SubscriptionInstances.0.E2EventInstanceId: Input should be less than or equal to 65535"),
    ],
    ids=["not-json", "no-id", "text-instance", "instance-too-big"],
)  # fmt: skip
async def test_a_bad_notification_gets_400_naming_the_field(xapp: XappSide, body: bytes, named: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{xapp.port}") as http:
        response = await http.post(NOTIFICATION_PATH, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and named in response.json()["detail"]
        good = {"SubscriptionId": "s", "SubscriptionInstances": [{"XappEventInstanceId": 1, "E2EventInstanceId": 5}]}
        assert (await http.post(NOTIFICATION_PATH, json=good)).status_code == 200
    assert [(n.subscription_id, n.instances[0].e2_event_instance_id) for n in xapp.received] == [("s", 5)]


async def test_the_client_retries_an_absent_or_busy_manager_then_says_why(fake: SubmgrFake) -> None:
    endpoint = ClientEndpoint("127.0.0.1", free_port(), 4560)
    nobody = SubmgrClient(f"http://127.0.0.1:{free_port()}/ric/v1", endpoint, timeout_s=1, retries=2, backoff_s=0.01)
    with pytest.raises(SubscriptionError, match=r"failed 3 times, last: ConnectError"):
        await nobody.subscribe(CELLS["gnb-001-c1"])
    await nobody.aclose()
    client = SubmgrClient(fake.base_url, endpoint, timeout_s=1, retries=2, backoff_s=0.01)
    fake.unconnected = {"gnb_001"}
    with pytest.raises(SubscriptionError, match=r"gnb_001 .*failed 3 times, last: HTTP 503"):
        await client.subscribe(CELLS["gnb-001-c1"])
    assert fake.posts == 3
    too_big = E2Subscription("gnb_002", 4096, TRIGGER, [Action(1, b"")], 1)
    with pytest.raises(
        SubscriptionError, match="refused it: HTTP 422 RANFunctionID in body should be less than or equal to 4095"
    ):
        await client.subscribe(too_big)
    assert fake.posts == 4  # a refusal is not retried
    await client.aclose()


async def test_the_keeper_outlasts_a_manager_that_is_not_there_yet(xapp: XappSide) -> None:
    fake = SubmgrFake(notify_retry_s=0.05)  # its port is chosen; nobody listens on it yet
    with capture_logs() as logs:
        kept = Kept(fake, xapp, check_interval_s=0.1)
        logged = {"subscription_failed", "subscription_check_failed"}
        await until(lambda: logged <= {entry["event"] for entry in logs}, what="both kinds of failure logged")
        assert not kept.task.done() and kept.instances == []
        await fake.start()
        await until(lambda: len(kept.instances) == 2, what="both subscriptions once the manager is up")
    await kept.stop()
    assert fake.subscriptions == {}
    await fake.stop()
