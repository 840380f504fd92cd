"""Signed models in tests: a key pair for the whole session, trusted by every xApp and used by every rApp the
tests start (through their environment, which child processes inherit), and helpers that sign test models."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from models.artifact import artifact_bytes_digest
from models.signing import generate_key_pair, load_signing_key, sign, sign_folder

KEYS = Path(tempfile.mkdtemp(prefix="ranomaly-test-keys-"))
atexit.register(shutil.rmtree, KEYS, True)
PRIVATE, PUBLIC = generate_key_pair(KEYS)
KEY = load_signing_key(PRIVATE)


def trust_test_key() -> None:
    """Name the session's key pair in the environment: xApps trust it, rApps sign with it."""
    os.environ["RANOMALY_XAPP_TRUSTED_MODEL_KEYS"] = str(PUBLIC)
    os.environ["RANOMALY_RAPP_MODEL_SIGNING_KEY_FILE"] = str(PRIVATE)


def signed(folder: Path, counter: int = 0) -> Path:
    """An artifact folder, signed with the session's key at this promotion counter."""
    sign_folder(KEY, folder, counter)
    return folder


def record(version: str, manifest_json: bytes, onnx: bytes, counter: int) -> bytes:
    """The signature record of a version's bytes at this promotion counter."""
    return sign(KEY, version, manifest_json, artifact_bytes_digest(onnx), counter)
