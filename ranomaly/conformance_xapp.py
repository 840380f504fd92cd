"""The xApp's A1-P against the O-RAN SC A1 mediator's swagger (docs/specs/a1), for `ranomaly conformance`.

The server is a real `ranomaly xapp` process on a private redis-server, auth on: requests carry the API key
it generates (every scope). The spec is the mediator's, with our security added (the mediator's has none): an
API key on every operation but the healthcheck, and 401 and 403 among their answers, so schemathesis also
checks that a request without a credential is refused. Seeded: policy type 78 (any object is an instance),
its instance and a type-20100 instance `conformance-1`, and type 79 with no instance, which only the type
deletes are steered to; type 77 is left free for type creates. Path ids and the type body's id are drawn from
these half of the time, so every operation can answer 2xx.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from ranomaly.conformance import Deviation, Served, Target
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.auth.apikey import read_api_key
from ranomaly_contracts.auth.guard import API_KEY_HEADER
from xapp.policy.types import POLICY_TYPE_ID

SPEC = Path(__file__).resolve().parent.parent / "docs" / "specs" / "a1" / "osc-a1-mediator-swagger.yaml"
START_S = 60.0
SEEDED_INSTANCE = "conformance-1"
OPEN_TYPE, FREE_TYPE, SPARE_TYPE = 78, 77, 79
_PREFIX = "/A1-P/v2"
_A1 = f"{_PREFIX}/policytypes/{{policy_type_id}}"
_INSTANCE = f"{_A1}/policies/{{policy_instance_id}}"


def with_security(spec: dict[str, Any]) -> dict[str, Any]:
    """The swagger with the xApp's API key required on every operation but the healthcheck, and 401 and 403
    declared where it is."""
    spec = {**spec, "securityDefinitions": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}}
    spec["security"] = [{"apiKey": []}]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if path.endswith("/healthcheck"):
                operation["security"] = []
                continue
            operation["responses"]["401"] = {"description": "no valid credential"}
            operation["responses"]["403"] = {"description": "the credential lacks the scope"}
    return spec


def write_spec(folder: Path) -> Path:
    """The mediator's swagger with our security, as JSON in the run's folder."""
    path = folder / "a1-mediator.json"
    path.write_text(json.dumps(with_security(yaml.safe_load(SPEC.read_text()))))
    return path


def _seed(client: httpx.Client) -> None:
    """Types 78 (any object is an instance) with an instance and 79 without, and a type-20100 instance naming a
    cell no node reports (its status warns of it)."""

    def document(type_id: int) -> dict[str, Any]:
        return {"name": "open", "description": "conformance: any object", "policy_type_id": type_id,
                "create_schema": {"type": "object"}}  # fmt: skip

    for method, path, body, status in (
        ("PUT", f"{_PREFIX}/policytypes/{OPEN_TYPE}", document(OPEN_TYPE), 201),
        ("PUT", f"{_PREFIX}/policytypes/{SPARE_TYPE}", document(SPARE_TYPE), 201),
        ("PUT", f"{_PREFIX}/policytypes/{OPEN_TYPE}/policies/{SEEDED_INSTANCE}", {"rate": 1}, 202),
        ("PUT", f"{_PREFIX}/policytypes/{POLICY_TYPE_ID}/policies/{SEEDED_INSTANCE}",
         {"enabled": True, "scope": {"cells": ["not-yet-reporting"]}}, 202),
    ):  # fmt: skip
        response = client.request(method, path, json=body)
        if response.status_code != status:
            raise RuntimeError(f"seeding {method} {path}: {response.status_code} {response.text}")


@contextmanager
def serve_xapp(folder: Path) -> Iterator[Served]:
    """A `ranomaly xapp` on a private redis-server, seeded; stopped on exit."""
    redis = RedisServer(folder)
    redis.start()
    port, state = free_port(), folder / "xapp-state"
    env = {**os.environ, "RANOMALY_XAPP_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "xapp", "--e2",
               f"127.0.0.1:{free_port()}", "--host", "127.0.0.1", "--a1-port", str(port),
               "--datalayer", "redis", "--redis-url", redis.url]  # fmt: skip
    with (folder / "xapp.log").open("w") as log:
        xapp = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        with httpx.Client(base_url=base, timeout=5) as probe:
            while not _answers(probe):
                if xapp.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the xApp did not answer on {base} within {START_S:.0f} s; see {log.name}")
                time.sleep(0.1)
        headers = {API_KEY_HEADER: read_api_key(state / "api-key")}
        with httpx.Client(base_url=base, timeout=5, headers=headers) as client:
            _seed(client)
        yield Served(base, headers)
    finally:
        xapp.terminate()
        xapp.wait(30)
        redis.stop()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get(f"{_PREFIX}/healthcheck").status_code == 200
    except httpx.TransportError:
        return False


DEVIATIONS = (
    Deviation(f"GET {_A1}/policies", "ST103", "404 for an unknown or non-integer type, as the mediator"),
    Deviation(f"PUT {_A1}", "ST202", "400: body id differs from the path's, type exists, or no draft-07 schema"),
    Deviation(f"DELETE {_A1}", "ST202", "400: the type has instances, or is the built-in 20100"),
    Deviation(f"PUT {_INSTANCE}", "ST202", "400: the body fails the type's create_schema"),
    Deviation("POST /data-delivery", "ST103", "400: a body that is not a JSON object, as the mediator"),
)


def xapp_target() -> Target:
    """The xApp's A1-P against the mediator's swagger."""
    return Target(
        name="xapp-a1",
        spec=write_spec,
        serve=serve_xapp,
        settings={
            "dictionaries.type_ids": {"values": [POLICY_TYPE_ID, OPEN_TYPE, FREE_TYPE]},
            "dictionaries.free_type": {"values": [FREE_TYPE]},
            "dictionaries.spare_type": {"values": [SPARE_TYPE]},
            "dictionaries.instance_ids": {"values": [SEEDED_INSTANCE]},
            "parameters": {
                "path.policy_type_id": {"dictionary": "type_ids", "probability": 0.5},
                "path.policy_instance_id": {"dictionary": "instance_ids", "probability": 0.5},
            },
            "operations": [
                {
                    "include-name": f"PUT {_A1}",
                    "parameters": {
                        "path.policy_type_id": {"dictionary": "free_type", "probability": 0.5},
                        "body.policy_type_id": {"dictionary": "free_type", "probability": 0.5},
                    },
                },
                {
                    "include-name": f"DELETE {_A1}",
                    "parameters": {"path.policy_type_id": {"dictionary": "spare_type", "probability": 0.5}},
                },
            ],  # fmt: skip
        },
        deviations=DEVIATIONS,
    )
