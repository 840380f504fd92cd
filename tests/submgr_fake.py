"""A fake O-RAN SC subscription manager on loopback: the REST API of tests/data/submgr-api.json, served as the
manager's go-swagger server serves it.

- Routing: an unknown path answers 404 and a known one with another method 405 (Allow header), with
  go-openapi's `{"code", "message"}` bodies.
- Bodies: what Go's JSON decoder cannot read (bad JSON, a wrong type) answers 400; what breaks the schema
  answers 422 naming the first problem as go-openapi words it ("ClientEndpoint in body is required").
  Type problems are worded approximately.
- Then the manager's own checks: an empty Host, or no port at all, 400 without a body; an E2 node that is
  not connected, 503. A missing port, which makes the real manager crash the request, also answers 400.
- A good POST answers 201 `{"SubscriptionId", "SubscriptionInstances": null}`; the outcome of each
  SubscriptionDetail is posted to the client endpoint's `NOTIFICATION_PATH` afterwards (or, when asked,
  before the answer), repeated until it answers 200 as the real manager does (fewer times, sooner).
- DELETE answers 204, for an unknown id too, but 400 while the request's E2 side is still being set up.
- E2 instance ids count from 1, as the manager allocates them; `restart` forgets every subscription.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from jsonschema import Draft4Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from ranomaly.redis_process import free_port

SPEC_PATH = Path(__file__).parent / "data" / "submgr-api.json"
NOTIFICATION_PATH = "/ric/v1/subscriptions/response"  # xapp-frame pkg/xapp/subscription.go, not in the spec
_SPEC_URI = "urn:ric-subscription-api"
_PATHS = {  # the spec's paths under its basePath, as the go-swagger router matches them
    re.compile(r"^/ric/v1/subscriptions$"): ("GET", "POST"),
    re.compile(r"^/ric/v1/subscriptions/[^/]+$"): ("DELETE",),
}
# go-openapi/errors codes and wording of a failed schema keyword; the HTTP status is 422 for all
_GO_ERRORS = {
    "required": (602, "{name} in body is required"),
    "enum": (606, "{name} in body should be one of {limit}"),
    "maximum": (608, "{name} in body should be less than or equal to {limit}"),
    "minimum": (609, "{name} in body should be greater than or equal to {limit}"),
}


@cache
def spec() -> dict[str, Any]:
    """The vendored API definition."""
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


@cache
def validator(definition: str) -> Draft4Validator:
    """A JSON Schema validator of one definition of the spec, its $refs resolved within the spec."""
    registry = Registry().with_resource(_SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT4))
    return Draft4Validator({"$ref": f"{_SPEC_URI}#/definitions/{definition}"}, registry=registry)


def _go_name(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path)


def swagger_refusal(body: object) -> tuple[int, dict[str, Any]] | None:
    """The status and body go-swagger answers a SubscriptionParams with, or None if it passes."""
    errors = list(validator("SubscriptionParams").iter_errors(body))
    for error in errors:
        if error.validator == "type":
            name = _go_name(["SubscriptionParams", *error.absolute_path])
            reason = f"json: cannot unmarshal {error.instance!r} into Go struct field {name} of {error.validator_value}"
            message = f'parsing SubscriptionParams body from "" failed, because {reason}'
            return 400, {"code": 400, "message": message}
    found = sorted(found for error in errors for found in _go_problems(error))
    if not found:
        return None
    _, code, message = found[0]
    return 422, {"code": code, "message": message}


def _go_problems(error: ValidationError) -> list[tuple[str, int, str]]:
    """(name, code, message) of each problem go-openapi would report for this jsonschema error."""
    path = list(error.absolute_path)
    code, template = _GO_ERRORS[str(error.validator)]  # the spec uses no other keyword
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return [(n, code, template.format(name=n)) for n in (_go_name([*path, m]) for m in missing)]
    limit = error.validator_value
    shown = f"[{' '.join(map(str, limit))}]" if isinstance(limit, list) else limit
    name = _go_name(path)
    return [(name, code, template.format(name=name, limit=shown))]


@dataclass(frozen=True)
class SubscribedAction:
    """One action of an E2 subscription, as the simulated E2 node receives it."""

    action_id: int
    action_type: str
    definition: bytes


@dataclass
class FakeSubscription:
    """One REST subscription the fake holds."""

    subscription_id: str
    meid: str
    rmr_endpoint: str  # host:port, the Host's "http" turned into "rmr" as the manager does
    instances: list[int] = field(default_factory=list)  # E2 instance ids in force
    ongoing: bool = True  # the E2 side is being set up: a DELETE now answers 400


OnSubscribe = Callable[[str, int, bytes, list[SubscribedAction], int], None]


class SubmgrFake:
    """The fake manager on 127.0.0.1:`port`; `start` and `stop` may be repeated on the same port."""

    def __init__(self, port: int | None = None, notify_tries: int = 3, notify_retry_s: float = 0.2) -> None:
        self.port = port or free_port()
        self.notify_tries = notify_tries
        self.notify_retry_s = notify_retry_s
        self.on_subscribe: OnSubscribe | None = None
        self.refusals: list[tuple[str, str]] = []  # (ErrorCause, ErrorSource) for the next details, in order
        self.unconnected: set[str] = set()  # MEIDs whose E2 connection is down: POSTs for them answer 503
        self.notify_before_response = False
        self.e2_delay_s = 0.0  # how long the simulated E2 node takes to answer a subscription request
        self.posts = 0  # POSTs to the subscription path, answered or not
        self.deliveries: list[int | str] = []  # what the client endpoint answered each notification post
        self.subscriptions: dict[str, FakeSubscription] = {}
        self._next_instance = 1
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """The API's base URL, as xApps are configured with it."""
        return f"http://127.0.0.1:{self.port}/ric/v1"

    def restart(self) -> None:
        """Forget every subscription, as a manager restarted without its database does."""
        self.subscriptions.clear()
        self._next_instance = 1

    def listing(self) -> list[dict[str, Any]]:
        """The SubscriptionList GET answers: one SubscriptionData per E2 subscription."""
        return [
            {"SubscriptionId": instance, "Meid": sub.meid, "ClientEndpoint": [sub.rmr_endpoint]}
            for sub in self.subscriptions.values()
            for instance in sub.instances
        ]

    async def start(self) -> None:
        """Serve until `stop`."""
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = server = uvicorn.Server(config)
        self._task = task = asyncio.create_task(server.serve())
        async with asyncio.timeout(5):
            while not server.started:
                assert not task.done(), "the fake subscription manager stopped while starting"
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving (the subscriptions are kept, as a network outage would)."""
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task

    def _app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.add_exception_handler(HTTPException, _routing_refusal)
        app.add_api_route("/ric/v1/subscriptions", self._subscribe, methods=["POST"])
        app.add_api_route("/ric/v1/subscriptions", self._list, methods=["GET"])
        app.add_api_route("/ric/v1/subscriptions/{subscription_id}", self._unsubscribe, methods=["DELETE"])
        return app

    async def _subscribe(self, request: Request) -> Response:
        self.posts += 1
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            message = f'parsing SubscriptionParams body from "" failed, because {exc}'
            return JSONResponse({"code": 400, "message": message}, status_code=400)
        refusal = swagger_refusal(body)
        if refusal is not None:
            return JSONResponse(refusal[1], status_code=refusal[0])
        endpoint = body["ClientEndpoint"]
        host, http_port, rmr_port = endpoint.get("Host", ""), endpoint.get("HTTPPort"), endpoint.get("RMRPort")
        if not host or http_port is None or rmr_port is None or http_port == rmr_port == 0:
            return Response(status_code=400)
        if body["Meid"] in self.unconnected:
            return Response(status_code=503)
        sub = FakeSubscription(_rest_id(), body["Meid"], f"{host.replace('http', 'rmr')}:{rmr_port}")
        self.subscriptions[sub.subscription_id] = sub
        created = {"SubscriptionId": sub.subscription_id, "SubscriptionInstances": None}
        if self.notify_before_response:
            await self._process(sub, body)
            return JSONResponse(created, status_code=201)
        return JSONResponse(created, status_code=201, background=BackgroundTask(self._process, sub, body))

    async def _process(self, sub: FakeSubscription, body: dict[str, Any]) -> None:
        """Set up each detail's E2 subscription (or refuse it) and post the outcome to the client."""
        await asyncio.sleep(self.e2_delay_s)
        outcomes = [self._set_up(sub, body, detail) for detail in body["SubscriptionDetails"]]
        sub.ongoing = False
        endpoint = body["ClientEndpoint"]
        url = f"http://{endpoint['Host']}:{endpoint['HTTPPort']}{NOTIFICATION_PATH}"
        for outcome in outcomes:
            await self._notify(url, {"SubscriptionId": sub.subscription_id, "SubscriptionInstances": [outcome]})

    def _set_up(self, sub: FakeSubscription, body: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
        """The SubscriptionInstance of one detail: a new E2 instance, or the next refusal."""
        outcome: dict[str, Any] = {"XappEventInstanceId": detail["XappEventInstanceId"]}
        if self.refusals:
            cause, source = self.refusals.pop(0)
            outcome |= {"E2EventInstanceId": 0, "ErrorCause": cause, "ErrorSource": source}
        else:
            instance = self._next_instance
            self._next_instance += 1
            sub.instances.append(instance)
            outcome["E2EventInstanceId"] = instance
            if self.on_subscribe is not None:
                actions = [
                    SubscribedAction(a["ActionID"], a["ActionType"], _octets(a.get("ActionDefinition", [])))
                    for a in detail["ActionToBeSetupList"]
                ]
                self.on_subscribe(
                    body["Meid"], body["RANFunctionID"], _octets(detail["EventTriggers"]), actions, instance
                )
        return outcome

    async def _notify(self, url: str, notification: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(self.notify_tries):
                try:
                    answered: int | str = (await client.post(url, json=notification)).status_code
                except httpx.TransportError as exc:
                    answered = type(exc).__name__
                self.deliveries.append(answered)
                if answered == 200:
                    return
                await asyncio.sleep(self.notify_retry_s)

    async def _list(self) -> JSONResponse:
        return JSONResponse(self.listing())

    async def _unsubscribe(self, subscription_id: str) -> Response:
        sub = self.subscriptions.get(subscription_id)
        if sub is not None and sub.ongoing:
            return Response(status_code=400)
        self.subscriptions.pop(subscription_id, None)  # an unknown id is deleted already: 204 too
        return Response(status_code=204)


def _octets(values: list[int]) -> bytes:
    """An E2SM octet string from the body's integers, each cut to a byte as Go's byte(v) does."""
    return bytes(value & 0xFF for value in values)


def _rest_id() -> str:
    """A 27-character id like the manager's ksuids."""
    return secrets.token_urlsafe(20).replace("-", "x").replace("_", "y")[:27]


async def _routing_refusal(request: Request, exc: Exception) -> Response:
    """go-swagger's router: 405 with Allow when the path exists for other methods, else 404."""
    path = request.url.path
    allowed = next((methods for pattern, methods in _PATHS.items() if pattern.match(path)), ())
    if allowed:
        message = f"method {request.method} is not allowed, but [{','.join(allowed)}] are"
        return JSONResponse({"code": 405, "message": message}, status_code=405, headers={"Allow": ",".join(allowed)})
    return JSONResponse({"code": 404, "message": f"path {path} was not found"}, status_code=404)
