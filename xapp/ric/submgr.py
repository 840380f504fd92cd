"""E2 subscriptions through the O-RAN SC subscription manager's REST API (submgr, base path /ric/v1).

The API is xapp-frame's `api/xapp_rest_api.yaml` ("RIC subscription" 0.0.4); the manager serves it with
go-swagger, so a body that breaks the schema is refused (422, the first problem named) before the manager
reads it, an unknown path answers 404 and a known path with the wrong method 405.

- `POST /subscriptions` takes a SubscriptionParams with PascalCase keys (`ClientEndpoint{Host, HTTPPort,
  RMRPort}`, `Meid`, `RANFunctionID`, `SubscriptionDetails[{XappEventInstanceId, EventTriggers,
  ActionToBeSetupList[{ActionID, ActionType, ActionDefinition}]}]`), E2SM octet strings as arrays of
  integers 0..255. It answers 201 `{"SubscriptionId": ..., "SubscriptionInstances": null}` at once, or 503
  while the E2 node is not connected.
- The outcome comes later: the manager POSTs a SubscriptionResponse to `http://Host:HTTPPort` +
  `NOTIFICATION_PATH`, one per SubscriptionDetail, and repeats it until the xApp answers 200. A
  SubscriptionInstance with an E2EventInstanceId names the subscription in the RICrequestID (requestor
  XappEventInstanceId, instance E2EventInstanceId) of every RIC_INDICATION; E2EventInstanceId 0 with
  ErrorCause/ErrorSource/TimeoutType is a refusal. It can come before the POST's own answer.
- `DELETE /subscriptions/{SubscriptionId}` answers 204, for an id the manager does not know too.
- `GET /subscriptions` lists the manager's E2 subscriptions: SubscriptionId there is the E2 instance id.

ricxappframe's stock client (xapp-frame-py `ricxappframe/xapp_subscribe.py`) gets two things wrong:
- Key names: `Subscribe` posts `subs_params.to_dict()` of the swagger-codegen models, which keys by Python
  attribute (`client_endpoint`, `meid`, `ran_function_id`, `subscription_details`, `xapp_event_instance_id`,
  `event_triggers`, `action_to_be_setup_list`, `action_id`, ...; its own test_subscribe.py asserts them)
  instead of the wire names above, so the manager refuses it: "ClientEndpoint in body is required".
- The POST path: `NewSubscriber(".../ric/v1")` posts to the base URL itself (`/ric/v1`, 404) while
  `UnSubscribe` and `QuerySubscriptions` append `/subscriptions`; the path is `/ric/v1/subscriptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from xapp.errors import XappError

log = structlog.get_logger(__name__)

NOTIFICATION_PATH = "/ric/v1/subscriptions/response"  # where the manager posts outcomes, on the xApp's server
_EARLY_KEPT = 64  # notifications kept for subscriptions whose POST has not answered yet
_DELETE_TRIES = 5

C = TypeVar("C")


class SubscriptionError(XappError):
    """The subscription manager refused a request (`status`: its 4xx), or could not be reached (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Action:
    """One E2 action to set up; `definition` is the encoded E2SM action definition."""

    action_id: int
    definition: bytes
    action_type: Literal["insert", "policy", "report"] = "report"


@dataclass(frozen=True, slots=True)
class E2Subscription:
    """One E2 subscription: an E2 node (its RAN name), a RAN function, an encoded event trigger, actions.

    `xapp_event_instance_id` is the xApp's own number for it, the requestor id of its RICrequestID.
    """

    meid: str
    ran_function_id: int
    event_trigger: bytes
    actions: Sequence[Action]
    xapp_event_instance_id: int


@dataclass(frozen=True, slots=True)
class ClientEndpoint:
    """Where the manager reaches the xApp: HTTP for notifications, RMR for indications.

    The manager derives the RMR service name from `host` by replacing "http" with "rmr".
    """

    host: str
    http_port: int
    rmr_port: int


def subscription_params(subs: E2Subscription, endpoint: ClientEndpoint) -> dict[str, Any]:
    """The SubscriptionParams body of one subscription (the manager allocates the SubscriptionId)."""
    actions = [
        {"ActionID": action.action_id, "ActionType": action.action_type, "ActionDefinition": list(action.definition)}
        for action in subs.actions
    ]
    return {
        "ClientEndpoint": {"Host": endpoint.host, "HTTPPort": endpoint.http_port, "RMRPort": endpoint.rmr_port},
        "Meid": subs.meid,
        "RANFunctionID": subs.ran_function_id,
        "SubscriptionDetails": [
            {
                "XappEventInstanceId": subs.xapp_event_instance_id,
                "EventTriggers": list(subs.event_trigger),
                "ActionToBeSetupList": actions,
            }
        ],
    }


class SubscriptionInstance(BaseModel):
    """The outcome of one SubscriptionDetail."""

    model_config = ConfigDict(frozen=True)

    xapp_event_instance_id: int = Field(alias="XappEventInstanceId", ge=0, le=65535)
    e2_event_instance_id: int = Field(alias="E2EventInstanceId", ge=0, le=65535)
    error_cause: str = Field("", alias="ErrorCause")
    error_source: str = Field("", alias="ErrorSource")  # SUBMGR, RTMGR, DBAAS, ASN1, E2Node
    timeout_type: str = Field("", alias="TimeoutType")  # E2-Timeout, RTMGR-Timeout, DBAAS-Timeout

    @property
    def refused(self) -> bool:
        """No E2 subscription: the manager sends instance id 0 with the cause (a partial success has an id)."""
        return self.e2_event_instance_id == 0


class SubscriptionNotification(BaseModel):
    """A SubscriptionResponse as the manager posts it to `NOTIFICATION_PATH`."""

    model_config = ConfigDict(frozen=True)

    subscription_id: str = Field(alias="SubscriptionId")
    instances: list[SubscriptionInstance] = Field(alias="SubscriptionInstances")


class SubscriptionData(BaseModel):
    """One E2 subscription as the manager lists it."""

    model_config = ConfigDict(frozen=True)

    subscription_id: int = Field(0, alias="SubscriptionId")  # the E2 instance id, not the REST one
    meid: str = Field("", alias="Meid")
    client_endpoint: list[str] | None = Field(None, alias="ClientEndpoint")  # RMR endpoints, host:port


class _Created(BaseModel):
    subscription_id: str = Field(alias="SubscriptionId")


_LISTING = TypeAdapter(list[SubscriptionData])


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())


