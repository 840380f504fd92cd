"""The charts with TLS on (tls.*): rendered, linted and validated offline as in test_deploy_charts, then the meaning:
the Secret (given, or a cert-manager Certificate's) mounted read-only, the settings each app builds from its
ConfigMap naming the mounted files for each hop turned on, rediss:// and https:// URLs, probes and scrapes over
HTTPS (a TCP probe with mutual TLS: the kubelet presents no client certificate), the charts' Redis serving TLS.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate.utils
import pytest

import tests.test_deploy_charts as charts
from e2sim.settings import SimSettings
from ranomaly_contracts.tls import ClientTls, PemFile, ServerTls
from xapp.settings import XappSettings

TLS = Path("/etc/ranomaly/tls")
CERT_MANAGER = {"enabled": True, "issuerRef": {"name": "ranomaly-ca"}, "dnsNames": ["xapp.example.net"]}
CASES = {
    # every hop, mutual, from a cert-manager Certificate; the chart's Redis serves TLS
    "xapp-tls": charts.Case(
        "xapp",
        "ranomaly",
        {
            "redis": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True}},
            "tls": {
                "http": {"enabled": True, "mutual": True},
                "e2": {"enabled": True},
                "redis": {"enabled": True},
                "certManager": CERT_MANAGER,
            },
        },
    ),  # fmt: skip
    # a Secret of yours; HTTPS without client certificates, E2 verified only, an external rediss:// Redis
    "xapp-tls-secret": charts.Case(
        "xapp",
        "ranomaly",
        {
            "datalayer": {"backend": "redis", "redisUrl": "rediss://redis.example.net:6380/0"},
            "tls": {
                "secretName": "xapp-tls",
                "http": {"enabled": True},
                "e2": {"enabled": True, "clientCert": False},
                "redis": {"enabled": True},
            },
        },
    ),  # fmt: skip
    "rapp-tls": charts.Case(
        "rapp",
        "ranomaly",
        {
            "redis": {"enabled": True},
            "tls": {
                "http": {"enabled": True, "mutual": True},
                "a1": {"enabled": True},
                "redis": {"enabled": True},
                "certManager": CERT_MANAGER | {"dnsNames": []},
            },
        },
    ),  # fmt: skip
    "e2sim-tls": charts.Case(
        "e2sim",
        "ranomaly",
        {
            "tls": {"grpc": {"enabled": True, "mutual": True}, "certManager": CERT_MANAGER | {"dnsNames": []}},
        },
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, charts.Render]:
    return {name: charts.render(charts.CHARTS / case.chart, case) for name, case in CASES.items()}


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate's schema files read once (as in test_deploy_charts)."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


@pytest.mark.parametrize("name", sorted(CASES))
def test_tls_manifests_lint_and_validate_strictly(rendered: dict[str, charts.Render], name: str) -> None:
    case = CASES[name]
    for version in ("1.28", "1.32"):
        report = helm.lint(charts.CHARTS / case.chart, case.values, strict=True, namespace=case.namespace,
                           kube_version=f"v{version}.0")  # fmt: skip
        assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
        assert charts.validation_errors(rendered[name].docs, version) == []
    charts.test_pods_are_locked_down(rendered, name)  # type: ignore[arg-type]


def _tls_volume(render_: charts.Render, deployment: str) -> tuple[str, dict[str, Any]]:
    """The Secret mounted read-only at TLS in the deployment's container, and that container."""
    pod = render_.workload(deployment)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(TLS)]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["defaultMode"] == 0o440  # the key readable by the pod's group only
    return volume["secret"]["secretName"], container


def _certificate(render_: charts.Render, secret: str, release: str, names: list[str]) -> dict[str, Any]:
    """The Certificate writing `secret`: for the release's Services, signed by the configured issuer."""
    spec = render_.one("Certificate")["spec"]
    assert spec["secretName"] == secret == f"{release}-tls"
    assert spec["issuerRef"] == {"name": "ranomaly-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    for name in names:
        assert {name, f"{name}.ranomaly", f"{name}.ranomaly.svc", f"{name}.ranomaly.svc.cluster.local"} <= set(
            spec["dnsNames"]
        )
    return spec


def _probes(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in container[p].items() if k in ("httpGet", "tcpSocket")} for p in ("livenessProbe",
            "readinessProbe")]  # fmt: skip


