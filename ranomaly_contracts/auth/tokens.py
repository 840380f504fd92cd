"""Bearer JWT verification with PyJWT: signature (a JWKS URL's keys, cached, or one public key file), issuer,
audience, expiry with a clock-skew leeway; the scopes from `scope` (space-separated) or `scp` (a list)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ranomaly_contracts.auth.scopes import Principal

# Asymmetric algorithms only: a shared-secret (HS*) token could be minted by anyone who verifies it.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
JWKS_LIFESPAN_S = 300  # how long fetched keys are kept; an unknown `kid` fetches again sooner
JWKS_COOLDOWN_S = 30.0  # ... but at most this often: tokens with made-up kids cannot make the issuer a target
JWKS_TIMEOUT_S = 5  # a fetch that takes longer fails: the request is refused, naming why


class InvalidToken(ValueError):
    """A token that does not verify; the message says why (never the token)."""


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Where keys come from (exactly one of jwks_url and public_key_file) and what a token must carry."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    public_key_file: Path | None = None
    leeway_s: float = 30.0
    refetch_cooldown_s: float = JWKS_COOLDOWN_S


class TokenVerifier:
    """Verifies bearer tokens against one issuer's keys."""

    def __init__(self, settings: TokenSettings) -> None:
        if (settings.jwks_url is None) == (settings.public_key_file is None):
            raise ValueError("token verification needs exactly one of a JWKS URL and a public key file")
        self.settings = settings
        self._jwks = None
        if settings.jwks_url is not None:
            self._jwks = jwt.PyJWKClient(settings.jwks_url, lifespan=JWKS_LIFESPAN_S, timeout=JWKS_TIMEOUT_S,
                                         cooldown_duration=settings.refetch_cooldown_s)  # fmt: skip
        self._key: Any = None
        if settings.public_key_file is not None:
            self._key = load_pem_public_key(settings.public_key_file.read_bytes())

    async def verify(self, token: str) -> Principal:
        """The token's subject and scopes; InvalidToken naming why it is refused."""
        try:
            key = self._key
            if self._jwks is not None:  # a fetch blocks: off the event loop
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=self.settings.audience, issuer=self.settings.issuer,
                leeway=self.settings.leeway_s, options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.PyJWKClientConnectionError as exc:
            raise InvalidToken(f"the issuer's keys could not be fetched: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from exc
        return Principal(_subject(claims), frozenset(_scopes(claims)), "token")


def _subject(claims: dict[str, Any]) -> str:
    for name in ("sub", "client_id", "azp"):
        if isinstance(claims.get(name), str) and claims[name]:
            return str(claims[name])
    return "unnamed"


def _scopes(claims: dict[str, Any]) -> list[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        return scope.split()
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    return scp.split() if isinstance(scp, str) else []
