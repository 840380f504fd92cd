"""Signed model promotions: Ed25519 key files, the signature record of an artifact, and its verification.

Torch-free, like `models.artifact`: the xApp imports it. A signature record is JSON
`{"payload": {...}, "key_id": "<hex>", "signature": "<base64>"}`, kept as `signature.json` beside an
artifact's manifest and, in the registry, under the artifact's version. The signature is Ed25519 over the
payload's canonical form (`canonical`: JSON, keys sorted, no whitespace, ASCII, UTF-8 bytes):

    {"counter": int >= 0, "format": 1, "manifest_sha256": hex of the exact manifest.json bytes,
     "onnx_sha256": hex of model.onnx (what the manifest's sha256 says too), "version": str}

`counter` is the registry's promotion counter at this promotion (0 for a local `ranomaly sign`); a
verifier refuses a record whose counter is not above the newest it accepted (`xapp.trust`). `key_id` is the
first 16 hex digits of the SHA-256 of the raw 32-byte public key, so a verifier trusting several keys (a
rotation) knows which one to use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models.artifact import MANIFEST_FILE, artifact_bytes_digest, read_artifact

SIGNATURE_FILE = "signature.json"
PRIVATE_KEY_FILE = "model-signing.key"  # what `generate_key_pair` writes (mode 0600)
PUBLIC_KEY_FILE = "model-signing.pub"
PUBLIC_KEY_SUFFIX = ".pub"  # the files a trusted-keys folder contributes
FORMAT = 1

Reason = Literal["unsigned", "bad_signature", "untrusted_key", "replayed", "digest_mismatch"]
REASONS: tuple[Reason, ...] = ("unsigned", "bad_signature", "untrusted_key", "replayed", "digest_mismatch")


class KeyFileError(ValueError):
    """A key file that cannot be used: the message names it and what is wrong."""


class SignatureRefused(ValueError):
    """An artifact whose signature does not hold; `reason` is one of REASONS."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class SigningKey:
    """A private key and its key id."""

    private: Ed25519PrivateKey
    key_id: str


@dataclass(frozen=True)
class Promotion:
    """What a verified record says: this version, promoted at this counter, signed by this key."""

    version: str
    counter: int
    key_id: str


def key_id(public: Ed25519PublicKey) -> str:
    """The key id of a public key (16 hex digits)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def canonical(payload: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: JSON, keys sorted, no whitespace, ASCII."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # whatever the umask


def generate_key_pair(folder: Path) -> tuple[Path, Path]:
    """Write a new key pair into `folder` (private key mode 0600); refuse to overwrite one. (private, public)."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    if private_path.exists() or public_path.exists():
        raise KeyFileError(f"{folder} already holds {PRIVATE_KEY_FILE} or {PUBLIC_KEY_FILE}; not overwritten")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(private_path, pem)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    return private_path, public_path


def ensure_key_pair(folder: Path) -> tuple[Path, Path]:
    """The key pair in `folder`, generated on first use. (private, public)."""
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    return generate_key_pair(folder)


def load_signing_key(path: Path) -> SigningKey:
    """An Ed25519 private key from a PEM (PKCS8, unencrypted) file."""
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise KeyFileError(f"model signing key {path}: cannot read it: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"model signing key {path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"model signing key {path}: not an Ed25519 key")
    return SigningKey(private, key_id(private.public_key()))


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise KeyFileError(f"trusted model key {path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise KeyFileError(f"trusted model key {path}: not a PEM public key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError(f"trusted model key {path}: not an Ed25519 key")
    return public


def load_trusted_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key of PEM files, and of every `*.pub` file in a named folder."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        files = sorted(path.glob(f"*{PUBLIC_KEY_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            public = _load_public(file)
            keys[key_id(public)] = public
    return keys


def sign(key: SigningKey, version: str, manifest_json: bytes, onnx_sha256: str, counter: int) -> bytes:
    """The signature record of a promotion: this version's manifest bytes and ONNX digest at this counter."""
    payload = {
        "counter": counter,
        "format": FORMAT,
        "manifest_sha256": artifact_bytes_digest(manifest_json),
        "onnx_sha256": onnx_sha256,
        "version": version,
    }
    signature = key.private.sign(canonical(payload))
    record = {"payload": payload, "key_id": key.key_id, "signature": base64.b64encode(signature).decode()}
    return (json.dumps(record, sort_keys=True, indent=2) + "\n").encode()


def _fields(record: bytes) -> tuple[dict[str, Any], str, bytes]:
    """(payload, key id, signature bytes) of a record; SignatureRefused (bad_signature) if malformed."""
    try:
        obj = json.loads(record)
        payload, kid, signature = obj["payload"], obj["key_id"], base64.b64decode(obj["signature"], validate=True)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureRefused("bad_signature", f"signature record is malformed: {exc!r}") from None
    if not isinstance(payload, dict) or not isinstance(kid, str):
        raise SignatureRefused("bad_signature", "signature record is malformed: payload or key_id of the wrong type")
    return payload, kid, signature


def verify(record: bytes, manifest_json: bytes, onnx: bytes, version: str,
           trusted: Mapping[str, Ed25519PublicKey]) -> Promotion:  # fmt: skip
    """Check a record against trusted keys and the artifact's bytes; SignatureRefused with the reason if not."""
    payload, kid, signature = _fields(record)
    public = trusted.get(kid)
    if public is None:
        raise SignatureRefused("untrusted_key", f"signed by key {kid[:16]!r}, which is not trusted")
    try:
        public.verify(signature, canonical(payload))
    except InvalidSignature:
        raise SignatureRefused("bad_signature", f"the signature of key {kid} does not verify") from None
    counter = payload.get("counter")
    if payload.get("format") != FORMAT or not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
        raise SignatureRefused("bad_signature", f"signed payload of an unknown format: {payload}")
    if payload.get("version") != version:
        raise SignatureRefused("replayed", f"the record signs version {payload.get('version')!r}, not {version!r}")
    if payload.get("manifest_sha256") != artifact_bytes_digest(manifest_json):
        raise SignatureRefused("digest_mismatch", "manifest.json is not the one signed")
    if payload.get("onnx_sha256") != artifact_bytes_digest(onnx):
        raise SignatureRefused("digest_mismatch", "model.onnx is not the one signed")
    return Promotion(version, counter, kid)


def read_signature(folder: Path) -> bytes | None:
    """The signature record beside an artifact's manifest; None if it has none."""
    try:
        return (folder / SIGNATURE_FILE).read_bytes()
    except FileNotFoundError:
        return None


def sign_folder(key: SigningKey, folder: Path, counter: int = 0) -> bytes:
    """Sign an artifact folder (read and checked first): write its signature record beside the manifest."""
    artifact = read_artifact(folder)
    manifest_json = (folder / MANIFEST_FILE).read_bytes()
    record = sign(key, artifact.manifest.version, manifest_json, artifact.manifest.sha256, counter)
    (folder / SIGNATURE_FILE).write_bytes(record)
    return record