def _reason(response: httpx.Response) -> str:
    """HTTP status and what the manager said: go-swagger's {"code", "message"}, else the text."""
    try:
        said = str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        said = response.text.strip()
    return f"HTTP {response.status_code} {said or '(no reason given)'}"


class SubmgrClient:
    """The manager's REST API; retries with backoff on connection errors and 5xx, raises SubscriptionError."""

    def __init__(
        self,
        base_url: str,
        client_endpoint: ClientEndpoint,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.client_endpoint = client_endpoint
        self._retries = retries
        self._backoff_s = backoff_s
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def subscribe(self, subs: E2Subscription) -> str:
        """POST the subscription; its SubscriptionId (the outcome arrives as a notification)."""
        what = f"subscription to {subs.meid} RAN function {subs.ran_function_id}"
        body = subscription_params(subs, self.client_endpoint)
        response = await self._request("POST", "subscriptions", what, body)
        try:
            return _Created.model_validate_json(response.content).subscription_id
        except ValidationError as exc:
            raise SubscriptionError(f"{what}: unreadable answer: {_problems(exc)}") from exc

    async def delete(self, subscription_id: str) -> None:
        """DELETE one subscription (an id the manager does not know counts as deleted)."""
        await self._request("DELETE", f"subscriptions/{quote(subscription_id, safe='')}", f"delete {subscription_id}")

    async def list_subscriptions(self) -> list[SubscriptionData]:
        """Every E2 subscription the manager holds, of every xApp."""
        response = await self._request("GET", "subscriptions", "subscription list")
        try:
            return _LISTING.validate_json(response.content)
        except ValidationError as exc:
            raise SubscriptionError(f"subscription list: unreadable answer: {_problems(exc)}") from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(self, method: str, path: str, what: str, body: object = None) -> httpx.Response:
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__} {exc}".strip()
            else:
                if response.is_success:
                    return response
                if response.status_code < 500:
                    refusal = f"{what}: the subscription manager refused it: {_reason(response)}"
                    raise SubscriptionError(refusal, response.status_code)
                problem = _reason(response)
            if attempt < self._retries:
                await asyncio.sleep(delay)
                delay *= 2
        url = self._http.base_url.join(path)
        raise SubscriptionError(f"{what}: {method} {url} failed {self._retries + 1} times, last: {problem}")


