"""Console sign-in through an OAuth issuer (authorisation code with PKCE): a real issuer on loopback
(tests/oauth_issuer.py) and a real rApp; the flow walked over HTTP, then once in Debian's chromium."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import redis
from playwright.sync_api import expect, sync_playwright

from ranomaly_contracts.auth.audit import AuditRecord, decode_audit
from ranomaly_contracts.auth.scopes import ALL, READ
from ranomaly_contracts.sdl import FIELD_DATA, sdl_keys
from rapp.console.oauth import PRE_COOKIE, challenge
from rapp.console.session import COOKIE, CSRF_HEADER
from tests.auth_helpers import ISSUER
from tests.console_seed import OPEN_ID, Running, running_rapp
from tests.oauth_issuer import CLIENT_ID, USER, OAuthIssuer

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
SIGNED_IN_AS = f"{USER} via {USER}"


@pytest.fixture(scope="module")
def issuer() -> Iterator[OAuthIssuer]:
    server = OAuthIssuer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def console(redis_url: str, issuer: OAuthIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder: Path = tmp_path_factory.mktemp("oauth-console")
    with running_rapp(redis_url, folder, auth_issuer=ISSUER, auth_jwks_url=f"{issuer.url}/jwks",
                      console_oauth_authorize_url=f"{issuer.url}/authorize",
                      console_oauth_token_url=f"{issuer.url}/token", console_oauth_client_id=CLIENT_ID,
                      console_oauth_issuer_name="Test IdP") as running:  # fmt: skip
        yield running


def begin(client: httpx.Client, console: Running) -> str:
    """A sign-in started at the rApp: the authorize URL it sends the browser to (PKCE S256, a state)."""
    answer = client.get(f"{console.base}/console/oauth/start", params={"next": "/console/incidents"})
    assert answer.status_code == 303 and PRE_COOKIE in answer.cookies
    return answer.headers["location"]


def authorize(client: httpx.Client, url: str) -> dict[str, str]:
    """The issuer's redirect back: the callback's parameters."""
    answer = client.get(url)
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def callback(client: httpx.Client, console: Running, params: dict[str, str]) -> httpx.Response:
    return client.get(f"{console.base}/console/oauth/callback", params=params)


def audited_callbacks(console: Running, redis_url: str, status: int, count: int) -> list[AuditRecord]:
    """The audit stream's OAuth callbacks answered with `status`, once it holds `count` of them (or 30 s on:
    the audit is written after the answer is sent)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    try:
        while True:
            stream = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(sdl_keys(console.prefix).audit))
            entries = [decode_audit(fields[FIELD_DATA.encode()]) for _, fields in stream]
            found = [e for e in entries if e.path == "/console/oauth/callback" and e.status == status]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)
    finally:
        client.close()


def test_the_code_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636, appendix B
    assert challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_code_flow_with_pkce_signs_in_and_the_session_works(
    console: Running, issuer: OAuthIssuer, redis_url: str
) -> None:
    assert "Sign in with Test IdP" in httpx.get(f"{console.base}/console/sign-in").text
    with httpx.Client() as client:
        url = begin(client, console)
        sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert url.startswith(f"{issuer.url}/authorize?")
        assert sent["response_type"] == "code" and sent["client_id"] == CLIENT_ID
        assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
        assert sent["redirect_uri"] == f"{console.base}/console/oauth/callback"
        assert sent["scope"] == "openid ranomaly:read ranomaly:policies ranomaly:admin"
        answer = callback(client, console, authorize(client, url))
        assert answer.status_code == 200 and 'url=/console/incidents"' in answer.text
        assert COOKIE in answer.cookies and PRE_COOKIE not in client.cookies  # the pre-session is spent
        assert "httponly" in answer.headers["set-cookie"].lower()
        page = client.get(f"{console.base}/console")
        assert page.status_code == 200 and SIGNED_IN_AS in page.text
        assert 'name="csrf-token"' in page.text
        assert client.get(f"{console.base}/console/api/network").status_code == 200
    (signed_in,) = audited_callbacks(console, redis_url, 200, 1)  # the sign-in is in the audit stream
    assert (signed_in.subject, signed_in.credential) == (USER, "token")


