"""A guard from an app's auth settings: tokens when an issuer is set; the API key when no issuer is set (generated
on first start) or when a key file is named; nothing checked when auth is off (a warning at every start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from ranomaly_contracts.auth.apikey import ApiKey, provision_api_key
from ranomaly_contracts.auth.guard import Guard
from ranomaly_contracts.auth.tokens import TokenSettings, TokenVerifier

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The auth fields both apps' settings carry."""

    auth: Literal["on", "off"]
    issuer: str | None
    audience: str
    jwks_url: str | None
    public_key_file: Path | None
    leeway_s: float
    api_key_file: Path | None  # None: `default_key_file` when no issuer is set
    default_key_file: Path


def build_guard(settings: AuthSettings, app: str) -> Guard:
    """The guard the settings describe; ValueError when they contradict each other."""
    if settings.auth == "off":
        log.warning("auth_off", app=app, problem="authentication is off: anyone who reaches the port may change "
                    "policies, jobs and models; set auth to on")  # fmt: skip
        return Guard(None, None, enabled=False)
    tokens = None
    if settings.issuer is not None:
        tokens = TokenVerifier(TokenSettings(settings.issuer, settings.audience, settings.jwks_url,
                                             settings.public_key_file, settings.leeway_s))  # fmt: skip
    elif settings.jwks_url is not None or settings.public_key_file is not None:
        raise ValueError("auth_jwks_url and auth_public_key_file need auth_issuer: tokens are checked against it")
    key_file = settings.api_key_file or (None if tokens else settings.default_key_file)
    api_key = None if key_file is None else ApiKey(provision_api_key(key_file))
    log.info("auth_on", app=app, issuer=settings.issuer, audience=settings.audience if tokens else None,
             api_key_file=None if key_file is None else str(key_file))  # fmt: skip
    return Guard(tokens, api_key)
