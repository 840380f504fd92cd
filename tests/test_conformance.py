"""The conformance harness's own parts (the schemathesis runs themselves are `make conformance`'s): the table
of deviations in docs/conformance.md, the spec with our security, schemathesis.toml, and the verdict."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path

from ranomaly.conformance import Deviation, Outcome, read_outcome, targets, toml
from ranomaly.conformance_rapp_openapi import api_key_only
from ranomaly.conformance_xapp import DEVIATIONS, with_security, xapp_target

DOC = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"


def test_every_allowed_deviation_has_its_row_in_the_docs() -> None:
    rows = {
        (match[0], match[1])
        for match in re.findall(r"^\| `([A-Z]+ /[^`]+)` \| (ST\d+) \|", DOC.read_text(), flags=re.MULTILINE)
    }
    allowed = {(d.operation, d.code) for make in targets().values() for d in make().deviations}
    assert allowed <= rows, allowed - rows
    assert rows == allowed, rows - allowed  # no row left over from a deviation since fixed
    assert {(d.operation, d.code) for d in DEVIATIONS} <= allowed


def test_the_mediator_spec_gets_our_security_on_every_operation_but_the_healthcheck(tmp_path: Path) -> None:
    spec = json.loads(xapp_target().spec(tmp_path).read_text())
    assert spec["securityDefinitions"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    operations = {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    assert len(operations) == 11
    for (method, path), operation in operations.items():
        if path.endswith("/healthcheck"):
            assert operation["security"] == [], path
            assert "401" not in operation["responses"]
        else:
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert with_security({"paths": {}})["security"] == [{"apiKey": []}]


def test_settings_are_written_as_toml_schemathesis_reads() -> None:
    settings = xapp_target().settings
    assert tomllib.loads(toml(settings)) == {
        "dictionaries": {name.split(".")[1]: settings[name] for name in settings if name.startswith("dictionaries.")},
        "parameters": settings["parameters"],
        "operations": settings["operations"],
    }


def test_the_verdict_fails_outside_the_table_and_without_2xx(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        "\n".join(
            json.dumps({"operation": op, "status": s}) for op, s in [("GET /a", 200), ("GET /a", 404), ("PUT /a", 400)]
        )
    )
    report = tmp_path / "report.json"
    report.write_text(json.dumps({
        "failures": [{"code": "ST103", "operations": ["GET /a", "PUT /a"]},
                     {"code": "ST202", "operations": ["PUT /a"]}],
        "valid_rates": {"GET /a": {}, "PUT /a": {}, "DELETE /a": {}},
        "errors": [],
    }))  # fmt: skip
    outcome = read_outcome(calls, report, tmp_path / "log", 1.0)
    assert outcome.calls == {"GET /a": Counter({200: 1, 404: 1}), "PUT /a": Counter({400: 1}), "DELETE /a": Counter()}
    assert outcome.unexplained([Deviation("PUT /a", "ST202", "")]) == [("GET /a", "ST103"), ("PUT /a", "ST103")]
    assert outcome.never_2xx() == ["DELETE /a", "PUT /a"]
    missing = read_outcome(calls, tmp_path / "none.json", tmp_path / "log", 1.0)
    assert missing.errors and "no report" in missing.errors[0]
    assert Outcome({"GET /a": Counter({204: 1})}, {}, [], 0).never_2xx() == []


def test_the_rapps_document_as_tested_offers_the_api_key_alone_on_every_operation() -> None:
    either: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    document = {
        "components": {"securitySchemes": {"HTTPBearer": {"type": "http"}, "APIKeyHeader": {"type": "apiKey"}}},
        "paths": {
            "/api/v1/models": {"get": {"security": either}},
            "/api/v1/forecasts/{cell_id}": {"get": {"security": either}},
            "/healthz": {"get": {}},
        },
    }
    tested = api_key_only(document)
    assert tested["components"]["securitySchemes"] == {"APIKeyHeader": {"type": "apiKey"}}
    key_alone: list[dict[str, list[str]]] = [{"APIKeyHeader": []}]
    assert tested["paths"] == {
        "/api/v1/models": {"get": {"security": key_alone}},
        "/api/v1/forecasts/{cell_id}": {"get": {"security": key_alone}},
        "/healthz": {"get": {}},
    }
