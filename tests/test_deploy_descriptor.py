"""The O-RAN SC xApp descriptor (charts/xapp/descriptor): valid as `dms_cli onboard` checks it, and tied to the code.

The onboarder's schema (tests/data holds a copy of ../shared/specs/xapp/xapp-descriptor-schema.json) gets
the xApp's schema.json in place of its `controls` placeholder and validates config-file.json with
Draft7Validator. The controls, the `appenv` variables the onboarder's chart turns into the container's
environment, and schema.json are compared with XappSettings, so none of them can drift from xapp/settings.py.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.http import http_app
from xapp.policy import rmr
from xapp.policy.types import POLICY_TYPE_ID
from xapp.settings import XappSettings

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = ROOT / "charts" / "xapp" / "descriptor"
ONBOARDER_SCHEMA = ROOT / "tests" / "data" / "xapp-descriptor-schema.json"  # vendored: see tests/data/README.md
SHARED_SCHEMA = ROOT.parent / "shared" / "specs" / "xapp" / "xapp-descriptor-schema.json"
ENV_PREFIX = "RANOMALY_XAPP_"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _load(DESCRIPTOR / "config-file.json")


@pytest.fixture(scope="module")
def controls_schema() -> dict[str, Any]:
    return _load(DESCRIPTOR / "schema.json")


@pytest.fixture(scope="module")
def onboarder_schema(controls_schema: dict[str, Any]) -> dict[str, Any]:
    """The onboarder's schema with schema.json in place of the controls placeholder, as `dms_cli onboard` does."""
    assert ONBOARDER_SCHEMA.is_file(), f"the onboarder's schema is missing: {ONBOARDER_SCHEMA}"
    schema = _load(ONBOARDER_SCHEMA)
    schema["properties"]["controls"] = controls_schema
    Draft7Validator.check_schema(schema)
    return schema


def _errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(document)
    ]


def test_descriptor_validates_as_the_onboarder_checks_it(
    config: dict[str, Any], onboarder_schema: dict[str, Any]
) -> None:
    assert _errors(onboarder_schema, config) == []
    # what the onboarder's code requires beyond its schema
    assert config["name"] and config["version"]


def test_controls_need_the_xapp_schema(config: dict[str, Any]) -> None:
    """Without schema.json in place, the placeholder refuses any controls: the replacement is what validates."""
    assert _errors(_load(ONBOARDER_SCHEMA), config)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), "1.0"),
        (("containers", 0, "image", "registry"), "localhost:5000"),
        (("messaging", "ports", 1, "policies"), ["20100"]),
        (("livenessProbe", "httpGet", "port"), "8080"),
        (("controls", "period_ms"), "60000"),
        (("controls", "period_ms"), 5),
        (("controls", "datalayer"), "sqlite"),
        (("controls", "no_such_setting"), 1),
    ],
    ids=lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else None,
)
def test_descriptor_validation_rejects(
    config: dict[str, Any], onboarder_schema: dict[str, Any], path: tuple[Any, ...], value: Any
) -> None:
    broken = copy.deepcopy(config)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _errors(onboarder_schema, broken)


def test_version_and_image_follow_the_package(config: dict[str, Any]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert config["version"] == version
    (container,) = config["containers"]
    assert container["image"]["tag"] == version
    assert container["image"]["name"] == "ranomaly/xapp"
    assert container["command"] == ["ranomaly"] and container["args"][-1] == "xapp"


def test_messaging_ports_and_messages(config: dict[str, Any]) -> None:
    ports = {port["name"]: port for port in config["messaging"]["ports"]}
    assert {name: port["port"] for name, port in ports.items()} == {"http": 8080, "rmr-data": 4560, "rmr-route": 4561}
    assert {port["container"] for port in ports.values()} == {config["containers"][0]["name"]}
    data = ports["rmr-data"]
    assert {"RIC_INDICATION", "A1_POLICY_REQ"} <= set(data["rxMessages"])
    assert {"A1_POLICY_RESP", "A1_POLICY_QUERY"} <= set(data["txMessages"])
    assert data["policies"] == [POLICY_TYPE_ID]
    # the A1 message names are the ones the xApp's RMR handler implements, with the numbers of the A1 contract
    a1_names = {name for name in data["rxMessages"] + data["txMessages"] if name.startswith("A1_")}
    assert {name: getattr(rmr, name) for name in a1_names} == {
        "A1_POLICY_REQ": 20010,
        "A1_POLICY_RESP": 20011,
        "A1_POLICY_QUERY": 20012,
    }
    section = config["rmr"]
    assert section["protPort"] == f"tcp:{data['port']}"
    assert (section["rxMessages"], section["txMessages"], section["policies"]) == (
        data["rxMessages"],
        data["txMessages"],
        data["policies"],
    )


def test_probes_hit_the_real_health_endpoints(config: dict[str, Any]) -> None:
    app = http_app(XappService(XappSettings(), datalayer=MemoryDataLayer()))
    routes = set(app.openapi()["paths"])
    http_port = next(p["port"] for p in config["messaging"]["ports"] if p["name"] == "http")
    assert config["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": http_port}
    assert config["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": http_port}
    assert {"/healthz", "/readyz", "/metrics"} <= routes
    assert config["controls"]["a1_port"] == http_port


def test_schema_describes_exactly_the_xapp_settings(controls_schema: dict[str, Any]) -> None:
    """schema.json has one property per XappSettings field, with the code's types, bounds, choices and defaults."""
    code = XappSettings.model_json_schema()["properties"]
    ours = controls_schema["properties"]
    assert set(ours) == set(code)
    assert controls_schema["additionalProperties"] is False
    for name, prop in ours.items():
        expected = code[name]
        variants = expected.get("anyOf", [expected])
        types = sorted(v["type"] for v in variants)
        assert sorted(prop["type"] if isinstance(prop["type"], list) else [prop["type"]]) == types, name
        for key in ("minimum", "maximum", "exclusiveMinimum", "enum", "items"):
            found = [v[key] for v in variants if key in v]
            assert prop.get(key) == (found[0] if found else None), f"{name}.{key}"
        assert prop.get("default") == expected.get("default"), name
        assert prop.get("description"), name


def test_controls_are_valid_xapp_settings(config: dict[str, Any]) -> None:
    controls = config["controls"]
    assert set(controls) <= set(XappSettings.model_fields)
    settings = XappSettings(**controls)
    assert settings.datalayer == "redis"
    assert settings.redis_url == "redis://service-ricplt-dbaas-tcp.ricplt:6379/0"


def test_appenv_carries_the_controls(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The onboarder's chart puts appenv in the environment: it must read as the same settings as the controls."""
    appenv, controls = config["appenv"], config["controls"]
    assert all(isinstance(value, str) for value in appenv.values())  # ConfigMap data are strings
    assert {key.removeprefix(ENV_PREFIX).lower() for key in appenv} == set(controls)
    assert all(key.startswith(ENV_PREFIX) for key in appenv)
    for name in XappSettings.model_fields:
        monkeypatch.delenv(f"{ENV_PREFIX}{name.upper()}", raising=False)
    for key, value in appenv.items():
        monkeypatch.setenv(key, value)
    from_env = XappSettings().model_dump(include=set(controls))
    assert from_env == XappSettings(**controls).model_dump(include=set(controls))


def test_the_vendored_onboarder_schema_is_the_shared_one() -> None:
    if not SHARED_SCHEMA.exists():
        pytest.skip(f"{SHARED_SCHEMA} is not beside this clone; the vendored copy is used as is")
    assert _load(ONBOARDER_SCHEMA) == _load(SHARED_SCHEMA)
