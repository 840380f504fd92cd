"""An OAuth 2.0 authorisation server on loopback for the console's sign-in: GET /authorize sends the browser back
to the client's redirect_uri with a single-use code for one fixed user (or `error=access_denied` while `deny` is
set); POST /token exchanges a code for a JWT only with its client_id, redirect_uri and the code verifier whose
S256 challenge came with /authorize; GET /jwks answers the public key (an EC key pair made at test time)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.auth_helpers import ISSUER
from tests.loopback_http import JsonHandler, LoopbackServer

USER = "test-operator"
CLIENT_ID = "ranomaly-console"
AUDIENCE = "ranomaly-rapp"


class Grant(NamedTuple):
    """What an issued code was bound to."""

    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


class OAuthIssuer:
    """The server; `tokens_issued` counts successful exchanges, `refusals` the reasons of refused ones."""

    def __init__(self, scope: str = "ranomaly:read ranomaly:policies ranomaly:admin") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = json.dumps({"keys": [jwk | {"kid": "console", "use": "sig", "alg": "ES256"}]}).encode()
        self.scope, self.deny, self.tokens_issued = scope, False, 0
        self.refusals: list[str] = []
        self._grants: dict[str, Grant] = {}
        issuer = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                url = urlsplit(self.path)
                if url.path == "/jwks":
                    self._answer(200, issuer.jwks)
                    return
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}?{urlencode(issuer.authorize(query))}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                form = {
                    k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
                }
                answer = issuer.exchange(form)
                self._answer(200 if "access_token" in answer else 400, json.dumps(answer).encode())

        self._http = LoopbackServer(Handler)
        self.url = self._http.url

    def authorize(self, query: dict[str, str]) -> dict[str, str]:
        """The redirect's parameters for an authorize request."""
        if self.deny:
            return {"error": "access_denied", "error_description": "the user said no", "state": query["state"]}
        assert query["response_type"] == "code" and query["code_challenge_method"] == "S256", query
        code = secrets.token_urlsafe(16)
        self._grants[code] = Grant(query["client_id"], query["redirect_uri"], query["code_challenge"], query["scope"])
        return {"code": code, "state": query["state"]}

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """The token endpoint's answer: a token, or an OAuth error (a code works once, right or wrong)."""
        grant = self._grants.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        problem = (
            "unknown or used code" if grant is None
            else "client_id" if form.get("client_id") != grant.client_id
            else "redirect_uri" if form.get("redirect_uri") != grant.redirect_uri
            else "code_verifier" if challenge != grant.challenge
            else None
        )  # fmt: skip
        if form.get("grant_type") != "authorization_code" or problem is not None or grant is None:
            self.refusals.append(problem or "grant_type")
            return {"error": "invalid_grant", "error_description": problem}
        self.tokens_issued += 1
        now = int(time.time())
        scopes = " ".join(s for s in grant.scope.split() if s in self.scope.split())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": USER, "iat": now, "exp": now + 300, "scope": scopes}
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "console"})
        return {"access_token": token, "token_type": "Bearer", "expires_in": 300}

    def close(self) -> None:
        self._http.close()
