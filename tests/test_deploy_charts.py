"""The Helm charts (charts/xapp, charts/rapp, charts/e2sim), rendered and validated offline.

Each chart is rendered with several value sets by helm-python-sdk (Helm's own engine), linted in strict mode, and
every manifest is validated with kubernetes-validate in strict mode (unknown fields fail) against each Kubernetes
minor from 1.28 to 1.32 (its schema files are read once per run, not once per manifest: same schemas, same
validator). The ServiceMonitor, a custom resource, is validated against SERVICE_MONITOR_SCHEMA, the part of the
Prometheus Operator CRD (v0.84.1 openAPIV3Schema) that the charts can emit. Then the meaning is checked: probes
on the real endpoints and ports, settings that the apps accept (the rApp's from its ConfigMap and Secret, as the
pod gets them), selectors that select, non-root security contexts, the data layer and A1 endpoint each profile
points at, egress rules that reach them.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python as helm
import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from pydantic_settings import BaseSettings

from e2sim.settings import SimSettings
from ranomaly.cli import main
from ranomaly_contracts.redis_acl import RAPP_USER, XAPP_USER, chart_rules
from rapp.settings import RappSettings
from xapp.settings import XappSettings

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT / "charts"
KUBE_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32")
DBAAS_URL = "redis://service-ricplt-dbaas-tcp.ricplt:6379/0"
REDIS_PASSWORD_DIR = "/var/run/secrets/ranomaly/redis"  # where an app's Redis ACL password is mounted
RIC_CELLS = ["paris-1-c1=gnb_208_092_00000a01/20892/0x00a010001", "paris-1-c2=gnb_208_092_00000a01/20892/0x00a010002"]
SEED = {"volume": {"configMap": {"name": "ranomaly-seed-model"}}, "mountPath": "/models/seed"}
A1_MEDIATOR_URL = "http://service-ricplt-a1mediator-http.ricplt:10000"
ISSUER = "https://sso.example.net/realms/ran"
JWKS = f"{ISSUER}/protocol/openid-connect/certs"
API_KEY_DIR = "/var/run/secrets/ranomaly/api-key"  # where an app's API key is mounted
A1_KEY_DIR, A1_CLIENT_DIR = "/var/run/secrets/ranomaly/a1-api-key", "/var/run/secrets/ranomaly/a1-client"
MODEL_KEYS_DIR = "/var/run/secrets/ranomaly/model-keys"  # the public keys the xApp trusts models signed with
SIGNING_DIR = "/var/run/secrets/ranomaly/model-signing"  # the rApp's model signing key
# Secrets that an operator creates beside a release (credentials.existingSecret), as the pod would find them.
EXISTING_SECRETS = {
    "rapp-credentials": {"redis-url": "redis://:s3cret@redis.example.net:6380/2"},
    "noc-credentials": {"webhook": "https://noc.example.net/alertmanager/ranomaly"},
}


@dataclass(frozen=True)
class Case:
    """One chart rendered with one value set, as `helm install RELEASE CHART -n NAMESPACE -f VALUES` would."""

    chart: str
    namespace: str
    values: dict[str, Any]

    @property
    def release(self) -> str:
        return {"xapp": "ranomaly-xapp", "rapp": "ranomaly-rapp", "e2sim": "ranomaly-e2sim"}[self.chart]


CASES = {
    "xapp-standalone": Case("xapp", "ranomaly", {}),
    "xapp-standalone-redis-monitoring": Case(
        "xapp",
        "ranomaly",
        {
            "redis": {"enabled": True, "persistence": {"enabled": True}},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
            "seedModel": SEED,
            "networkPolicy": {"egress": [{"to": [{"podSelector": {}}]}], "httpFrom": [{"podSelector": {}}]},
            "settings": {"incident_buffer": 1000000, "batch_window_ms": 2.5, "model_shadow_periods": None},
            "imagePullSecrets": ["registry-credentials"],
        },
    ),
    "xapp-ric": Case("xapp", "ricxapp", {"ric": {"enabled": True}, "settings": {"ric_cells": RIC_CELLS}}),
    "xapp-ric-seed": Case(
        "xapp", "ricxapp", {"ric": {"enabled": True}, "seedModel": SEED, "settings": {"ric_cells": RIC_CELLS[:1]}}
    ),
    "xapp-replicas": Case(
        "xapp",
        "ranomaly",
        {"replicas": 3, "datalayer": {"backend": "redis", "redisUrl": "redis://redis.example.net:6379/0"}},
    ),
    "xapp-ric-replicas": Case(
        "xapp", "ricxapp", {"replicas": 2, "ric": {"enabled": True}, "settings": {"ric_cells": RIC_CELLS}}
    ),
    "xapp-minimal": Case(
        "xapp",
        "default",
        {
            "networkPolicy": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "serviceAccount": {"create": False},
            "metrics": {"podAnnotations": False},
            "resources": {},
            "settings": {},
        },
    ),
    # the xApp chart's Redis (release ranomaly-xapp with redis.enabled) and A1-P endpoint
    "rapp-standalone": Case("rapp", "ranomaly", {}),
    "rapp-standalone-redis-monitoring": Case(
        "rapp",
        "ranomaly",
        {
            "redis": {"enabled": True, "persistence": {"enabled": True}},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
            "notifications": {"nocWebhookUrl": "https://noc.example.net/alertmanager/ranomaly"},
            "persistence": {"storageClass": "fast-ssd", "size": "50Gi"},
            "networkPolicy": {
                "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443}]}],
                "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
            },
            "settings": {
                "retrain_every_h": 24,
                "eval_share": 0.2,
                "collect_batch": 500,
                "noc_receiver": None,
                "report_headline_measurements": ["DRB.UEThpDl", "RRU.PrbUsedDl"],
                "breach_limits": {"RRU.PrbUsedDl": {"above": 130}},
            },
            "imagePullSecrets": ["registry-credentials"],
        },
    ),
    "rapp-ric": Case("rapp", "nonrtric", {"ric": {"enabled": True}, "settings": {"ric_id": "ric-paris-1"}}),
    # inside a RIC, A1-P sent to the xApp's own endpoint (docs/deploy.md), the NOC webhook in a Secret of yours
    "rapp-ric-xapp-a1": Case(
        "rapp",
        "nonrtric",
        {
            "ric": {"enabled": True},
            "a1": {"baseUrl": "http://ranomaly-xapp.ricxapp:8080"},
            "credentials": {"existingSecret": "noc-credentials", "nocWebhookUrlKey": "webhook"},
            "persistence": {"existingClaim": "ranomaly-rapp-data"},
            "networkPolicy": {
                "a1Peers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ricxapp"}}}]
            },
        },
    ),
    # a Redis elsewhere with a password in its URL (no ACL user), in a Secret of yours
    "rapp-external-secret": Case(
        "rapp",
        "ranomaly",
        {
            "credentials": {"existingSecret": "rapp-credentials"},
            "datalayer": {"redisUrl": "redis://redis.example.net:6380/2", "redisUsername": ""},
            "networkPolicy": {"redisPeers": [{"ipBlock": {"cidr": "198.51.100.7/32"}}]},
        },
    ),
    "rapp-minimal": Case(
        "rapp",
        "default",
        {
            "networkPolicy": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "serviceAccount": {"create": False},
            "metrics": {"podAnnotations": False},
            "persistence": {"enabled": False},
            "resources": {},
            "settings": {},
        },
    ),
    # tokens of an issuer: the xApp takes no API key; the rApp's key is a Secret of yours, its A1 credential a
    # client-credentials token
    "xapp-auth-tokens": Case(
        "xapp", "ranomaly", {"auth": {"issuer": ISSUER, "jwksUrl": JWKS, "apiKey": {"enabled": False}}}
    ),
    "rapp-auth-tokens": Case(
        "rapp",
        "ranomaly",
        {
            "auth": {"issuer": ISSUER, "jwksUrl": JWKS, "apiKey": {"secret": "rapp-api-key", "key": "key"}},
            "a1Auth": {"tokenUrl": f"{ISSUER}/protocol/openid-connect/token", "clientSecretSecret": "rapp-oauth"},
        },
    ),
    "xapp-auth-off": Case("xapp", "ranomaly", {"auth": {"enabled": False}}),
    # signed models: the rApp's private key and the public keys the xApp trusts, from objects of yours
    "xapp-signed-models": Case("xapp", "ranomaly", {"modelTrust": {"publicKeys": {"configMap": "model-keys"}}}),
    "rapp-signed-models": Case("rapp", "ranomaly", {"modelSigning": {"secret": "model-signing"}}),
    "e2sim-standalone": Case("e2sim", "ranomaly", {}),
    "e2sim-ric": Case("e2sim", "ricxapp", {"settings": {"cells": 600, "pace": "accelerated", "periods": 1440}}),
    "e2sim-minimal": Case(
        "e2sim",
        "default",
        {
            "networkPolicy": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "serviceAccount": {"create": False},
            "resources": {},
            "settings": {},
        },
    ),
}
XAPP_CASES = [name for name, case in CASES.items() if case.chart == "xapp"]
RAPP_CASES = [name for name, case in CASES.items() if case.chart == "rapp"]
E2SIM_CASES = [name for name, case in CASES.items() if case.chart == "e2sim"]

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "labels": _STRINGS, "annotations": _STRINGS},
        },
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STRINGS},
                },
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}
# The part of cert-manager's Certificate CRD (v1.17 openAPIV3Schema) that the charts can emit (tls.certManager).
CERTIFICATE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Certificate"},
        "metadata": SERVICE_MONITOR_SCHEMA["properties"]["metadata"],
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "duration": {"type": "string"},
                "renewBefore": {"type": "string"},
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    },
                },
                "usages": {
                    "type": "array",
                    "items": {"enum": ["digital signature", "key encipherment", "server auth", "client auth"]},
                },
                "dnsNames": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "issuerRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "kind": {"type": "string"},
                        "group": {"type": "string"},
                    },
                },
            },
        },
    },
}
CUSTOM_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA,
    ("cert-manager.io/v1", "Certificate"): CERTIFICATE_SCHEMA,
}


@dataclass(frozen=True)
class Render:
    """What one case renders: the manifests and the NOTES.txt text."""

    docs: list[dict[str, Any]]
    notes: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        (doc,) = [d for d in self.of(kind) if name is None or d["metadata"]["name"] == name]
        return doc

    def workloads(self) -> list[dict[str, Any]]:
        """The Deployments and StatefulSets (the xApp's replicas are a StatefulSet)."""
        return self.of("Deployment") + self.of("StatefulSet")

    def workload(self, name: str | None = None) -> dict[str, Any]:
        (doc,) = [d for d in self.workloads() if name is None or d["metadata"]["name"] == name]
        return doc


def render(chart_dir: Path, case: Case) -> Render:
    """The chart at chart_dir rendered as the case installs it."""
    with helm.Chart.load(chart_dir) as chart:
        files = chart.render(case.values, name=case.release, namespace=case.namespace, is_install=True)
    notes = "".join(text for name, text in files.items() if name.endswith("NOTES.txt"))
    docs = [
        doc
        for name, text in sorted(files.items())
        if not name.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return Render(docs, notes)


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Any:
    """kubernetes-validate reads and parses its schema files (_definitions.json: megabytes) for every manifest;
    reading each once makes the strict validation of every case against five versions affordable."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


@pytest.fixture(scope="module")
def rendered() -> dict[str, Render]:
    return {name: render(CHARTS / case.chart, case) for name, case in CASES.items()}


def validation_errors(docs: list[dict[str, Any]], version: str) -> list[str]:
    """Every problem kubernetes-validate (strict) or a custom resource's schema finds, one line each."""
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        custom = CUSTOM_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
        if custom is not None:
            errors += [f"{where}: {e.message}" for e in jsonschema.Draft7Validator(custom).iter_errors(doc)]
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
    return errors


# --- lint and schema validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.28", "1.32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_helm_lint_strict(name: str, version: str) -> None:
    case = CASES[name]
    report = helm.lint(
        CHARTS / case.chart, case.values, strict=True, namespace=case.namespace, kube_version=f"v{version}.0"
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_manifests_validate_strictly(rendered: dict[str, Render], name: str, version: str) -> None:
    assert rendered[name].docs
    assert validation_errors(rendered[name].docs, version) == []


@pytest.mark.parametrize(
    ("chart", "values", "field", "message"),
    [
        ("xapp", {"replicas": "two"}, "replicas", "'two' is not of type 'integer'"),
        ("rapp", {"replicaCount": "one"}, "replicas", "'one' is not of type 'integer'"),
        ("rapp", {"ports": {"http": "http"}}, "containerPort", "'http' is not of type 'integer'"),
        ("rapp", {"terminationGracePeriodSeconds": "30s"}, "terminationGracePeriodSeconds", "not of type 'integer'"),
    ],
)
def test_wrong_type_fails_validation(chart: str, values: dict[str, Any], field: str, message: str) -> None:
    """helm lint accepts these values; strict validation is what catches them."""
    case = Case(chart, "ranomaly", values)
    assert helm.lint(CHARTS / chart, case.values, strict=True)["errors"] == []
    errors = validation_errors(render(CHARTS / chart, case).docs, "1.32")
    assert any(field in e and message in e for e in errors), errors


def test_unknown_field_from_values_fails_validation() -> None:
    """Values that carry Kubernetes objects (extra egress rules) are checked field by field too."""
    case = Case("rapp", "ranomaly", {"networkPolicy": {"extraEgress": [{"too": [{"podSelector": {}}]}]}})
    errors = validation_errors(render(CHARTS / "rapp", case).docs, "1.28")
    assert any("NetworkPolicy/ranomaly-rapp" in e and "'too' was unexpected" in e for e in errors), errors


@pytest.fixture(params=["xapp", "rapp"])
def chart_copy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A copy of a chart to break."""
    return Path(shutil.copytree(CHARTS / request.param, tmp_path / request.param))


def test_unknown_field_in_a_template_fails_validation(chart_copy: Path) -> None:
    deployment = chart_copy / "templates" / ("statefulset.yaml" if chart_copy.name == "xapp" else "deployment.yaml")
    text = deployment.read_text()
    needle = "          imagePullPolicy: {{ .Values.image.pullPolicy }}\n"
    assert needle in text
    deployment.write_text(text.replace(needle, needle + "          imagePullPolicyy: Always\n"))
    errors = validation_errors(render(chart_copy, CASES[f"{chart_copy.name}-standalone"]).docs, "1.28")
    assert any("'imagePullPolicyy' was unexpected" in e for e in errors), errors


def test_broken_template_fails_render_and_lint(chart_copy: Path) -> None:
    (chart_copy / "templates" / "service.yaml").write_text("{{ if }}\n")
    with pytest.raises(helm.HelmError, match="missing value for if"):
        render(chart_copy, CASES[f"{chart_copy.name}-standalone"])
    assert helm.lint(chart_copy, None, strict=True)["errors"]


def test_service_monitor_schema_rejects_mistakes(rendered: dict[str, Render]) -> None:
    monitor = rendered["xapp-standalone-redis-monitoring"].one("ServiceMonitor")
    assert validation_errors([monitor], "1.32") == []
    for key, value in [("port", 8080), ("interval", "30 seconds"), ("targetPortt", "http")]:
        broken = json.loads(json.dumps(monitor))
        broken["spec"]["endpoints"][0][key] = value
        assert validation_errors([broken], "1.32"), key


@pytest.mark.parametrize(
    ("chart", "namespace", "values", "message"),
    [
        ("xapp", "ranomaly", {"settings": {"a1_port": 9090}}, "settings.a1_port is set by the chart"),
        ("xapp", "ranomaly", {"settings": {"redis_url": "redis://x"}}, "settings.redis_url is set by the chart"),
        ("xapp", "ranomaly", {"datalayer": {"backend": "sqlite"}}, "datalayer.backend must be memory or redis"),
        ("xapp", "ranomaly", {"datalayer": {"backend": "redis"}}, "datalayer.redisUrl is required"),
        ("xapp", "ranomaly", {"ric": {"enabled": True}}, 'install the release in the xApp namespace "ricxapp"'),
        ("xapp", "ricxapp", {"ric": {"enabled": True}, "redis": {"enabled": True}}, "leave redis.enabled false"),
        ("xapp", "ricxapp", {"ric": {"enabled": True}}, "settings.ric_cells must list the cells"),
        ("xapp", "ricxapp", {"ric": {"enabled": True}, "settings": {"transport": "grpc"}}, "settings.transport is set"),
        ("e2sim", "ranomaly", {"settings": {"port": 1}}, "settings.port is set by the chart"),
        ("rapp", "ranomaly", {"settings": {"port": 9090}}, "settings.port is set by the chart"),
        ("rapp", "ranomaly", {"settings": {"redis_url": "redis://x"}}, "settings.redis_url is set by the chart"),
        ("rapp", "ranomaly", {"settings": {"work_dir": "/data"}}, "settings.work_dir is set by the chart"),
        ("rapp", "ranomaly", {"settings": {"noc_webhook_url": "http://x"}}, "settings.noc_webhook_url is set"),
        ("rapp", "ranomaly", {"replicaCount": 2}, "replicaCount must be 0 or 1, not 2"),
        ("rapp", "ranomaly", {"ric": {"enabled": True}, "redis": {"enabled": True}}, "leave redis.enabled false"),
        ("rapp", "ranomaly", {"datalayer": {"redisUrl": ""}}, "datalayer.redisUrl is required"),
        ("rapp", "ranomaly", {"datalayer": {"redisUrl": "http://redis:6379"}}, "must be a redis://, rediss://"),
        ("rapp", "ranomaly", {"a1": {"apiRoot": "A1-P/v2"}}, "a1.apiRoot must start with /"),
        ("rapp", "ranomaly", {"a1": {"baseUrl": "ranomaly-xapp:8080"}}, "a1.baseUrl must be an http:// or https://"),
        ("xapp", "ranomaly", {"settings": {"auth": "off"}}, "settings.auth is set by the chart: use auth.*"),
        ("xapp", "ranomaly", {"auth": {"apiKey": {"enabled": False}}}, "needs auth.apiKey.enabled"),
        ("rapp", "ranomaly", {"auth": {"issuer": ISSUER}}, "auth.issuer needs auth.jwksUrl"),
        ("rapp", "ranomaly", {"settings": {"a1_token_url": ISSUER}}, "settings.a1_token_url is set by the chart"),
        ("rapp", "ranomaly", {"a1Auth": {"tokenUrl": ISSUER}}, "a1Auth.tokenUrl needs a1Auth.clientSecretSecret"),
        ("xapp", "ranomaly", {"settings": {"trusted_model_keys": ["/k"]}}, "settings.trusted_model_keys is set by"),
        ("xapp", "ranomaly", {"settings": {"allow_unsigned_models": True}}, "use modelTrust.*"),
        ("xapp", "ranomaly", {"modelTrust": {"publicKeys": {"secret": "a", "configMap": "b"}}}, "not both"),
        ("rapp", "ranomaly", {"settings": {"model_signing_key_file": "/k"}}, "use modelSigning.*"),
        ("xapp", "ranomaly", {"datalayer": {"cluster": True}}, "datalayer.cluster: the cluster is an external one"),
        ("xapp", "ranomaly", {"redis": {"enabled": True}, "datalayer": {"cluster": True}}, "not redis.enabled"),
        ("rapp", "ranomaly", {"redis": {"enabled": True}, "datalayer": {"cluster": True}}, "not redis.enabled"),
        ("rapp", "ranomaly", {"settings": {"redis_cluster": True}}, "settings.redis_cluster is set by the chart"),
    ],
)
def test_chart_refuses_values_that_cannot_work(
    chart: str, namespace: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(CHARTS / chart, Case(chart, namespace, values))


# --- meaning --------------------------------------------------------------------------------------------------


def _env(monkeypatch: pytest.MonkeyPatch, data: dict[str, str], model: type[BaseSettings]) -> BaseSettings:
    """The settings object the app would build from this ConfigMap as its environment."""
    prefix = model.model_config["env_prefix"]
    unknown = {key for key in data if key.removeprefix(prefix).lower() not in model.model_fields}
    assert not unknown, f"not settings of {model.__name__}: {sorted(unknown)}"
    for field in model.model_fields:
        monkeypatch.delenv(f"{prefix}{field.upper()}", raising=False)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    return model()


def _container(render_: Render, name: str) -> dict[str, Any]:
    deployment = render_.workload(name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _port(container: dict[str, Any], name: str) -> int:
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return int(number)


@pytest.mark.parametrize("name", XAPP_CASES)
def test_xapp_probes_ports_and_settings(
    rendered: dict[str, Render], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered[name]
    container = _container(render_, "ranomaly-xapp")
    settings = _env(monkeypatch, render_.one("ConfigMap")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert _port(container, "http") == settings.a1_port == 8080
    assert (_port(container, "rmr-data"), _port(container, "rmr-route")) == (4560, 4561)
    assert settings.http_host == "0.0.0.0"
    assert container["command"] == ["ranomaly"] and container["args"][-1] == "xapp"
    service = render_.one("Service", "ranomaly-xapp")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "http": 8080,
        "rmr-data": 4560,
        "rmr-route": 4561,
    }


@pytest.mark.parametrize("name", E2SIM_CASES)
def test_e2sim_probes_ports_and_settings(
    rendered: dict[str, Render], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered[name]
    container = _container(render_, "ranomaly-e2sim")
    settings = _env(monkeypatch, render_.one("ConfigMap")["data"], SimSettings)
    assert isinstance(settings, SimSettings)
    assert settings.host == "0.0.0.0"
    assert _port(container, "grpc") == settings.port == 50051
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}
    assert container["args"][-2:] == ["sim", "serve"]


def _pod_env(render_: Render, container: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets from its ConfigMaps and Secrets (rendered, or EXISTING_SECRETS), as
    the kubelet builds it: envFrom first, env entries over it; a missing key of a non-optional ref fails."""
    secrets = {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
               for s in render_.of("Secret")}  # fmt: skip
    secrets.update(EXISTING_SECRETS)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(render_.one("ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in container.get("env", []):
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] in secrets, f"{entry['name']}: no Secret {ref['name']}"
        if ref["key"] in secrets[ref["name"]]:
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            assert ref.get("optional") is True, f"{entry['name']}: Secret {ref['name']} lacks {ref['key']}"
    return env


def _rapp(render_: Render, monkeypatch: pytest.MonkeyPatch) -> tuple[RappSettings, dict[str, Any], dict[str, Any]]:
    """The rApp's settings as its pod would build them, its container and its pod spec."""
    deployment = render_.workload("ranomaly-rapp")
    container = _container(render_, "ranomaly-rapp")
    settings = _env(monkeypatch, _pod_env(render_, container), RappSettings)
    assert isinstance(settings, RappSettings)
    return settings, container, deployment["spec"]["template"]["spec"]


def _egress_port(rules: list[dict[str, Any]], url: str, default: int) -> list[dict[str, Any]]:
    """The peers of the egress rule whose port is the URL's."""
    port = urlsplit(url).port or default
    (rule,) = [r for r in rules if {"port": port, "protocol": "TCP"} in r.get("ports", [])]
    return list(rule["to"])


@pytest.mark.parametrize("name", RAPP_CASES)
def test_rapp_probes_ports_settings_and_volumes(
    rendered: dict[str, Render], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered[name]
    settings, container, pod = _rapp(render_, monkeypatch)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert _port(container, "http") == settings.port == 8090 and settings.http_host == "0.0.0.0"
    assert container["command"] == ["ranomaly"] and container["args"][-1] == "rapp"
    service = render_.one("Service", "ranomaly-rapp")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8090}
    # single writer: one pod, the old one gone before the new one starts
    deployment = render_.workload("ranomaly-rapp")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    # no RANOMALY_RAPP_PORT=tcp://... from the Service named ranomaly-rapp
    assert pod["enableServiceLinks"] is False
    # history and jobs on the data volume; nothing else writable but /tmp
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    secrets = {path for path in mounts if path.startswith("/var/run/secrets/ranomaly/")}  # credentials, read-only
    assert set(mounts) - secrets == {"/tmp", "/var/lib/ranomaly"}
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"] in secrets)
    data = Path("/var/lib/ranomaly")
    assert (settings.history_dir, settings.work_dir) == (data / "history", data / "work")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[str(data)]]
    claims = render_.of("PersistentVolumeClaim")
    if name == "rapp-minimal":
        assert volume == {"name": "data", "emptyDir": {}} and not claims
    elif name == "rapp-ric-xapp-a1":
        assert volume["persistentVolumeClaim"] == {"claimName": "ranomaly-rapp-data"} and not claims
    else:
        claim = render_.one("PersistentVolumeClaim", "ranomaly-rapp")
        assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    # credentials stay out of the ConfigMap: a datalayer.redisUrl (it may hold a password), the NOC webhook;
    # a URL the chart derives (its own Redis, the RIC's DBaaS) holds none
    config = render_.one("ConfigMap", "ranomaly-rapp")["data"]
    derived = {"rapp-standalone-redis-monitoring", "rapp-ric", "rapp-ric-xapp-a1"}
    assert ("RANOMALY_RAPP_REDIS_URL" in config) == (name in derived)
    assert "RANOMALY_RAPP_NOC_WEBHOOK_URL" not in config


def test_rapp_standalone_uses_the_xapp_release(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults point at what the xApp chart installs as release ranomaly-xapp: its Redis, its A1-P."""
    render_ = rendered["rapp-standalone"]
    settings, _, _ = _rapp(render_, monkeypatch)
    xapp_redis = rendered["xapp-standalone-redis-monitoring"].one("ConfigMap")["data"]["RANOMALY_XAPP_REDIS_URL"]
    assert settings.redis_url == xapp_redis
    xapp_service = rendered["xapp-standalone"].one("Service", "ranomaly-xapp")
    (http,) = [p["port"] for p in xapp_service["spec"]["ports"] if p["name"] == "http"]
    assert settings.a1_base_url == f"http://{xapp_service['metadata']['name']}:{http}"
    assert settings.a1_api_root == "/A1-P/v2" and settings.noc_webhook_url is None
    assert render_.one("Secret", "ranomaly-rapp")["data"].keys() == {"redis-url"}
    assert {d["kind"] for d in render_.docs} == {
        "ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret",
        "Service", "ServiceAccount",
    }  # fmt: skip
    assert _container(render_, "ranomaly-rapp")["image"] == "registry.example.com/ranomaly/rapp:0.1.0"
    policy = render_.one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress = policy["spec"]["egress"]
    assert {"port": 53, "protocol": "UDP"} in egress[0]["ports"] and "to" not in egress[0]
    xapp_pod_labels = rendered["xapp-standalone-redis-monitoring"].workload("ranomaly-xapp-redis")
    redis_labels = xapp_pod_labels["spec"]["template"]["metadata"]["labels"]
    for peer in _egress_port(egress, settings.redis_url, 6379) + _egress_port(egress, settings.a1_base_url, 80):
        assert _selects(peer["podSelector"]["matchLabels"], redis_labels)  # part-of: ranomaly
    xapp_policy = rendered["xapp-standalone"].one("NetworkPolicy", "ranomaly-xapp")
    rapp_labels = render_.workload()["spec"]["template"]["metadata"]["labels"]
    assert _selects(xapp_policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], rapp_labels)
    annotations = render_.workload()["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("8090", "/metrics")
    assert "checksum/secret" in annotations


def test_rapp_with_its_own_redis_and_monitoring(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["rapp-standalone-redis-monitoring"]
    settings, _, _ = _rapp(render_, monkeypatch)
    redis_service = render_.one("Service", "ranomaly-rapp-redis")
    assert settings.redis_url == f"redis://ranomaly-rapp-redis:{redis_service['spec']['ports'][0]['port']}/0"
    assert f"--set datalayer.redisUrl={settings.redis_url}" in render_.notes  # how to point the xApp at it
    assert settings.noc_webhook_url == "https://noc.example.net/alertmanager/ranomaly"
    assert render_.one("Secret", "ranomaly-rapp")["data"].keys() == {"noc-webhook-url"}
    assert (settings.retrain_every_h, settings.eval_share, settings.collect_batch) == (24.0, 0.2, 500)
    assert settings.noc_receiver == "ranomaly"  # null: the code's default
    # tuples and dicts are JSON in the environment (pydantic-settings decodes complex fields so)
    assert settings.report_headline_measurements == ("DRB.UEThpDl", "RRU.PrbUsedDl")
    assert settings.breach_limits == {"RRU.PrbUsedDl": {"above": 130.0}}
    claim = render_.one("PersistentVolumeClaim", "ranomaly-rapp")
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    egress = render_.one("NetworkPolicy", "ranomaly-rapp")["spec"]["egress"]
    (redis_peer,) = _egress_port(egress, settings.redis_url, 6379)
    redis_pod = render_.workload("ranomaly-rapp-redis")["spec"]["template"]["metadata"]["labels"]
    assert _selects(redis_peer["podSelector"]["matchLabels"], redis_pod)
    assert egress[-1] == {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443}]}
    monitor = render_.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")


def test_rapp_ric_profile(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside an O-RAN SC RIC: the DBaaS (where the xApp writes) and the A1 mediator, both in ricplt."""
    render_ = rendered["rapp-ric"]
    settings, container, _ = _rapp(render_, monkeypatch)
    xapp = _env(monkeypatch, rendered["xapp-ric"].one("ConfigMap")["data"], XappSettings)
    assert isinstance(xapp, XappSettings)
    assert settings.redis_url == xapp.redis_url == DBAAS_URL
    assert (settings.a1_base_url, settings.a1_api_root) == (A1_MEDIATOR_URL, "/A1-P/v2")
    assert settings.ric_id == "ric-paris-1"
    assert not _credentials(render_) and "env" not in container  # nothing secret to hold but the API key
    egress = render_.one("NetworkPolicy")["spec"]["egress"]
    ricplt = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ricplt"}}}]
    assert _egress_port(egress, settings.redis_url, 6379) == ricplt
    assert _egress_port(egress, settings.a1_base_url, 80) == ricplt
    assert "over RMR (A1_POLICY_REQ 20010, answered with 20011)" in render_.notes


def test_rapp_ric_profile_with_the_xapps_a1_and_existing_secret(
    rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered["rapp-ric-xapp-a1"]
    settings, _, _ = _rapp(render_, monkeypatch)
    assert settings.redis_url == DBAAS_URL  # the DBaaS URL is not a credential: still from the ConfigMap
    assert settings.a1_base_url == "http://ranomaly-xapp.ricxapp:8080"
    assert settings.noc_webhook_url == EXISTING_SECRETS["noc-credentials"]["webhook"]
    assert not _credentials(render_)
    egress = render_.one("NetworkPolicy")["spec"]["egress"]
    assert _egress_port(egress, settings.a1_base_url, 80) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ricxapp"}}}
    ]
    assert "over RMR" not in render_.notes


def test_rapp_external_redis_from_existing_secret(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["rapp-external-secret"]
    settings, container, _ = _rapp(render_, monkeypatch)
    assert settings.redis_url == EXISTING_SECRETS["rapp-credentials"]["redis-url"]  # with its password
    assert settings.noc_webhook_url is None  # optional key, absent
    assert not _credentials(render_) and "s3cret" not in json.dumps(render_.docs) + render_.notes
    egress = render_.one("NetworkPolicy")["spec"]["egress"]
    assert _egress_port(egress, settings.redis_url, 6379) == [{"ipBlock": {"cidr": "198.51.100.7/32"}}]
    # a Secret without the Redis URL would leave the pod unstartable: the env check says so
    monkeypatch.setitem(EXISTING_SECRETS, "rapp-credentials", {"url": "redis://elsewhere"})
    with pytest.raises(AssertionError, match="lacks redis-url"):
        _pod_env(render_, container)


def test_rapp_minimal(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["rapp-minimal"]
    settings, _, pod = _rapp(render_, monkeypatch)
    assert {d["kind"] for d in render_.docs} == {"ConfigMap", "Deployment", "Secret", "Service"}
    assert pod["serviceAccountName"] == "default"
    assert (settings.ric_id, settings.consumer_name) == ("ric-1", "rapp-1")  # the code's defaults
    assert "lost when the pod goes" in render_.notes


def test_settings_render_as_the_apps_read_them(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    data = rendered["xapp-standalone-redis-monitoring"].one("ConfigMap")["data"]
    assert data["RANOMALY_XAPP_INCIDENT_BUFFER"] == "1000000"  # not 1e+06
    assert "RANOMALY_XAPP_MODEL_SHADOW_PERIODS" not in data  # null: the code's default
    settings = _env(monkeypatch, data, XappSettings)
    assert isinstance(settings, XappSettings)
    assert (settings.incident_buffer, settings.batch_window_ms) == (1_000_000, 2.5)
    sim = _env(monkeypatch, rendered["e2sim-ric"].one("ConfigMap")["data"], SimSettings)
    assert isinstance(sim, SimSettings)
    assert (sim.cells, sim.pace, sim.periods) == (600, "accelerated", 1440)


def test_unknown_setting_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    case = Case("xapp", "ranomaly", {"settings": {"no_such_setting": 1}})
    data = render(CHARTS / "xapp", case).one("ConfigMap")["data"]
    with pytest.raises(AssertionError, match="RANOMALY_XAPP_NO_SUCH_SETTING"):
        _env(monkeypatch, data, XappSettings)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


@pytest.mark.parametrize("name", sorted(CASES))
def test_selectors_select(rendered: dict[str, Render], name: str) -> None:
    """Services, PodDisruptionBudgets, NetworkPolicies and ServiceMonitors each select what they are for."""
    render_ = rendered[name]
    pods = [d["spec"]["template"] for d in render_.workloads()]
    for deployment in render_.workloads():
        assert _selects(
            deployment["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]
        )
    for service in render_.of("Service"):
        (pod,) = [p for p in pods if _selects(service["spec"]["selector"], p["metadata"]["labels"])]
        names = {port["name"] for c in pod["spec"]["containers"] for port in c["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= names
    for kind, path in (("PodDisruptionBudget", ("selector",)), ("NetworkPolicy", ("podSelector",))):
        for doc in render_.of(kind):
            selector = doc["spec"][path[0]]["matchLabels"]
            assert len([p for p in pods if _selects(selector, p["metadata"]["labels"])]) == 1, doc["metadata"]["name"]
    for monitor in render_.of("ServiceMonitor"):
        (service,) = [
            s
            for s in render_.of("Service")
            if _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pods_are_locked_down(rendered: dict[str, Render], name: str) -> None:
    """Non-root, read-only root, no capabilities, RuntimeDefault seccomp, /tmp on an emptyDir, pinned images."""
    for deployment in rendered[name].workloads():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] > 0
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]]
            image = container["image"]
            assert re.fullmatch(r"[\w.:-]+/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})", image), image
            assert not image.endswith(":latest") and "bitnami" not in image
            if not name.endswith("minimal"):
                assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def _pod_settings(
    render_: Render, ordinal: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[XappSettings, dict[str, str]]:
    """The settings and plain env of the replica with this ordinal, $(POD_NAME) expanded as the kubelet does."""
    workload = render_.workload("ranomaly-xapp")
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    pod = f"ranomaly-xapp-{ordinal}"
    env = {e["name"]: e["value"].replace("$(POD_NAME)", pod) for e in container["env"] if "value" in e}
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    data = render_.one("ConfigMap")["data"] | {k: v for k, v in env.items() if k.startswith("RANOMALY_XAPP_")}
    settings = _env(monkeypatch, data, XappSettings)
    assert isinstance(settings, XappSettings)
    return settings, env


def test_replicas_are_a_statefulset_whose_pods_read_their_ordinal(
    rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered["xapp-replicas"]
    workload = render_.workload("ranomaly-xapp")
    assert (workload["kind"], workload["spec"]["replicas"]) == ("StatefulSet", 3)
    headless = render_.one("Service", workload["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert _selects(headless["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
    for ordinal in (0, 2):
        settings, _ = _pod_settings(render_, ordinal, monkeypatch)
        assert (settings.replica_index, settings.replica_count, settings.datalayer) == (ordinal, 3, "redis")
    ric = rendered["xapp-ric-replicas"]
    settings, env = _pod_settings(ric, 1, monkeypatch)
    own = "ranomaly-xapp-1.ranomaly-xapp-headless.ricxapp"  # the subscription manager and RMR reach this replica
    assert settings.advertise_host == env["RMR_SRC_ID"] == own and settings.replica_count == 2
    with pytest.raises(helm.HelmRenderError, match="replicas above 1 share the data layer"):
        render(CHARTS / "xapp", Case("xapp", "ranomaly", {"replicas": 2}))
    with pytest.raises(helm.HelmRenderError, match="settings.replica_count is set by the chart"):
        render(CHARTS / "xapp", Case("xapp", "ranomaly", {"settings": {"replica_count": 2}}))


def test_standalone_default(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["xapp-standalone"]
    assert {d["kind"] for d in render_.docs} == {
        "ConfigMap", "StatefulSet", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount",
    }  # fmt: skip
    assert [d["metadata"]["name"] for d in render_.workloads()] == ["ranomaly-xapp"]
    assert [d["metadata"]["name"] for d in render_.of("Service")] == ["ranomaly-xapp-headless", "ranomaly-xapp"]
    assert [d["metadata"]["name"] for d in render_.of("Secret")] == ["ranomaly-xapp-api-key"]
    settings = _env(monkeypatch, render_.one("ConfigMap")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    assert settings.datalayer == "memory" and settings.seed_model_dir is None
    assert _container(render_, "ranomaly-xapp")["image"] == "registry.example.com/ranomaly/xapp:0.1.0"
    spec = render_.workload()["spec"]
    assert (spec["replicas"], spec["updateStrategy"], spec["serviceName"]) == (1, {"type": "RollingUpdate"},
                                                                               "ranomaly-xapp-headless")  # fmt: skip
    annotations = render_.workload()["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("8080", "/metrics")
    assert "/readyz 503" in render_.notes  # no seed model: the notes say why the pod stays unready


def test_xapp_default_targets_the_e2sim_service(rendered: dict[str, Render]) -> None:
    e2_targets = rendered["xapp-standalone"].one("ConfigMap")["data"]["RANOMALY_XAPP_E2_TARGETS"]
    service = rendered["e2sim-standalone"].one("Service")
    assert e2_targets == f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"


def test_standalone_with_redis_and_monitoring(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["xapp-standalone-redis-monitoring"]
    settings = _env(monkeypatch, render_.one("ConfigMap")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    redis_service = render_.one("Service", "ranomaly-xapp-redis")
    assert settings.datalayer == "redis"
    assert settings.redis_url == f"redis://ranomaly-xapp-redis:{redis_service['spec']['ports'][0]['port']}/0"
    redis = _container(render_, "ranomaly-xapp-redis")
    assert redis["image"].startswith("docker.io/valkey/valkey:")
    assert redis["args"][:1] == ["valkey-server"] and "--appendonly" in redis["args"]
    claim = render_.one("PersistentVolumeClaim")
    volumes = render_.workload("ranomaly-xapp-redis")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}} in volumes
    redis_policy = render_.one("NetworkPolicy", "ranomaly-xapp-redis")
    assert redis_policy["spec"]["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "ranomaly"}}}
    ]
    monitor = render_.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])
    # the seed model: mounted read-only where RANOMALY_XAPP_SEED_MODEL_DIR points
    xapp = _container(render_, "ranomaly-xapp")
    (mount,) = [m for m in xapp["volumeMounts"] if m["name"] == "seed-model"]
    assert mount == {"name": "seed-model", "mountPath": str(settings.seed_model_dir), "readOnly": True}
    policy = render_.one("NetworkPolicy", "ranomaly-xapp")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert {"port": 53, "protocol": "UDP"} in policy["spec"]["egress"][0]["ports"]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def test_ric_profile(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["xapp-ric"]
    data = render_.one("ConfigMap")["data"]
    settings = _env(monkeypatch, data, XappSettings)
    assert isinstance(settings, XappSettings)
    assert settings.datalayer == "redis" and settings.redis_url == DBAAS_URL
    descriptor = json.loads((CHARTS / "xapp" / "descriptor" / "config-file.json").read_text())
    assert descriptor["appenv"]["RANOMALY_XAPP_REDIS_URL"] == data["RANOMALY_XAPP_REDIS_URL"]
    assert (settings.transport, settings.rmr_port, settings.ric_cells) == ("rmr", 4560, RIC_CELLS)
    assert settings.submgr_url == "http://service-ricplt-submgr-http.ricplt:8088/ric/v1"
    env = {e["name"]: e.get("value") for e in render_.workload()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert settings.advertise_host == env["RMR_SRC_ID"] == "ranomaly-xapp.ricxapp"  # the Service of the xApp
    assert env["RMR_RTG_SVC"] == "4561"
    assert [d["metadata"]["name"] for d in render_.workloads()] == ["ranomaly-xapp"]  # no Redis of its own
    rmr_rule = render_.one("NetworkPolicy")["spec"]["ingress"][1]
    assert {p["port"] for p in rmr_rule["ports"]} == {"rmr-data", "rmr-route"}
    assert rmr_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ricplt"}}}]
    assert "http://service-ricplt-a1mediator-http.ricplt:10000/A1-P/v2" in render_.notes
    assert "one E2SM-KPM subscription per cell of settings.ric_cells (2)" in render_.notes


def test_ric_seed_profile(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a RIC with a seed model: published to the DBaaS registry at start (docs/deploy.md)."""
    render_ = rendered["xapp-ric-seed"]
    settings = _env(monkeypatch, render_.one("ConfigMap")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    assert (settings.transport, settings.redis_url) == ("rmr", DBAAS_URL)
    assert str(settings.seed_model_dir) == SEED["mountPath"]
    assert "per cell of settings.ric_cells (1)" in render_.notes


def test_image_versions_agree() -> None:
    descriptor = json.loads((CHARTS / "xapp" / "descriptor" / "config-file.json").read_text())
    for chart in ("xapp", "rapp", "e2sim"):
        with helm.Chart.load(CHARTS / chart) as loaded:
            assert loaded.metadata["appVersion"] == descriptor["version"] == descriptor["containers"][0]["image"]["tag"]


# --- documented values ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> Any:
    """scripts/chart_values_table.py as a module."""
    spec = importlib.util.spec_from_file_location("chart_values_table", ROOT / "scripts" / "chart_values_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("chart", sorted(path.parent.name for path in CHARTS.glob("*/Chart.yaml")))
def test_values_documented_and_readme_table_current(table: Any, chart: str) -> None:
    assert CHARTS / chart in table.chart_dirs()
    values_text = (CHARTS / chart / "values.yaml").read_text()
    assert table.problems(values_text, (CHARTS / chart / "README.md").read_text()) == []


def test_documentation_check_finds_gaps(table: Any) -> None:
    values_text = (CHARTS / "xapp" / "values.yaml").read_text()
    readme = (CHARTS / "xapp" / "README.md").read_text()
    undocumented = values_text + "extra:\n  knob: 1\n"
    assert table.problems(undocumented) == ["extra.knob: no @param comment"]
    unknown = values_text + "## @param ghost.value Nothing here\n"
    assert table.problems(unknown) == ["@param ghost.value: no such value"]
    stale = values_text.replace("Image pull policy", "How the image is pulled")
    assert any("stale" in problem for problem in table.problems(stale, readme))


# --- Redis ACL users ------------------------------------------------------------------------------------------


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def _password_source(render_: Render, deployment: str) -> tuple[str, str] | None:
    """(Secret, key) of the password file the app's pod mounts at REDIS_PASSWORD_DIR/password, or None."""
    spec = render_.workload(deployment)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"] if m["mountPath"] == REDIS_PASSWORD_DIR}
    if not mounts:
        return None
    ((name, mount),) = mounts.items()
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == name]
    (item,) = volume["secret"]["items"]
    assert item["path"] == "password"
    return volume["secret"]["secretName"], item["key"]


@pytest.mark.parametrize(
    ("name", "app", "seeds"),
    [("xapp-standalone-redis-monitoring", "xapp", True), ("rapp-standalone-redis-monitoring", "rapp", False)],
)
def test_own_redis_runs_the_generated_aclfile_and_each_app_signs_in_as_its_user(
    rendered: dict[str, Render],
    name: str,
    app: str,
    seeds: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The chart's Redis loads the aclfile from the release's Secret: the very text `ranomaly redis-acl` prints
    for the Secret's passwords (one source, ranomaly_contracts.redis_acl), the default user off; the app reads
    its user from the ConfigMap and its password from the Secret."""
    render_ = rendered[name]
    release = CASES[name].release
    data = _secret_data(render_.one("Secret", f"{release}-redis"))
    passwords = {"xapp": data["xapp-password"], "rapp": data["rapp-password"]}
    assert all(len(password) == 32 for password in passwords.values()) and len(set(passwords.values())) == 2
    argv = ["redis-acl", *(["--xapp-seeds"] if seeds else [])]  # the xApp case has a seed model
    for each, password in passwords.items():
        (tmp_path / each).write_text(password)
        argv += [f"--{each}-password-file", str(tmp_path / each)]
    assert main(argv) == 0
    assert data["aclfile"] == capsys.readouterr().out
    assert "user default reset off" in data["aclfile"] and passwords["xapp"] not in data["aclfile"]
    redis_spec = render_.workload(f"{release}-redis")["spec"]["template"]["spec"]
    (server,) = redis_spec["containers"]
    args = server["args"]
    assert args[args.index("--aclfile") + 1] == "/etc/redis/acl/users.acl"
    (mount,) = [m for m in server["volumeMounts"] if m["mountPath"] == "/etc/redis/acl"]
    (volume,) = [v for v in redis_spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == f"{release}-redis"
    assert volume["secret"]["items"] == [{"key": "aclfile", "path": "users.acl"}]
    assert _password_source(render_, release) == (f"{release}-redis", f"{app}-password")
    model = XappSettings if app == "xapp" else RappSettings
    settings = _env(monkeypatch, render_.one("ConfigMap", release)["data"], model)
    assert settings.redis_username == (XAPP_USER if app == "xapp" else RAPP_USER)  # type: ignore[attr-defined]
    assert settings.redis_password_file == Path(REDIS_PASSWORD_DIR) / "password"  # type: ignore[attr-defined]


def test_the_rapp_signs_in_to_the_xapp_charts_redis(
    rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the rApp takes its user's password from the Secret the xApp chart's Redis (release
    ranomaly-xapp, redis.enabled) holds its aclfile in."""
    settings, _, _ = _rapp(rendered["rapp-standalone"], monkeypatch)
    assert settings.redis_username == RAPP_USER
    secret, key = _password_source(rendered["rapp-standalone"], "ranomaly-rapp") or ("", "")
    assert key in _secret_data(rendered["xapp-standalone-redis-monitoring"].one("Secret", secret))


@pytest.mark.parametrize("name", ["xapp-standalone", "xapp-ric", "rapp-ric", "rapp-external-secret"])
def test_no_acl_user_where_the_chart_does_not_run_the_redis(rendered: dict[str, Render], name: str) -> None:
    render_ = rendered[name]
    config = render_.one("ConfigMap", CASES[name].release)["data"]
    assert not any(key.endswith("_REDIS_USERNAME") or key.endswith("_REDIS_PASSWORD_FILE") for key in config)
    assert _password_source(render_, CASES[name].release) is None


def test_an_existing_secret_replaces_the_generated_one() -> None:
    values = {"redis": {"enabled": True, "auth": {"existingSecret": "my-redis-acl"}}}
    render_ = render(CHARTS / "xapp", Case("xapp", "ranomaly", values))
    assert not [secret for secret in render_.of("Secret") if secret["metadata"]["name"] == "ranomaly-xapp-redis"]
    (volume,) = [v for v in render_.workload("ranomaly-xapp-redis")["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "acl"]  # fmt: skip
    assert volume["secret"]["secretName"] == "my-redis-acl"
    assert _password_source(render_, "ranomaly-xapp") == ("my-redis-acl", "xapp-password")


def test_an_xapp_on_the_rapp_charts_redis_names_its_user() -> None:
    values = {"datalayer": {"backend": "redis", "redisUrl": "redis://ranomaly-rapp-redis:6379/0",
                            "redisUsername": XAPP_USER, "redisPasswordSecret": "ranomaly-rapp-redis"}}  # fmt: skip
    render_ = render(CHARTS / "xapp", Case("xapp", "ranomaly", values))
    assert render_.one("ConfigMap")["data"]["RANOMALY_XAPP_REDIS_USERNAME"] == XAPP_USER
    assert _password_source(render_, "ranomaly-xapp") == ("ranomaly-rapp-redis", "xapp-password")
    notes = render(CHARTS / "rapp", Case("rapp", "ranomaly", {"redis": {"enabled": True}})).notes
    assert f"--set datalayer.redisUsername={XAPP_USER} --set datalayer.redisPasswordSecret=ranomaly-rapp-redis" in notes


def test_datalayer_cluster_points_both_apps_at_a_redis_cluster() -> None:
    seed = "redis://redis-cluster-0.redis-cluster:6379/0"
    xapp = render(CHARTS / "xapp", Case("xapp", "ranomaly", {"datalayer": {"backend": "redis", "redisUrl": seed,
                                                                            "cluster": True}}))  # fmt: skip
    data = xapp.one("ConfigMap")["data"]
    settings = XappSettings(datalayer=data["RANOMALY_XAPP_DATALAYER"], redis_url=data["RANOMALY_XAPP_REDIS_URL"],
                            redis_cluster=data["RANOMALY_XAPP_REDIS_CLUSTER"])  # fmt: skip
    assert settings.redis_cluster and settings.redis_url == seed
    rapp = render(CHARTS / "rapp", Case("rapp", "ranomaly", {"datalayer": {"redisUrl": seed, "cluster": True}}))
    assert RappSettings(redis_cluster=rapp.one("ConfigMap")["data"]["RANOMALY_RAPP_REDIS_CLUSTER"]).redis_cluster
    plain = render(CHARTS / "rapp", Case("rapp", "ranomaly", {})).one("ConfigMap")["data"]
    assert "RANOMALY_RAPP_REDIS_CLUSTER" not in plain  # one Redis unless told


@pytest.mark.parametrize("chart", ["xapp", "rapp"])
def test_the_charts_acl_rules_are_generated_from_the_data_layer_contract(chart: str) -> None:
    """charts/*/files/redis-acl.json is what ranomaly_contracts.redis_acl says: python scripts/chart_redis_acl.py."""
    assert json.loads((CHARTS / chart / "files" / "redis-acl.json").read_text()) == chart_rules()


# --- authentication -------------------------------------------------------------------------------------------


def _credentials(render_: Render) -> list[dict[str, Any]]:
    """The Secrets a release renders besides its generated API key."""
    return [s for s in render_.of("Secret") if not s["metadata"]["name"].endswith("-api-key")]


def _secret_volume(render_: Render, deployment: str, mount_path: str) -> dict[str, Any] | None:
    """The Secret volume source a Deployment's container mounts read-only at mount_path, or None."""
    spec = render_.workload(deployment)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == mount_path]
    if not mounts:
        return None
    (mount,) = mounts
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret: dict[str, Any] = volume["secret"]
    return secret


@pytest.mark.parametrize(("name", "model"), [("xapp-standalone", XappSettings), ("rapp-standalone", RappSettings)])
def test_the_api_key_is_generated_kept_and_mounted_where_the_app_reads_it(
    rendered: dict[str, Render], name: str, model: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default each app takes its API key from a Secret the chart generates once (kept across upgrades and
    uninstalls), mounted group-readable where the ConfigMap names it."""
    render_, release = rendered[name], CASES[name].release
    secret = render_.one("Secret", f"{release}-api-key")
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert len(base64.b64decode(secret["data"]["api-key"])) == 43
    settings = _env(monkeypatch, render_.one("ConfigMap", release)["data"], model)
    assert (settings.auth, settings.auth_issuer) == ("on", None)  # type: ignore[attr-defined]
    assert settings.auth_api_key_file == Path(API_KEY_DIR) / "api-key"  # type: ignore[attr-defined]
    assert _secret_volume(render_, release, API_KEY_DIR) == {
        "secretName": f"{release}-api-key", "defaultMode": 0o440, "items": [{"key": "api-key", "path": "api-key"}]
    }  # fmt: skip


def test_the_rapp_sends_the_xapp_releases_key_on_a1(
    rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _, _ = _rapp(rendered["rapp-standalone"], monkeypatch)
    assert settings.a1_api_key_file == Path(A1_KEY_DIR) / "api-key" and settings.a1_token_url is None
    xapp_key = rendered["xapp-standalone"].one("Secret", "ranomaly-xapp-api-key")
    volume = _secret_volume(rendered["rapp-standalone"], "ranomaly-rapp", A1_KEY_DIR)
    assert volume is not None and volume["secretName"] == xapp_key["metadata"]["name"]
    assert volume["items"] == [{"key": "api-key", "path": "api-key"}] and volume["optional"] is True


def test_tokens_of_an_issuer_and_a_client_credentials_token_on_a1(
    rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    xapp = rendered["xapp-auth-tokens"]
    settings = _env(monkeypatch, xapp.one("ConfigMap", "ranomaly-xapp")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    assert (settings.auth_issuer, settings.auth_jwks_url, settings.auth_audience) == (ISSUER, JWKS, "ranomaly-xapp")
    assert settings.auth_api_key_file is None and not xapp.of("Secret")
    assert _secret_volume(xapp, "ranomaly-xapp", API_KEY_DIR) is None
    rapp = rendered["rapp-auth-tokens"]
    rapp_settings, _, _ = _rapp(rapp, monkeypatch)
    assert (rapp_settings.auth_issuer, rapp_settings.auth_audience) == (ISSUER, "ranomaly-rapp")
    assert rapp_settings.a1_token_url == f"{ISSUER}/protocol/openid-connect/token"
    assert (rapp_settings.a1_client_id, rapp_settings.a1_token_scope) == ("ranomaly-rapp", "ranomaly:policies")
    assert rapp_settings.a1_client_secret_file == Path(A1_CLIENT_DIR) / "client-secret"
    client = _secret_volume(rapp, "ranomaly-rapp", A1_CLIENT_DIR)
    assert client is not None and client["secretName"] == "rapp-oauth"
    assert client["items"] == [{"key": "client-secret", "path": "client-secret"}]
    assert _secret_volume(rapp, "ranomaly-rapp", A1_KEY_DIR) is None, "the token instead of the key"
    own = _secret_volume(rapp, "ranomaly-rapp", API_KEY_DIR)
    assert own is not None and own["secretName"] == "rapp-api-key"
    assert own["items"] == [{"key": "key", "path": "api-key"}]
    assert len(rapp.of("Secret")) == len(_credentials(rapp)), "no API key Secret: the key is yours"


def test_auth_off_is_said_in_the_configmap(rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["xapp-auth-off"]
    settings = _env(monkeypatch, render_.one("ConfigMap", "ranomaly-xapp")["data"], XappSettings)
    assert isinstance(settings, XappSettings) and settings.auth == "off"
    assert not render_.of("Secret") and _secret_volume(render_, "ranomaly-xapp", API_KEY_DIR) is None


# --- signed models --------------------------------------------------------------------------------------------


def test_the_xapp_trusts_the_keys_it_is_given_and_the_rapp_signs_with_its_secret(
    rendered: dict[str, Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public keys (a ConfigMap or Secret of yours) are mounted as the folder trusted_model_keys names; the
    rApp's private key is mounted group-readable only where model_signing_key_file names it. By default the
    xApp trusts nothing and the rApp makes its own key pair in its work folder."""
    xapp = rendered["xapp-signed-models"]
    settings = _env(monkeypatch, xapp.one("ConfigMap", "ranomaly-xapp")["data"], XappSettings)
    assert isinstance(settings, XappSettings) and settings.allow_unsigned_models is False
    assert settings.trusted_model_keys == [Path(MODEL_KEYS_DIR)]
    spec = xapp.workload("ranomaly-xapp")["spec"]["template"]["spec"]
    (mount,) = [m for m in _container(xapp, "ranomaly-xapp")["volumeMounts"] if m["mountPath"] == MODEL_KEYS_DIR]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True and volume["configMap"] == {"name": "model-keys", "defaultMode": 0o444}
    rapp = rendered["rapp-signed-models"]
    rapp_settings = _env(monkeypatch, rapp.one("ConfigMap", "ranomaly-rapp")["data"], RappSettings)
    assert isinstance(rapp_settings, RappSettings)
    assert rapp_settings.model_signing_key_file == Path(SIGNING_DIR) / "model-signing.key"
    assert _secret_volume(rapp, "ranomaly-rapp", SIGNING_DIR) == {
        "secretName": "model-signing", "defaultMode": 0o440,
        "items": [{"key": "model-signing.key", "path": "model-signing.key"}],
    }  # fmt: skip
    xapp_data = rendered["xapp-standalone"].one("ConfigMap", "ranomaly-xapp")["data"]
    rapp_data = rendered["rapp-standalone"].one("ConfigMap", "ranomaly-rapp")["data"]
    assert _env(monkeypatch, xapp_data, XappSettings).trusted_model_keys == []  # type: ignore[attr-defined]
    assert _env(monkeypatch, rapp_data, RappSettings).model_signing_key_file is None  # type: ignore[attr-defined]
    unsigned = render(CHARTS / "xapp", Case("xapp", "ranomaly", {"modelTrust": {"allowUnsigned": True}}))
    unsigned_settings = _env(monkeypatch, unsigned.one("ConfigMap", "ranomaly-xapp")["data"], XappSettings)
    assert isinstance(unsigned_settings, XappSettings) and unsigned_settings.allow_unsigned_models is True


@pytest.mark.parametrize(("chart", "model"), [("xapp", XappSettings), ("rapp", RappSettings)])
def test_a_health_port_of_their_own_is_what_probes_scrapes_and_the_metrics_namespaces_reach(
    chart: str, model: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ports.health the metrics namespaces reach that port alone (plain HTTP, even with mutual TLS on the
    API), and probes, the ServiceMonitor and the scrape annotations follow it."""
    values = {"ports": {"health": 9090}, "metrics": {"serviceMonitor": {"enabled": True}},
              "tls": {"secretName": "app-tls", "http": {"enabled": True, "mutual": True}}}  # fmt: skip
    case = Case(chart, "ranomaly", values)
    render_ = render(CHARTS / chart, case)
    assert validation_errors(render_.docs, "1.32") == []
    settings = _env(monkeypatch, render_.one("ConfigMap", case.release)["data"], model)
    assert settings.health_port == 9090  # type: ignore[attr-defined]
    container = _container(render_, case.release)
    assert _port(container, "health") == 9090
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "health"}
    service = render_.one("Service", case.release)
    assert {"name": "health", "port": 9090, "targetPort": "health", "protocol": "TCP"} in service["spec"]["ports"]
    (endpoint,) = render_.one("ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"]) == ("health", "http")
    annotations = render_.workload(case.release)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9090" and "prometheus.io/scheme" not in annotations
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ingress = render_.one("NetworkPolicy", case.release)["spec"]["ingress"]
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in ingress}
    assert monitoring in rules["health"] and monitoring not in rules["http"]