def _pem(setting: str, name: str) -> PemFile:
    return PemFile(setting, TLS / name)


def _client(prefix: str, with_cert: bool = True) -> ClientTls:
    if not with_cert:
        return ClientTls(_pem(f"{prefix}_ca_file", "ca.crt"))
    return ClientTls(_pem(f"{prefix}_ca_file", "ca.crt"), _pem(f"{prefix}_cert_file", "tls.crt"),
                     _pem(f"{prefix}_key_file", "tls.key"))  # fmt: skip


def _server(mutual: bool) -> ServerTls:
    ca = _pem("tls_client_ca_file", "ca.crt") if mutual else None
    return ServerTls(_pem("tls_cert_file", "tls.crt"), _pem("tls_key_file", "tls.key"), ca)


def _redis_serves_tls(render_: charts.Render, redis: str, secret: str) -> None:
    redis_secret, container = _tls_volume(render_, redis)
    assert redis_secret == secret
    args = " ".join(container["args"])
    assert "--port 0 --tls-port 6379" in args and "--tls-auth-clients yes" in args
    for flag, name in (("--tls-cert-file", "tls.crt"), ("--tls-key-file", "tls.key"), ("--tls-ca-cert-file", "ca.crt")):
        assert f"{flag} {TLS / name}" in args


