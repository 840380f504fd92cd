"""The API key: generated on first start into a file only the owner can read (0600), compared in constant
time. It holds every scope."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

KEY_BYTES = 32  # of randomness; the key is their URL-safe base64 text


def provision_api_key(path: Path) -> str:
    """The key in `path`, generated there (mode 0600, folders made) when the file does not exist yet; logs
    where it is, never the key. ValueError if the file is empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = False
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}")  # written whole, then linked: never read half-made
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(KEY_BYTES) + "\n")
        try:
            os.link(draft, path)
            created = True
        except FileExistsError:  # another process made it first: theirs stands
            pass
        finally:
            draft.unlink()
    key = read_api_key(path)
    log.info("api_key_ready", path=str(path), generated=created)
    return key


def read_api_key(path: Path) -> str:
    """The key a file holds (surrounding whitespace dropped); ValueError if it holds none."""
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"API key file {path} is empty")
    return key


class ApiKey:
    """One accepted key."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def matches(self, given: str) -> bool:
        """Whether `given` is the key, compared in constant time."""
        return hmac.compare_digest(self._key, given.encode())
