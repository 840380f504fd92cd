"""The rApp's OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator), bodies, response models and the
problem answers declared, no FastAPI 422 that no route returns; and pydantic models generated from it
(datamodel-code-generator, into a temporary folder) used as a client of a real rApp and xApp on loopback."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from openapi_spec_validator import validate

from rapp.app import RappService
from rapp.settings import RappSettings
from tests import test_rapp_policies
from tests.test_rapp_policies import Rapp, policy, rapp_settings
from tests.test_xapp_service import Running, until

key, near_rt = test_rapp_policies.key, test_rapp_policies.near_rt  # their fixtures, here too
V2 = "/a1-policy/v2"


def document(tmp_path: Path) -> dict[str, Any]:
    settings = RappSettings(work_dir=tmp_path / "work", history_dir=tmp_path / "history", report_summaries=False)
    spec: dict[str, Any] = RappService(settings).app().openapi()
    return spec


def test_the_document_is_valid_openapi_31_with_bodies_models_and_problems(tmp_path: Path) -> None:
    spec = document(tmp_path)
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on an invalid document
    text = json.dumps(spec)
    assert "HTTPValidationError" not in text, "no FastAPI 422 declared: the rApp answers a 400 problem"
    operations = {(m.upper(), p): op for p, item in spec["paths"].items() for m, op in item.items()}
    for put in (("PUT", f"{V2}/policies"), ("PUT", f"{V2}/services"), ("PUT", f"{V2}/configuration")):
        assert operations[put]["requestBody"]["required"] is True, put
    training = operations[("POST", "/api/v1/jobs/training")]
    assert training["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobRequest"
    }
    assert "reason" in spec["components"]["schemas"]["JobRequest"]["properties"]
    assert {p["name"] for p in operations[("GET", "/api/v1/jobs")]["parameters"]} >= {"limit", "offset"}
    for (method, path), op in operations.items():
        if op.get("security"):
            assert {"401", "403"} <= set(op["responses"]), (method, path)
            problem = op["responses"]["401"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}
    models = {
        ("GET", f"{V2}/rics"): "RicInfoList",
        ("GET", f"{V2}/policies/{{policy_id}}"): "PolicyInfo",
        ("GET", "/api/v1/incidents"): "IncidentPage",
        ("GET", "/api/v1/jobs/{job_id}"): "JobOut",
    }
    for operation, model in models.items():
        answer = operations[operation]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{model}"}, operation
    assert "404" in operations[("DELETE", f"{V2}/policies/{{policy_id}}")]["responses"]


def generated(spec: dict[str, Any], folder: Path) -> ModuleType:
    """pydantic v2 models generated from the document by datamodel-code-generator, imported."""
    source, target = folder / "openapi.json", folder / "rapp_client.py"
    source.write_text(json.dumps(spec))
    codegen = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run([str(codegen), "--input", str(source), "--input-file-type", "openapi", "--output", str(target),
                    "--output-model-type", "pydantic_v2.BaseModel"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    spec_ = importlib.util.spec_from_file_location("rapp_client", target)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    sys.modules["rapp_client"] = module  # pydantic resolves the models' references through it
    spec_.loader.exec_module(module)
    return module


async def test_a_client_generated_from_the_document_talks_to_a_real_rapp(
    redis_url: str, key: str, near_rt: tuple[Running, int], tmp_path: Path
) -> None:
    client = generated(document(tmp_path / "doc"), tmp_path)
    _, port = near_rt
    rapp = Rapp(rapp_settings(redis_url, port), key)
    try:
        await until(lambda: rapp.service.near_rt_available and rapp.service.loaded, what="the RIC available")
        registration = client.ServiceRegistration(service_id="saver", keep_alive_interval_seconds=30)
        put = await rapp.call("PUT", f"{V2}/services", registration.model_dump(mode="json"))
        assert put.status_code == 201
        info = client.PolicyInfo(**policy("p1", service_id="saver"))
        assert (await rapp.call("PUT", f"{V2}/policies", info.model_dump(mode="json"))).status_code == 201
        rics = client.RicInfoList.model_validate((await rapp.call("GET", f"{V2}/rics")).json())
        assert [(r.ric_id, r.state.value, r.policytype_ids) for r in rics.rics] == [("ric-1", "AVAILABLE", ["20100"])]
        services = client.ServiceStatusList.model_validate((await rapp.call("GET", f"{V2}/services")).json())
        assert [s.service_id for s in services.service_list] == ["saver"]
        instances = client.PolicyInfoList.model_validate((await rapp.call("GET", f"{V2}/policy-instances")).json())
        assert [(p.policy_id, p.service_id) for p in instances.policies] == [("p1", "saver")]
        status = client.PolicyStatus.model_validate((await rapp.call("GET", f"{V2}/policies/p1/status")).json())
        assert status.status["enforceStatus"] in ("ENFORCED", "NOT_ENFORCED")
        missing = client.Problem.model_validate((await rapp.call("GET", f"{V2}/policies/p9")).json())
        assert missing.status == 404 and "p9" in missing.detail
        page = client.IncidentPage.model_validate((await rapp.call("GET", "/api/v1/incidents")).json())
        assert page.incidents == [] and page.next_cursor is None
        advice = client.AllAdvice.model_validate((await rapp.call("GET", "/api/v1/remediation")).json())
        kind = next(iter(advice.kinds))
        one = client.KindAdvice.model_validate((await rapp.call("GET", f"/api/v1/remediation/{kind}")).json())
        assert one.actions == advice.kinds[kind] and one.actions[0].rank == 1
        breaches = client.Breaches.model_validate((await rapp.call("GET", "/api/v1/breaches")).json())
        assert breaches.limits and breaches.active == []
    finally:
        await rapp.stop()
