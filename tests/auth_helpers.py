"""Real credentials for tests: an app's generated API key as a header, and an issuer of its own (an EC key
pair made at test time, its JWKS served over HTTP on loopback, tokens signed with PyJWT)."""

from __future__ import annotations

import json
import time
from base64 import b64encode
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ranomaly_contracts.auth.apikey import ApiKey, read_api_key
from ranomaly_contracts.auth.guard import API_KEY_HEADER, Guard
from rapp.settings import RappSettings
from tests.loopback_http import JsonHandler, LoopbackServer
from xapp.settings import XappSettings

ISSUER = "https://issuer.test"
ROUTER_KEY = "router-test-key"  # the key of routers served bare in a test (`key_guard`)
ROUTER_HEADERS = {API_KEY_HEADER: ROUTER_KEY}


def key_guard() -> Guard:
    """A guard taking ROUTER_KEY, for a router served without its app."""
    return Guard(None, ApiKey(ROUTER_KEY))


def key_header(path: Path) -> dict[str, str]:
    """The API key header with the key an app generated into `path`."""
    return {API_KEY_HEADER: read_api_key(path)}


def app_key(settings: XappSettings | RappSettings) -> dict[str, str]:
    """The API key header of an app with these settings (its generated key)."""
    return key_header(settings.auth_settings().default_key_file)


class Issuer:
    """A token issuer on loopback: GET /jwks answers its public key (and counts the fetches); POST /token answers a
    client-credentials token for client "rapp" with secret "s3cret" (the scope and audience asked for, else the
    xApp's audience). `close()` stops it."""

    def __init__(self) -> None:
        self.tokens_issued = self.jwks_fetched = 0
        self.rotate("k1")
        issuer = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                issuer.jwks_fetched += 1
                self._answer(200, issuer.jwks)

            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                if self.headers.get("Authorization") != "Basic " + b64encode(b"rapp:s3cret").decode():
                    self._answer(401, b'{"error": "invalid_client"}')
                    return
                issuer.tokens_issued += 1
                audience = form.get("audience", ["ranomaly-xapp"])[0]
                token = issuer.token(audience, form.get("scope", [""])[0].split(), sub="rapp")
                self._answer(200, json.dumps({"access_token": token, "expires_in": 300}).encode())

        self._http = LoopbackServer(Handler)
        self.url = self._http.url

    def rotate(self, kid: str) -> None:
        """Sign with a new key pair from now on, named `kid`; the JWKS holds only the new public key."""
        self.key, self.kid = ec.generate_private_key(ec.SECP256R1()), kid
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = json.dumps({"keys": [jwk | {"kid": kid, "use": "sig", "alg": "ES256"}]}).encode()

    def public_pem(self) -> bytes:
        """The public key as PEM (for `auth_public_key_file`)."""
        return self.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def token(self, audience: str, scopes: list[str], **claims: Any) -> str:
        """A signed token: this issuer, `audience`, valid 5 minutes, unless `claims` say otherwise."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": audience, "sub": "operator-1", "iat": now, "exp": now + 300,
                "scope": " ".join(scopes)} | claims  # fmt: skip
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})

    def close(self) -> None:
        self._http.close()
