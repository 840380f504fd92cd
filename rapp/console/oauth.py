"""Console sign-in through an OAuth 2.0 issuer: the authorisation-code flow with PKCE (RFC 7636, S256).

`begin` makes a random `state` and code verifier, kept in this process's memory under a short-lived pre-session
cookie, and the authorize URL; `finish` takes them back once (a replayed callback finds nothing), checks the
state, and exchanges the code with the verifier at the token endpoint (httpx). The access token it returns is
verified by the caller with the rApp's token verifier. PKCE and state are a few lines of `secrets` and
`hashlib`: Authlib is not in the rApp's lock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import structlog

from rapp.settings import RappSettings

log = structlog.get_logger(__name__)

PRE_COOKIE = "ranomaly_console_oauth"
PENDING_S = 600  # a sign-in must come back from the issuer within this
PENDING_MAX = 10_000  # sign-ins under way at once (the oldest is dropped beyond)
TOKEN_TIMEOUT_S = 10.0


class OAuthRefused(ValueError):
    """A sign-in through the issuer that did not succeed; the message is for the operator (never a secret)."""


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The console as an OAuth client of one issuer."""

    authorize_url: str
    token_url: str
    client_id: str
    scope: str
    client_secret_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A sign-in sent to the issuer: what its callback must bring back, and what the exchange needs."""

    state: str
    verifier: str
    redirect_uri: str
    next: str
    expires: float


def challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuthSignIn:
    """Sign-ins under way, and the exchange of their codes."""

    def __init__(self, client: OAuthClient) -> None:
        self.client = client
        self._pending: dict[str, Pending] = {}

    def begin(self, redirect_uri: str, target: str) -> tuple[str, str]:
        """A new sign-in: its pre-session cookie value and the issuer's authorize URL to send the browser to."""
        self._drop_expired()
        while len(self._pending) >= PENDING_MAX:
            del self._pending[next(iter(self._pending))]  # dicts keep insertion order: the oldest first
        cookie, state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        self._pending[cookie] = Pending(state, verifier, redirect_uri, target, time.monotonic() + PENDING_S)
        query = urlencode({"response_type": "code", "client_id": self.client.client_id, "redirect_uri": redirect_uri,
                           "scope": self.client.scope, "state": state, "code_challenge": challenge(verifier),
                           "code_challenge_method": "S256"})  # fmt: skip
        separator = "&" if "?" in self.client.authorize_url else "?"
        return cookie, f"{self.client.authorize_url}{separator}{query}"

    def take(self, cookie: str | None) -> Pending | None:
        """The sign-in of a pre-session cookie, once: a second callback with it finds nothing."""
        pending = self._pending.pop(cookie or "", None)
        return None if pending is None or pending.expires < time.monotonic() else pending

    async def finish(self, pending: Pending | None, params: dict[str, str]) -> str:
        """The access token for the callback's parameters; OAuthRefused saying why not."""
        if pending is None:
            raise OAuthRefused("This sign-in expired or was already used; start again.")
        if not hmac.compare_digest(params.get("state", ""), pending.state):
            raise OAuthRefused("The issuer's answer does not belong to this sign-in (state mismatch); start again.")
        if "error" in params:
            reason = params.get("error_description") or params["error"]
            raise OAuthRefused(f"The issuer refused the sign-in: {reason[:200]}")
        if not params.get("code"):
            raise OAuthRefused("The issuer's answer carries no code; start again.")
        return await self._exchange(params["code"], pending)

    async def _exchange(self, code: str, pending: Pending) -> str:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
                "client_id": self.client.client_id, "code_verifier": pending.verifier}  # fmt: skip
        auth: httpx.Auth | None = None  # a confidential client authenticates with HTTP Basic
        if self.client.client_secret_file is not None:
            auth = httpx.BasicAuth(self.client.client_id, self.client.client_secret_file.read_text().strip())
        try:
            async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT_S) as http:
                answer = await http.post(self.client.token_url, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT,
                                         headers={"accept": "application/json"})  # fmt: skip
            body = answer.json() if answer.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("console_oauth_exchange_failed", token_url=self.client.token_url, error=type(exc).__name__)
            raise OAuthRefused(f"The issuer's token endpoint could not be reached ({type(exc).__name__}).") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if answer.status_code != 200 or not isinstance(token, str):
            error = body.get("error", f"HTTP {answer.status_code}") if isinstance(body, dict) else "no JSON"
            log.warning("console_oauth_exchange_refused", status=answer.status_code, error=str(error)[:200])
            raise OAuthRefused(f"The issuer did not exchange the code for a token ({str(error)[:200]}).")
        return token

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for cookie in [c for c, p in self._pending.items() if p.expires < now]:
            del self._pending[cookie]


def oauth_sign_in(settings: RappSettings) -> OAuthSignIn | None:
    """The sign-in through the issuer the settings name; None when none is configured."""
    if settings.console_oauth_authorize_url is None or settings.console_oauth_token_url is None:
        return None
    return OAuthSignIn(OAuthClient(settings.console_oauth_authorize_url, settings.console_oauth_token_url,
                                   settings.console_oauth_client_id, settings.console_oauth_scope,
                                   settings.console_oauth_client_secret_file))  # fmt: skip
