"""TLS from PEM files named in settings (a Kubernetes secret or cert-manager's tls.crt, tls.key, ca.crt).

`ServerTls` (a certificate and its key; with a client CA, clients must present a certificate it signed:
mutual TLS) and `ClientTls` (the CA a server is verified against, None: the system's; optionally a client
certificate) build `ssl.SSLContext`s for uvicorn and httpx, gRPC credentials and redis-py options. Every
hop is plain unless its settings turn TLS on. `server_tls` and `client_tls` check how the settings combine
(without reading files: settings stay buildable where the files are not, as in chart tests); the apps build
their contexts when they start, and a `TlsError` then names the setting and the file that is missing,
unreadable, not PEM, or a key that does not belong to its certificate. A renewed certificate takes effect
when the process restarts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


class TlsError(ValueError):
    """TLS settings that cannot work; the message names the setting and the file."""


@dataclass(frozen=True)
class PemFile:
    """A PEM file and the setting that named it (for error messages)."""

    setting: str
    path: Path

    def read(self) -> bytes:
        """The file's bytes; TlsError when it is missing or unreadable."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise TlsError(f"{self.setting}: {self.path} does not exist") from None
        except OSError as exc:
            raise TlsError(f"{self.setting}: cannot read {self.path} ({exc.strerror})") from None


def _load_chain(context: ssl.SSLContext, cert: PemFile, key: PemFile) -> None:
    cert.read(), key.read()
    try:
        context.load_cert_chain(cert.path, key.path)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(f"{key.setting}: {key.path} is not the key of {cert.setting} {cert.path}") from None
        raise TlsError(f"{cert.setting} {cert.path} and {key.setting} {key.path}: not a PEM certificate and "
                       f"key ({exc.reason or exc})") from None  # fmt: skip


def _load_ca(context: ssl.SSLContext, ca: PemFile) -> None:
    try:
        context.load_verify_locations(cadata=ca.read().decode("ascii", errors="replace"))
    except ssl.SSLError as exc:
        raise TlsError(f"{ca.setting}: {ca.path} holds no PEM CA certificate ({exc.reason or exc})") from None


@dataclass(frozen=True)
class ServerTls:
    """A server's certificate and key; with `client_ca`, clients must present a certificate it signed."""

    cert: PemFile
    key: PemFile
    client_ca: PemFile | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A server context (TLS 1.2 or later); it trusts no client certificate but the client CA's."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_chain(context, self.cert, self.key)
        if self.client_ca is not None:
            _load_ca(context, self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials; client authentication required with a client CA."""
        self.ssl_context()  # the checks, with errors that name the files
        ca = None if self.client_ca is None else self.client_ca.read()
        return grpc.ssl_server_credentials(
            [(self.key.read(), self.cert.read())], root_certificates=ca, require_client_auth=ca is not None
        )


@dataclass(frozen=True)
class ClientTls:
    """What a client verifies servers against (`ca`; None: the system's CAs) and the certificate it presents."""

    ca: PemFile | None = None
    cert: PemFile | None = None
    key: PemFile | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context (TLS 1.2 or later, host names checked)."""
        if self.ca is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            _load_ca(context, self.ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None and self.key is not None:
            _load_chain(context, self.cert, self.key)
        return context

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials."""
        self.ssl_context()
        return grpc.ssl_channel_credentials(
            root_certificates=None if self.ca is None else self.ca.read(),
            private_key=None if self.key is None else self.key.read(),
            certificate_chain=None if self.cert is None else self.cert.read(),
        )


def server_tls(prefix: str, cert: Path | None, key: Path | None, client_ca: Path | None) -> ServerTls | None:
    """The server TLS that `<prefix>_cert_file`, `_key_file` and `_client_ca_file` name; None when neither
    certificate nor key is set: plain."""
    names = f"{prefix}_cert_file", f"{prefix}_key_file", f"{prefix}_client_ca_file"
    if cert is None and key is None:
        if client_ca is not None:
            raise TlsError(f"{names[2]} needs {names[0]} and {names[1]}: mutual TLS is TLS first")
        return None
    if cert is None or key is None:
        raise TlsError(f"{names[0]} and {names[1]} go together: {names[1 if key is None else 0]} is not set")
    ca = None if client_ca is None else PemFile(names[2], client_ca)
    return ServerTls(PemFile(names[0], cert), PemFile(names[1], key), ca)


def client_tls(
    prefix: str, enabled: bool, off: str, ca: Path | None, cert: Path | None, key: Path | None
) -> ClientTls | None:
    """The client TLS that `<prefix>_ca_file`, `_cert_file` and `_key_file` name when `enabled`; None when
    not. Files set while TLS is off are an error, `off` saying why it is off."""
    names = f"{prefix}_ca_file", f"{prefix}_cert_file", f"{prefix}_key_file"
    if not enabled:
        given = [name for name, path in zip(names, (ca, cert, key), strict=True) if path is not None]
        if given:
            raise TlsError(f"{', '.join(given)} set, but {off}")
        return None
    if (cert is None) != (key is None):
        raise TlsError(f"{names[1]} and {names[2]} go together: {names[2 if key is None else 1]} is not set")
    return ClientTls(
        None if ca is None else PemFile(names[0], ca),
        None if cert is None else PemFile(names[1], cert),
        None if key is None else PemFile(names[2], key),
    )


def uvicorn_ssl(tls: ServerTls | None) -> dict[str, Any]:
    """uvicorn.Config options that serve HTTPS with `tls` (none: plain HTTP)."""
    if tls is None:
        return {}
    context = tls.ssl_context()
    return {"ssl_context_factory": lambda config, default: context}


def redis_options(tls: ClientTls | None) -> dict[str, Any]:
    """redis-py connection options for a rediss:// URL with `tls`: verify the server, present the certificate
    (none: plain)."""
    if tls is None:
        return {}
    tls.ssl_context()
    options: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if tls.ca is not None:
        options["ssl_ca_certs"] = str(tls.ca.path)
    if tls.cert is not None and tls.key is not None:
        options |= {"ssl_certfile": str(tls.cert.path), "ssl_keyfile": str(tls.key.path)}
    return options