def test_xapp_with_every_hop_on_tls_from_a_certificate(
    rendered: dict[str, charts.Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered["xapp-tls"]
    secret, container = _tls_volume(render_, "ranomaly-xapp")
    spec = _certificate(render_, secret, "ranomaly-xapp", ["ranomaly-xapp", "ranomaly-xapp-redis"])
    assert {"server auth", "client auth"} <= set(spec["usages"]) and "xapp.example.net" in spec["dnsNames"]
    settings = charts._env(monkeypatch, render_.one("ConfigMap")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    assert settings.http_tls() == _server(mutual=True)
    assert settings.e2_client_tls() == _client("e2_tls")
    assert settings.redis_url == "rediss://ranomaly-xapp-redis:6379/0"
    assert settings.redis_client_tls() == _client("redis_tls")
    assert settings.auth == "on" and settings.redis_username == "ranomaly-xapp", "TLS beside auth and ACL users"
    assert _probes(container) == [{"tcpSocket": {"port": "http"}}] * 2  # the kubelet has no client certificate
    annotations = render_.workload("ranomaly-xapp")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scheme"] == "https"
    assert render_.one("ServiceMonitor")["spec"]["endpoints"][0]["scheme"] == "https"
    _redis_serves_tls(render_, "ranomaly-xapp-redis", secret)


def test_xapp_with_a_secret_of_yours_and_https_without_client_certificates(
    rendered: dict[str, charts.Render], monkeypatch: pytest.MonkeyPatch
) -> None:
    render_ = rendered["xapp-tls-secret"]
    secret, container = _tls_volume(render_, "ranomaly-xapp")
    assert secret == "xapp-tls" and not render_.of("Certificate")
    settings = charts._env(monkeypatch, render_.one("ConfigMap")["data"], XappSettings)
    assert isinstance(settings, XappSettings)
    assert settings.http_tls() == _server(mutual=False)
    assert settings.e2_client_tls() == _client("e2_tls", with_cert=False)
    assert settings.redis_client_tls() == _client("redis_tls")
    assert _probes(container) == [
        {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTPS"}},
        {"httpGet": {"path": "/readyz", "port": "http", "scheme": "HTTPS"}},
    ]


def test_rapp_with_every_hop_on_tls(rendered: dict[str, charts.Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["rapp-tls"]
    secret, container = _tls_volume(render_, "ranomaly-rapp")
    _certificate(render_, secret, "ranomaly-rapp", ["ranomaly-rapp", "ranomaly-rapp-redis"])
    settings, _, _ = charts._rapp(render_, monkeypatch)
    assert settings.http_tls() == _server(mutual=True)
    assert settings.a1_base_url == "https://ranomaly-xapp:8080"
    assert settings.a1_client_tls() == _client("a1_tls")
    assert settings.redis_url == "rediss://ranomaly-rapp-redis:6379/0"
    assert settings.redis_client_tls() == _client("redis_tls")
    assert settings.auth == "on" and settings.redis_username == "ranomaly-rapp", "TLS beside auth and ACL users"
    assert _probes(container) == [{"tcpSocket": {"port": "http"}}] * 2
    _redis_serves_tls(render_, "ranomaly-rapp-redis", secret)


def test_e2sim_serves_grpc_over_mutual_tls(rendered: dict[str, charts.Render], monkeypatch: pytest.MonkeyPatch) -> None:
    render_ = rendered["e2sim-tls"]
    secret, _ = _tls_volume(render_, "ranomaly-e2sim")
    spec = _certificate(render_, secret, "ranomaly-e2sim", ["ranomaly-e2sim"])
    assert "server auth" in spec["usages"]
    settings = charts._env(monkeypatch, render_.one("ConfigMap")["data"], SimSettings)
    assert isinstance(settings, SimSettings)
    assert settings.tls() == _server(mutual=True)
    xapp_targets = charts.render(charts.CHARTS / "xapp", CASES["xapp-tls"]).one("ConfigMap")["data"]
    assert xapp_targets["RANOMALY_XAPP_E2_TARGETS"].split(":")[0] in spec["dnsNames"], "the name the xApp dials"


def test_tls_is_off_by_default() -> None:
    for chart in ("xapp", "rapp", "e2sim"):
        render_ = charts.render(charts.CHARTS / chart, charts.Case(chart, "ranomaly", {}))
        assert not render_.of("Certificate")
        data = render_.one("ConfigMap")["data"]
        assert not [key for key in data if "TLS" in key], chart
        assert "rediss://" not in str(data) and "https://" not in data.get("RANOMALY_RAPP_A1_BASE_URL", "")
        (container,) = render_.workload(f"ranomaly-{chart}")["spec"]["template"]["spec"]["containers"]
        assert str(TLS) not in [m["mountPath"] for m in container["volumeMounts"]], chart


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        ("xapp", {"tls": {"http": {"enabled": True}}}, "set tls.secretName or tls.certManager.enabled"),
        ("xapp", {"tls": {"secretName": "s", "certManager": {"enabled": True}}}, "set tls.certManager.issuerRef.name"),
        ("xapp", {"tls": {"secretName": "s", "redis": {"enabled": True}}}, "tls.redis.enabled needs a Redis"),
        ("xapp", {"tls": {"secretName": "s", "redis": {"enabled": True}},
                  "datalayer": {"backend": "redis", "redisUrl": "redis://r:6379/0"}}, "a rediss:// datalayer.redisUrl"),
        ("xapp", {"settings": {"e2_tls": True}}, "settings.e2_tls is set by the chart: use tls.*"),
        ("rapp", {"tls": {"a1": {"enabled": True}}}, "set tls.secretName or tls.certManager.enabled"),
        ("rapp", {"tls": {"secretName": "s", "a1": {"enabled": True}}, "a1": {"baseUrl": "http://x:8080"}},
         "tls.a1.enabled: a1.baseUrl must be an https:// URL"),
        ("rapp", {"tls": {"secretName": "s", "redis": {"enabled": True}}}, "datalayer.redisUrl must be a rediss://"),
        ("e2sim", {"tls": {"grpc": {"enabled": True}}}, "set tls.secretName or tls.certManager.enabled"),
        ("e2sim", {"settings": {"tls_cert_file": "/x"}}, "settings.tls_cert_file is set by the chart: use tls.*"),
    ],
)  # fmt: skip
def test_tls_values_that_cannot_work_are_refused(chart: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        charts.render(charts.CHARTS / chart, charts.Case(chart, "ranomaly", values))
