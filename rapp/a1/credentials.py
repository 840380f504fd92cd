"""The rApp's own credential on the Near-RT A1-P endpoint, as an httpx auth: an OAuth 2.0 client-credentials
token from the issuer's token endpoint (cached until shortly before it expires, fetched again on a 401), or
the xApp's API key read from a file or mounted secret (read at each request, so a rotated key is taken)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from urllib.parse import quote

import httpx
import structlog

from ranomaly_contracts.auth.apikey import read_api_key
from ranomaly_contracts.auth.guard import API_KEY_HEADER
from rapp.settings import RappSettings

log = structlog.get_logger(__name__)

EXPIRY_MARGIN_S = 30.0  # a token is fetched again this long before it expires (at most half its lifetime)


class ApiKeyFile(httpx.Auth):
    """Sends the key a file holds in `X-API-Key`; none (logged) while the file is missing or empty."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        try:
            request.headers[API_KEY_HEADER] = read_api_key(self._path)
        except (OSError, ValueError) as exc:
            log.warning("a1_api_key_unreadable", path=str(self._path), problem=str(exc))
        yield request


class ClientCredentials(httpx.Auth):
    """Sends a bearer token got with the client-credentials grant (client_secret_basic); async clients only.
    Concurrent requests wait for one token fetch."""

    def __init__(self, token_url: str, client_id: str, secret: str, scope: str, audience: str | None) -> None:
        self._url = token_url
        pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
        self._basic = "Basic " + base64.b64encode(pair).decode()
        self._form = {"grant_type": "client_credentials", "scope": scope} | ({"audience": audience} if audience else {})
        self._token: str | None = None
        self._renew_at = 0.0
        self._fetching = asyncio.Lock()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._fetching:
            if self._token is None or time.monotonic() >= self._renew_at:
                await self._take((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:  # revoked, or the issuer's keys rotated: one fresh token
            await self._take((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx.Request:
        return httpx.Request("POST", self._url, data=self._form, headers={"Authorization": self._basic})

    async def _take(self, response: httpx.Response) -> None:
        """Keep the token of a token endpoint's answer; httpx.HTTPStatusError (retried by A1Client) otherwise."""
        await response.aread()
        body = response.json() if response.status_code == 200 else {}
        if not isinstance(body.get("access_token"), str):
            problem = f"token endpoint {self._url} answered {response.status_code}, no token: {response.text[:200]}"
            raise httpx.HTTPStatusError(problem, request=response.request, response=response)
        lifetime = float(body.get("expires_in", 300))
        self._token = body["access_token"]
        self._renew_at = time.monotonic() + lifetime - min(EXPIRY_MARGIN_S, lifetime / 2)


def a1_credential(settings: RappSettings) -> httpx.Auth | None:
    """The credential the settings name: a token when a1_token_url is set, else the API key file, else None."""
    if settings.a1_token_url is not None:
        if settings.a1_client_secret is not None:
            secret = settings.a1_client_secret.get_secret_value()
        elif settings.a1_client_secret_file is not None:
            secret = read_api_key(settings.a1_client_secret_file)
        else:
            raise ValueError("a1_token_url needs a1_client_secret or a1_client_secret_file")
        return ClientCredentials(settings.a1_token_url, settings.a1_client_id, secret, settings.a1_token_scope,
                                 settings.a1_token_audience)  # fmt: skip
    return None if settings.a1_api_key_file is None else ApiKeyFile(settings.a1_api_key_file)
