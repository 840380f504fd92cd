"""Certificates made at test time (cryptography, EC P-256): a CA, a server and a client certificate it signed,
and a second CA with a server certificate of its own (an impostor). PEM files in a folder; nothing committed."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ranomaly_contracts.tls import ClientTls, PemFile, ServerTls

Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsCerts:
    """The files of one test PKI."""

    ca: Path
    server: Pair  # for 127.0.0.1 and localhost, signed by `ca`
    client: Pair  # signed by `ca`
    other_ca: Path
    impostor: Pair  # for 127.0.0.1 and localhost, signed by `other_ca`

    def server_tls(self, mutual: bool = True) -> ServerTls:
        """The server certificate; mutual: client certificates of `ca` required."""
        ca = PemFile("client_ca", self.ca) if mutual else None
        return ServerTls(PemFile("cert", self.server.cert), PemFile("key", self.server.key), ca)

    def impostor_tls(self) -> ServerTls:
        """The impostor's certificate (another CA's), no client certificates asked."""
        return ServerTls(PemFile("cert", self.impostor.cert), PemFile("key", self.impostor.key))

    def client_tls(self, with_cert: bool = True) -> ClientTls:
        """Trusting `ca`; with_cert: presenting the client certificate."""
        if not with_cert:
            return ClientTls(PemFile("ca", self.ca))
        return ClientTls(PemFile("ca", self.ca), PemFile("cert", self.client.cert), PemFile("key", self.client.key))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, issuer: Issuer | None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    signer = key if issuer is None else issuer[1]
    builder = builder.public_key(key.public_key()).serial_number(x509.random_serial_number())
    day = datetime.timedelta(days=1)
    builder = builder.not_valid_before(now - day).not_valid_after(now + day)
    return builder.sign(signer, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Path:
    path = folder / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (folder / f"{name}.key").write_bytes(pem)
    return path


def _ca(folder: Path, name: str) -> tuple[Path, Issuer]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
    )
    cert = _sign(builder, key, None)
    return _write(folder, name, cert, None), (cert, key)


def _leaf(folder: Path, name: str, issuer: Issuer, server: bool) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = issuer
    builder = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = _sign(builder, key, issuer)
    _write(folder, name, cert, key)
    return Pair(folder / f"{name}.crt", folder / f"{name}.key")


def make_certs(folder: Path) -> TlsCerts:
    """A CA, its server and client certificates, and an impostor server certificate from another CA."""
    ca, issuer = _ca(folder, "ca")
    other_ca, other = _ca(folder, "other-ca")
    return TlsCerts(
        ca=ca,
        server=_leaf(folder, "server", issuer, server=True),
        client=_leaf(folder, "client", issuer, server=False),
        other_ca=other_ca,
        impostor=_leaf(folder, "impostor", other, server=True),
    )