def test_a_state_mismatch_a_replayed_code_and_a_wrong_verifier_are_refused(
    console: Running, issuer: OAuthIssuer, redis_url: str
) -> None:
    with httpx.Client() as client:
        # the state does not match the one sent: refused before any exchange
        params = authorize(client, begin(client, console))
        issued = issuer.tokens_issued
        answer = callback(client, console, params | {"state": "forged"})
        assert answer.status_code == 401 and "state mismatch" in answer.text
        assert issuer.tokens_issued == issued and COOKIE not in client.cookies

        # the same callback twice: the first signs in, the second finds its sign-in spent
        params = authorize(client, begin(client, console))
        assert callback(client, console, params).status_code == 200
        client.cookies.clear()
        assert "already used" in callback(client, console, params).text

        # the used code, under a new sign-in of this browser: the issuer refuses it
        fresh = authorize(client, begin(client, console))
        answer = callback(client, console, {"code": params["code"], "state": fresh["state"]})
        assert answer.status_code == 401 and "did not exchange the code" in answer.text
        assert issuer.refusals[-1] == "unknown or used code"

        # a code issued for another sign-in (another verifier): the issuer refuses the exchange
        mine, theirs = begin(client, console), None
        with httpx.Client() as other:
            theirs = authorize(other, begin(other, console))
        answer = callback(client, console, {"code": theirs["code"], "state": authorize(client, mine)["state"]})
        assert answer.status_code == 401 and issuer.refusals[-1] == "code_verifier"
        assert COOKIE not in client.cookies

        # the user denies at the issuer
        issuer.deny = True
        try:
            answer = callback(client, console, authorize(client, begin(client, console)))
        finally:
            issuer.deny = False
        assert answer.status_code == 401 and "the user said no" in answer.text
    problems = [e.problem or "" for e in audited_callbacks(console, redis_url, 401, 5)]
    assert len(problems) == 5 and all(p.startswith("sign-in refused") for p in problems), problems


def sign_in(client: httpx.Client, console: Running) -> None:
    """The whole flow, to a signed-in client."""
    assert callback(client, console, authorize(client, begin(client, console))).status_code == 200


def test_the_tokens_scopes_decide_the_controls(console: Running, issuer: OAuthIssuer) -> None:
    page = f"{console.base}/console/incidents/{quote(OPEN_ID, safe='')}"
    with httpx.Client() as operator, httpx.Client() as viewer:
        sign_in(operator, console)
        assert 'id="acknowledge"' in operator.get(page).text
        issuer.scope = READ  # the issuer grants this user less than the console asks for
        try:
            sign_in(viewer, console)
        finally:
            issuer.scope = " ".join(sorted(ALL))
        shown = viewer.get(page)
        assert shown.status_code == 200 and 'id="acknowledge"' not in shown.text and 'class="actions"' not in shown.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', shown.text)
        assert csrf is not None
        refused = viewer.post(f"{console.base}/console/api/incidents/{quote(OPEN_ID, safe='')}/acknowledge",
                              json={}, headers={CSRF_HEADER: csrf.group(1)})  # fmt: skip
        assert refused.status_code == 403 and "read only" in refused.text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make installs it)")
def test_a_browser_signs_in_with_the_issuer_and_lands_on_the_network_view(console: Running) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{console.base}/console")
            page.click("#oauth-sign-in")
            expect(page.locator("#signed-in")).to_have_text(SIGNED_IN_AS)
            assert urlsplit(page.url).path == "/console"
            expect(page.locator("#counts")).to_be_visible()
            cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        finally:
            browser.close()
