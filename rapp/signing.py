"""The rApp's model signing key: the configured file, else a key pair generated on first start in the work folder."""

from __future__ import annotations

from pathlib import Path

import structlog

from models.signing import SigningKey, ensure_key_pair, load_signing_key

log = structlog.get_logger(__name__)

GENERATED_FOLDER = "model-signing"  # under work_dir: model-signing.key (0600) and model-signing.pub


def signing_key(key_file: Path | None, work_dir: Path) -> SigningKey:
    """The Ed25519 key promotions are signed with; KeyFileError (a ValueError) if the named file is unusable."""
    if key_file is None:
        key_file, public = ensure_key_pair(work_dir / GENERATED_FOLDER)
        log.warning("model_signing_key_in_work_dir", private_key=str(key_file), public_key=str(public),
                    detail="model_signing_key_file is not set; xApps must trust this public key "
                    "(trusted_model_keys)")  # fmt: skip
    key = load_signing_key(key_file)
    log.info("model_signing_key", key_id=key.key_id)
    return key
