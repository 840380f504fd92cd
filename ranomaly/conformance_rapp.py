"""The rApp against the Non-RT RIC policy management service API v2 (docs/specs/a1) and against its own
OpenAPI document, for `ranomaly conformance`.

The server is a real `ranomaly rapp` process, auth on (requests carry the API key it generates, every scope),
on a private redis-server, managing a real `ranomaly xapp` (`serve_xapp`: its types 78, any object, and 79).
Seeded through the rApp's API: service `conformance-svc` (not supervised) and its policy `conformance-1` of
type 78. Path and query ids are drawn from the seeded ones half of the time. The PMS spec as tested: its
Spring Boot management endpoints (`/actuator/...`) and the example authorizer (`/example-authz-check`) left
out (the rApp serves neither: they are the Java service's, not the API's), our security added (the API key
on every operation, 401 and 403 declared), and request examples that name the seeded RIC, type and service,
so that every write can answer 2xx.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from ranomaly.conformance import Deviation, Served, Target
from ranomaly.conformance_xapp import OPEN_TYPE, serve_xapp
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.auth.apikey import read_api_key
from ranomaly_contracts.auth.guard import API_KEY_HEADER

SPEC = Path(__file__).resolve().parent.parent / "docs" / "specs" / "a1" / "osc-nonrtric-pms-api-v2.yaml"
START_S = 120.0
RIC, SERVICE, POLICY = "ric-1", "conformance-svc", "conformance-1"
SPARE_SERVICE, SPARE_POLICY = "conformance-spare-svc", "conformance-spare"  # what the deletes are steered to
_V2 = "/a1-policy/v2"
NOT_SERVED = ("/actuator", "/example-authz-check")


def _policy(policy_id: str = POLICY, service_id: str = SERVICE) -> dict[str, Any]:
    return {"ric_id": RIC, "policy_id": policy_id, "policytype_id": str(OPEN_TYPE), "service_id": service_id,
            "policy_data": {"rate": 1}}  # fmt: skip


def pms_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The PMS v2 spec as tested (see the module's docstring). The configuration example names no `baseUrl`:
    the rApp keeps its own, set by its settings."""
    paths = {p: item for p, item in spec["paths"].items() if not p.startswith(NOT_SERVED)}
    spec = {**spec, "paths": paths, "security": [{"apiKey": []}]}
    schemes = {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}
    spec["components"] = {**spec["components"], "securitySchemes": schemes}
    examples = {
        f"PUT {_V2}/policies": _policy(),
        f"PUT {_V2}/services": {"service_id": SERVICE, "keep_alive_interval_seconds": 0, "callback_url": ""},
        f"PUT {_V2}/configuration": {"config": {"ric": [{"name": RIC, "managedElementIds": ["gnb-001"]}]}},
    }
    for path, item in paths.items():
        for method, operation in item.items():
            operation["responses"]["401"] = {"description": "no valid credential"}
            operation["responses"]["403"] = {"description": "the credential lacks the scope"}
            example = examples.get(f"{method.upper()} {path}")
            if example is not None:
                operation["requestBody"]["content"]["application/json"]["example"] = example
    return spec


