"""TLS settings: plain by default; settings that cannot combine are refused, and a bad file stops the start
naming its setting and path, before anything listens."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from e2sim.server import SimServer, StreamOptions
from e2sim.settings import SimSettings
from e2sim.world import World
from ranomaly_contracts.tls import PemFile, ServerTls, TlsError
from rapp.app import RappService
from rapp.settings import RappSettings
from tests.tlscerts import TlsCerts
from xapp.app import XappService
from xapp.settings import XappSettings


def test_every_hop_is_plain_by_default() -> None:
    xapp, rapp = XappSettings(), RappSettings()
    assert (xapp.http_tls(), xapp.e2_client_tls(), xapp.redis_client_tls()) == (None, None, None)
    assert (rapp.http_tls(), rapp.a1_client_tls(), rapp.redis_client_tls()) == (None, None, None)
    assert SimSettings().tls() is None


def test_one_setting_turns_each_hop_on(tls_certs: TlsCerts) -> None:
    files = {"tls_cert_file": tls_certs.server.cert, "tls_key_file": tls_certs.server.key}
    xapp = XappSettings(**files, tls_client_ca_file=tls_certs.ca, e2_tls=True, redis_url="rediss://r:6379/0")
    assert xapp.http_tls() is not None and xapp.e2_client_tls() is not None and xapp.redis_client_tls() is not None
    rapp = RappSettings(**files, a1_base_url="https://xapp:8080", redis_url="rediss://r:6379/0")
    assert rapp.http_tls() is not None and rapp.a1_client_tls() is not None and rapp.redis_client_tls() is not None
    assert SimSettings(**files).tls() is not None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tls_cert_file": "{cert}"}, "tls_cert_file and tls_key_file go together: tls_key_file is not set"),
        ({"tls_client_ca_file": "{ca}"}, "tls_client_ca_file needs tls_cert_file and tls_key_file"),
        ({"e2_tls_ca_file": "{ca}"}, "e2_tls_ca_file set, but e2_tls is false"),
        ({"e2_tls": True, "e2_tls_key_file": "{key}"}, "e2_tls_cert_file and e2_tls_key_file go together"),
        ({"redis_tls_ca_file": "{ca}"}, "redis_tls_ca_file set, but redis_url is not rediss://"),
    ],
)
def test_settings_that_cannot_combine_are_refused_by_name(
    tls_certs: TlsCerts, fields: dict[str, object], message: str
) -> None:
    paths = {"cert": tls_certs.server.cert, "key": tls_certs.server.key, "ca": tls_certs.ca}
    given = {name: value.format(**paths) if isinstance(value, str) else value for name, value in fields.items()}
    with pytest.raises(ValidationError) as caught:
        XappSettings(**given)  # type: ignore[arg-type]
    assert message in str(caught.value)
    with pytest.raises(ValidationError, match="a1_tls_cert_file, a1_tls_key_file set, but a1_base_url is not https://"):
        RappSettings(a1_tls_cert_file=tls_certs.client.cert, a1_tls_key_file=tls_certs.client.key)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tls_cert_file": "{missing}", "tls_key_file": "{key}"}, "tls_cert_file: {missing} does not exist"),
        ({"tls_cert_file": "{cert}", "tls_key_file": "{client_key}"}, "tls_key_file: {client_key} is not the key"),
        (
            {"tls_cert_file": "{cert}", "tls_key_file": "{key}", "tls_client_ca_file": "{key}"},
            "tls_client_ca_file: {key} holds no PEM CA certificate",
        ),  # fmt: skip
        ({"e2_tls": True, "e2_tls_ca_file": "{missing}"}, "e2_tls_ca_file: {missing} does not exist"),
        (
            {"redis_url": "rediss://127.0.0.1:1/0", "redis_tls_ca_file": "{missing}", "datalayer": "redis"},
            "redis_tls_ca_file: {missing} does not exist",
        ),  # fmt: skip
    ],
)
def test_the_xapp_does_not_start_with_a_bad_file_and_names_it(
    tls_certs: TlsCerts, tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    paths = {"cert": tls_certs.server.cert, "key": tls_certs.server.key, "ca": tls_certs.ca,
             "client_key": tls_certs.client.key, "missing": tmp_path / "absent.pem"}  # fmt: skip
    given = {name: value.format(**paths) if isinstance(value, str) else value for name, value in fields.items()}
    settings = XappSettings(**given)  # type: ignore[arg-type]  # settings hold paths; the files are read at start
    with pytest.raises(TlsError) as caught:
        XappService(settings)
    assert str(caught.value).startswith(message.format(**paths))


def test_the_rapp_and_the_simulator_do_not_start_with_a_missing_file(
    tls_certs: TlsCerts, tmp_path: Path, small_world: World
) -> None:
    missing = tmp_path / "ca.crt"
    rapp = RappSettings(a1_base_url="https://xapp:8080", a1_tls_ca_file=missing, work_dir=tmp_path / "work",
                        history_dir=tmp_path / "history", report_summaries=False)  # fmt: skip
    with pytest.raises(TlsError, match=f"a1_tls_ca_file: {missing} does not exist"):
        RappService(rapp)
    sim = SimSettings(
        tls_cert_file=tls_certs.server.cert, tls_key_file=tls_certs.server.key, tls_client_ca_file=missing
    )
    with pytest.raises(TlsError, match=f"tls_client_ca_file: {missing} does not exist"):
        SimServer(small_world, StreamOptions(), sim.tls())


def test_an_unreadable_key_is_named(tls_certs: TlsCerts, tmp_path: Path) -> None:
    folder = tmp_path / "tls.key"  # a folder where the key should be: unreadable even to root
    folder.mkdir()
    with pytest.raises(TlsError, match=f"tls_key_file: cannot read {folder} \\(Is a directory\\)"):
        ServerTls(PemFile("tls_cert_file", tls_certs.server.cert), PemFile("tls_key_file", folder)).ssl_context()