def notification_router(on_notification: Callable[[SubscriptionNotification], None]) -> APIRouter:
    """The route the manager posts SubscriptionResponses to, for the xApp's HTTP server."""
    router = APIRouter(tags=["ric"])

    @router.post(NOTIFICATION_PATH, response_class=Response)
    async def subscription_notification(request: Request) -> Response:
        """200 once read (the manager repeats anything else); 400 naming what is wrong with the body."""
        try:
            notification = SubscriptionNotification.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": _problems(exc)}, status_code=400)
        on_notification(notification)
        return Response(status_code=200)

    return router


@dataclass(eq=False)
class _Kept(Generic[C]):
    spec: E2Subscription
    context: C
    subscription_id: str | None = None  # the manager's REST id, while it may hold one of ours
    instance_id: int | None = None  # the E2 instance id, while subscribed
    lost: asyncio.Event = field(default_factory=asyncio.Event)


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until stop; whether to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waits = {asyncio.create_task(first.wait()), asyncio.create_task(second.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


class SubscriptionKeeper(Generic[C]):
    """Keeps a set of E2 subscriptions alive through the manager, each with its context (a cell, say).

    `run` subscribes each and waits for its notification; a refusal, a silence or an unreachable manager is
    logged and retried with backoff. Every `check_interval_s` it lists the manager's subscriptions and
    subscribes again what the platform lost (a restarted manager): `on_lost(context)`, then
    `on_instance(new_id, context)`. `close` deletes every subscription made. Pass `on_notification` to
    `notification_router`; call everything from the event loop that runs the keeper.
    """

    def __init__(
        self,
        client: SubmgrClient,
        subscriptions: Sequence[tuple[E2Subscription, C]],
        on_instance: Callable[[int, C], None],
        on_lost: Callable[[C], None],
        *,
        check_interval_s: float = 30.0,
        notification_timeout_s: float = 10.0,
        retry_min_s: float = 1.0,
        retry_max_s: float = 60.0,
    ) -> None:
        self._client = client
        self._kept = [_Kept(spec, context) for spec, context in subscriptions]
        self._on_instance = on_instance
        self._on_lost = on_lost
        self._check_interval_s = check_interval_s
        self._notification_timeout_s = notification_timeout_s
        self._retry = (retry_min_s, retry_max_s)
        self._instances: dict[int, C] = {}
        self._waiters: dict[str, asyncio.Future[SubscriptionNotification]] = {}
        self._early: dict[str, SubscriptionNotification] = {}

    @property
    def instances(self) -> Mapping[int, C]:
        """E2 instance id -> context, of the subscriptions in force."""
        return MappingProxyType(self._instances)

    def on_notification(self, notification: SubscriptionNotification) -> None:
        """Hand a notification to the subscription waiting for it (or keep it until its POST answers)."""
        waiter = self._waiters.get(notification.subscription_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(notification)
            return
        self._early[notification.subscription_id] = notification
        while len(self._early) > _EARLY_KEPT:
            del self._early[next(iter(self._early))]

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe everything and keep it subscribed until stop; then `close` deletes the subscriptions."""
        tasks = [
            asyncio.create_task(self._keep(kept, stop), name=f"subscription {kept.spec.meid}") for kept in self._kept
        ]
        try:
            while not await _pause(stop, self._check_interval_s):
                await self._check()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def close(self) -> None:
        """Delete every subscription this keeper made (after `run` returned)."""
        await asyncio.gather(*(self._forget(kept) for kept in self._kept))

    async def _keep(self, kept: _Kept[C], stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            if await self._establish(kept, stop):
                failures = 0
                await _either(kept.lost, stop)
                if stop.is_set():
                    return
                kept.lost.clear()
                await self._forget(kept)  # the REST subscription, if the manager kept it
                continue
            failures += 1
            await _pause(stop, min(self._retry[1], self._retry[0] * 2 ** (failures - 1)))

    async def _establish(self, kept: _Kept[C], stop: asyncio.Event) -> bool:
        spec = kept.spec
        fields = {"meid": spec.meid, "ran_function_id": spec.ran_function_id, "context": kept.context}
        try:
            kept.subscription_id = await self._client.subscribe(spec)
        except SubscriptionError as exc:
            log.warning("subscription_failed", **fields, problem=str(exc))
            return False
        notification = await self._notification(kept.subscription_id, stop)
        if notification is None:
            if not stop.is_set():
                log.warning("subscription_unanswered", **fields, subscription_id=kept.subscription_id)
                await self._forget(kept)
            return False
        fields["subscription_id"] = notification.subscription_id
        outcome = next(
            (i for i in notification.instances if i.xapp_event_instance_id == spec.xapp_event_instance_id), None
        )
        if outcome is None or outcome.refused:
            cause = outcome.error_cause if outcome else "no instance for our XappEventInstanceId"
            source, timeout = (outcome.error_source, outcome.timeout_type) if outcome else ("", "")
            log.warning("subscription_refused", **fields, cause=cause, source=source, timeout_type=timeout)
            await self._forget(kept)
            return False
        if outcome.error_cause:
            log.warning("subscription_partly_admitted", **fields, cause=outcome.error_cause)
        kept.instance_id = outcome.e2_event_instance_id
        self._instances[kept.instance_id] = kept.context
        self._on_instance(kept.instance_id, kept.context)
        log.info("subscribed", **fields, e2_event_instance_id=kept.instance_id)
        return True

    async def _notification(self, subscription_id: str, stop: asyncio.Event) -> SubscriptionNotification | None:
        early = self._early.pop(subscription_id, None)
        if early is not None:
            return early
        waiter: asyncio.Future[SubscriptionNotification] = asyncio.get_running_loop().create_future()
        self._waiters[subscription_id] = waiter
        stopping = asyncio.create_task(stop.wait())
        either: set[asyncio.Future[Any]] = {waiter, stopping}
        try:
            await asyncio.wait(either, timeout=self._notification_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            del self._waiters[subscription_id]
        return waiter.result() if waiter.done() else None

    async def _forget(self, kept: _Kept[C]) -> None:
        if kept.instance_id is not None:
            self._instances.pop(kept.instance_id, None)
            kept.instance_id = None
        subscription_id, kept.subscription_id = kept.subscription_id, None
        if subscription_id is None:
            return
        self._early.pop(subscription_id, None)
        for attempt in range(_DELETE_TRIES):
            try:
                await self._client.delete(subscription_id)
                return
            except SubscriptionError as exc:  # a 400 while the manager still processes the request: wait
                if exc.status != 400 or attempt == _DELETE_TRIES - 1:
                    fields = {"meid": kept.spec.meid, "subscription_id": subscription_id, "problem": str(exc)}
                    log.warning("subscription_not_deleted", **fields)
                    return
            await asyncio.sleep(min(self._retry[1], self._retry[0] * 2**attempt))

    async def _check(self) -> None:
        before = [(kept, kept.instance_id) for kept in self._kept if kept.instance_id is not None]
        try:
            listed = await self._client.list_subscriptions()
        except SubscriptionError as exc:
            log.warning("subscription_check_failed", problem=str(exc))
            return
        held = {(data.meid, data.subscription_id) for data in listed}
        for kept, instance_id in before:  # those made after the listing was asked for are not judged by it
            if kept.instance_id != instance_id or (kept.spec.meid, instance_id) in held:
                continue
            log.warning("subscription_lost", meid=kept.spec.meid, e2_event_instance_id=kept.instance_id)
            self._instances.pop(kept.instance_id, None)
            kept.instance_id = None
            self._on_lost(kept.context)
            kept.lost.set()