@contextmanager
def serve_rapp(folder: Path, prepare: Callable[[str, Path], dict[str, str]] | None = None) -> Iterator[Served]:
    """A `ranomaly rapp` on a private redis-server managing a seeded `ranomaly xapp`; stopped on exit.
    `prepare(redis_url, work_dir)` seeds its data layer and folders before it starts, and returns more of its
    environment."""
    for part in ("near-rt", "rapp-redis"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    with serve_xapp(folder / "near-rt") as near_rt:
        redis = RedisServer(folder / "rapp-redis")
        redis.start()
        port, work = free_port(), folder / "rapp-work"
        env = {**os.environ, "RANOMALY_RAPP_WORK_DIR": str(work), "RANOMALY_RAPP_REPORT_SUMMARIES": "false",
               "RANOMALY_RAPP_TRAIN_FORECASTER": "false", "RANOMALY_RAPP_A1_SYNC_INTERVAL_S": "1",
               "RANOMALY_RAPP_A1_API_KEY_FILE": str(folder / "near-rt" / "xapp-state" / "api-key"),
               "RANOMALY_RAPP_MANAGED_ELEMENT_IDS": '["gnb-001"]'}  # fmt: skip
        if prepare is not None:
            env.update(prepare(redis.url, work))
        command = [sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "rapp", "--host", "127.0.0.1",
                   "--port", str(port), "--redis-url", redis.url, "--a1-url", near_rt.base_url,
                   "--history", str(folder / "history")]  # fmt: skip
        with (folder / "rapp.log").open("w") as log:
            rapp = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_S
            with httpx.Client(base_url=base, timeout=5) as probe:
                while not _ready(probe):
                    if rapp.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the rApp was not ready on {base} within {START_S:.0f} s; see {log.name}")
                    time.sleep(0.2)
            headers = {API_KEY_HEADER: read_api_key(work / "api-key")}
            with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
                services = [(f"{_V2}/services", {"service_id": s}) for s in (SERVICE, SPARE_SERVICE)]
                seeds = [*services, (f"{_V2}/policies", _policy()), (f"{_V2}/policies", _policy(SPARE_POLICY))]
                for path, body in seeds:
                    response = client.put(path, json=body)
                    if response.status_code != 201:
                        raise RuntimeError(f"seeding PUT {path}: {response.status_code} {response.text}")
            yield Served(base, headers)
        finally:
            rapp.terminate()
            rapp.wait(30)
            redis.stop()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def write_pms_spec(folder: Path) -> Path:
    """The PMS v2 spec as tested, as JSON in the run's folder."""
    path = folder / "pms-v2.json"
    path.write_text(json.dumps(pms_spec(yaml.safe_load(SPEC.read_text()))))
    return path


_POLICY = f"{_V2}/policies/{{policy_id}}"
DEVIATIONS = (
    Deviation(f"DELETE {_POLICY}", "ST103", "404 for a policy that does not exist, as the O-RAN SC PMS"),
    Deviation(f"PUT {_V2}/policies", "ST103", "400/404/409/503 as the O-RAN SC PMS answers them"),
    Deviation(f"PUT {_V2}/policies", "ST202", "400: policy_data fails its type's schema, or an unaddressable id"),
    Deviation(f"PUT {_V2}/services", "ST202", "400: empty service_id, negative interval (as the PMS), unknown field"),
    Deviation(f"PUT {_V2}/configuration", "ST202", "400: not the application configuration's schema"),
    Deviation(f"GET {_V2}/configuration", "ST108", "the configuration as a JSON object, as the PMS returns it"),
    Deviation(f"DELETE {_V2}/services/{{service_id}}", "ST104", "204 without a body, as HTTP and the PMS"),
    Deviation(f"DELETE {_V2}/services/{{service_id}}", "ST109", "204 without a body, as HTTP and the PMS"),
    Deviation(f"GET {_V2}/policy-instances", "ST105", "404 as application/problem+json, as every PMS error"),
)


def pms_target() -> Target:
    """The rApp against the PMS v2 spec."""
    return Target(
        name="rapp-pms",
        spec=write_pms_spec,
        serve=serve_rapp,
        settings={
            "dictionaries.policy_ids": {"values": [POLICY]},
            "dictionaries.service_ids": {"values": [SERVICE]},
            "dictionaries.ric_ids": {"values": [RIC]},
            "dictionaries.type_ids": {"values": [str(OPEN_TYPE), "20100"]},
            "dictionaries.spare_policy": {"values": [SPARE_POLICY]},
            "dictionaries.spare_service": {"values": [SPARE_SERVICE]},
            "parameters": {
                "path.policy_id": {"dictionary": "policy_ids", "probability": 0.5},
                "path.service_id": {"dictionary": "service_ids", "probability": 0.5},
                "query.service_id": {"dictionary": "service_ids", "probability": 0.5},
                "query.ric_id": {"dictionary": "ric_ids", "probability": 0.5},
                "query.policytype_id": {"dictionary": "type_ids", "probability": 0.5},
                "path.policytype_id": {"dictionary": "type_ids", "probability": 0.5},
            },
            "operations": [
                {
                    "include-name": f"DELETE {_POLICY}",
                    "parameters": {"path.policy_id": {"dictionary": "spare_policy", "probability": 0.5}},
                },
                {
                    "include-name": f"DELETE {_V2}/services/{{service_id}}",
                    "parameters": {"path.service_id": {"dictionary": "spare_service", "probability": 0.5}},
                },
            ],  # fmt: skip
        },
        deviations=DEVIATIONS,
    )
