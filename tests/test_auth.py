"""Authentication, authorisation and the audit trail of both apps, with real credentials: tokens signed by a key
pair made here and verified against a JWKS served on loopback (or the public key as a file), the API keys the
apps generate, audit entries read back from a real redis-server."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from structlog.testing import capture_logs

from ranomaly.redis_process import free_port
from ranomaly_contracts.auth.apikey import provision_api_key
from ranomaly_contracts.auth.audit import MUTATING, RedisAuditStream, decode_audit
from ranomaly_contracts.auth.scopes import ADMIN, POLICIES, READ
from ranomaly_contracts.auth.setup import build_guard
from ranomaly_contracts.auth.tokens import InvalidToken, TokenSettings, TokenVerifier
from ranomaly_contracts.sdl import FIELD_DATA, sdl_keys
from rapp.app import RappService
from rapp.settings import RappSettings
from tests.auth_helpers import ISSUER, Issuer, key_header
from tests.test_xapp_service import Running
from tests.waiting import until
from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.redis import RedisDataLayer
from xapp.http import http_app
from xapp.settings import XappSettings

OPEN = {"/healthz", "/readyz", "/metrics", "/A1-P/v2/healthcheck"}  # health stays open by default
PATH_VALUES = {"policy_type_id": "20100", "policytype_id": "20100"}
POLICY = {"enabled": True, "scope": {"nodes": ["gnb-001"]}, "threshold": {"mode": "sigma", "value": 4.0}}
RANKS = [READ, POLICIES, ADMIN]
PLACES = re.compile(r"\{(\w+)(:\w+)?\}")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    yield made
    made.close()


def routes(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, concrete path, scope needed) of every operation in the app's OpenAPI document but health's; each
    declares both security schemes with its scopes: writes to jobs, models and the configuration ADMIN, other
    writes POLICIES."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path in OPEN:
            continue
        concrete = PLACES.sub(lambda m: PATH_VALUES.get(m.group(1), "t1"), path)
        for method, operation in operations.items():
            method, scopes = method.upper(), operation["security"][0]["HTTPBearer"]
            assert operation["security"] == [{"HTTPBearer": scopes}, {"APIKeyHeader": scopes}], (method, path)
            scope = max(scopes, key=RANKS.index)
            if method in MUTATING:
                admin = "/jobs" in path or "/models" in path or path.endswith("/configuration")
                assert scope == (ADMIN if admin else POLICIES), (method, path)
            found.append((method, concrete, scope))
    return found


def body_for(path: str) -> Any:
    if path.endswith("/policies") and "a1-policy" in path:
        return {"ric_id": "ric-1", "policy_id": "p1", "policytype_id": "20100", "policy_data": POLICY}
    return POLICY if "/A1-P/" in path else {}


async def check_matrix(base: str, app: FastAPI, issuer: Issuer, audience: str, problem_json: bool) -> int:
    """Every mutating route: a valid token with its scope passes auth; expired, wrong audience, wrong issuer and
    no credential are 401s with a Bearer challenge, a token without the scope a 403; every read needs a credential
    too. Returns the number of mutating routes."""
    mutating = [(m, p, s) for m, p, s in routes(app) if m in MUTATING]
    cases = {
        "expired": (401, issuer.token(audience, [ADMIN], exp=1_700_000_000)),
        "wrong audience": (401, issuer.token("someone-else", [ADMIN])),
        "wrong issuer": (401, issuer.token(audience, [ADMIN], iss="https://other.test")),
        "garbage": (401, "not.a.token"),
    }
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for method, path, scope in mutating:
            request: dict[str, Any] = {"json": body_for(path)} if method != "DELETE" else {}
            none = await client.request(method, path, **request)
            assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer"), (path, none.text)
            for case, (status, token) in cases.items():
                refused = await client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **request)
                assert refused.status_code == status, (method, path, case, refused.text)
                assert refused.headers["www-authenticate"].startswith("Bearer")
            reader = {"Authorization": f"Bearer {issuer.token(audience, [READ])}"}
            forbidden = await client.request(method, path, headers=reader, **request)
            assert forbidden.status_code == 403 and "insufficient_scope" in forbidden.headers["www-authenticate"]
            assert scope in forbidden.json()["detail"]
            if problem_json:
                assert forbidden.headers["content-type"] == "application/problem+json"
            late = int(time.time()) - 10  # expired, within the clock-skew leeway
            holder = {"Authorization": f"Bearer {issuer.token(audience, [scope], exp=late)}"}
            passed = await client.request(method, path, headers=holder, **request)
            assert passed.status_code not in (401, 403), (method, path, passed.text)
        for method, path, _ in routes(app):
            if method == "GET":
                assert (await client.get(path)).status_code == 401, path
    return len(mutating)


async def audit_entries(redis_url: str, key: str) -> list[dict[str, Any]]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [vars_of(decode_audit(fields[FIELD_DATA.encode()])) for _, fields in await client.xrange(key)]
    finally:
        await client.aclose()


def vars_of(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


@pytest.fixture
async def token_rapp(redis_url: str, issuer: Issuer, tmp_path: Path) -> AsyncIterator[tuple[RappService, str]]:
    """An rApp taking tokens of the issuer (keys from its JWKS URL), no API key."""
    settings = RappSettings(redis_url=redis_url, http_host="127.0.0.1", port=0, a1_retries=0,
                            a1_base_url=f"http://127.0.0.1:{free_port()}", report_summaries=False,
                            auth_issuer=ISSUER, auth_jwks_url=f"{issuer.url}/jwks")  # fmt: skip
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    service = RappService(settings, prefix=prefix)
    task = asyncio.create_task(service.run())
    await service.started.wait()
    yield service, sdl_keys(prefix).audit
    service.stop()
    await asyncio.wait_for(task, 20)


async def test_every_rapp_route_needs_a_valid_token_with_its_scope_and_mutations_are_audited(
    redis_url: str, issuer: Issuer, token_rapp: tuple[RappService, str]
) -> None:
    service, audit_key = token_rapp
    assert service.guard.api_key is None, "with an issuer and no key file named, tokens only"
    base = f"http://127.0.0.1:{service.http_port}"
    count = await check_matrix(base, service.app(), issuer, "ranomaly-rapp", problem_json=True)
    assert count >= 4, "PUT and DELETE policies, POST training, POST rollback at least"
    entries = await audit_entries(redis_url, audit_key)
    passed = [e for e in entries if e["subject"] == "operator-1" and e["status"] not in (401, 403)]
    assert {(e["method"], e["credential"]) for e in passed} >= {("PUT", "token"), ("POST", "token")}
    refused = [e for e in entries if e["status"] == 401]
    assert refused and all(e["subject"] == "unauthenticated" and e["problem"] for e in refused)
    assert any("ExpiredSignature" in e["problem"] for e in refused)
    assert all(e["client"].startswith("127.0.0.1:") and e["app"] == "rapp" for e in entries)
    rollback = next(e for e in passed if e["path"].endswith("/rollback"))
    assert rollback["ids"] == {"version": "t1"}
    assert issuer.jwks_fetched >= 1


async def test_every_xapp_a1_route_needs_a_valid_token_with_its_scope_and_writes_are_audited(
    redis_url: str, issuer: Issuer, tmp_path: Path
) -> None:
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(issuer.public_pem())
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = XappSettings(e2_targets=[f"127.0.0.1:{free_port()}"], http_host="127.0.0.1", a1_port=0,
                            auth_issuer=ISSUER, auth_public_key_file=key_file)  # fmt: skip
    xapp = Running(XappService(settings, RedisDataLayer(redis_url, prefix=prefix)))
    try:
        await xapp.service.started.wait()
        base = f"http://127.0.0.1:{xapp.service.http_port}"
        app = http_app(xapp.service)
        # types and instances (PUT, DELETE) and POST /data-delivery
        assert await check_matrix(base, app, issuer, "ranomaly-xapp", problem_json=False) == 5
        async with httpx.AsyncClient(base_url=base) as client:
            refused = await client.put("/A1-P/v2/policytypes/20100/policies/x", json={})
        assert set(refused.json()) == {"detail"}, "the A1-P error style"
        entries = await audit_entries(redis_url, sdl_keys(prefix).audit)
        assert {e["method"] for e in entries if e["status"] in (200, 201, 202, 204)} >= {"PUT", "DELETE"}
        assert all(e["app"] == "xapp" for e in entries)
    finally:
        await xapp.stop()


async def test_the_generated_api_key_is_private_accepted_and_wrong_keys_are_refused(xapp_state_dir: Path) -> None:
    layer = MemoryDataLayer()
    with capture_logs() as logs:
        xapp = Running(XappService(XappSettings(e2_targets=[f"127.0.0.1:{free_port()}"], http_host="127.0.0.1",
                                                a1_port=0), layer))  # fmt: skip
    key_file = xapp_state_dir / "api-key"
    key = key_file.read_text().strip()
    try:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        ready = next(line for line in logs if line["event"] == "api_key_ready")
        assert ready["path"] == str(key_file) and ready["generated"] is True
        assert key not in json.dumps(logs, default=str), "the key is never logged"
        await xapp.service.started.wait()
        path = "/A1-P/v2/policytypes/20100/policies/ops-1"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{xapp.service.http_port}", timeout=10) as client:
            assert (await client.put(path, json=POLICY, headers=key_header(key_file))).status_code == 202
            wrong = await client.put(path, json=POLICY, headers={"X-API-Key": key[:-1] + "x"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
            bearer = await client.put(path, json=POLICY, headers={"Authorization": f"Bearer {key}"})
            assert bearer.status_code == 401 and "no issuer" in bearer.json()["detail"]
        await until(lambda: len(layer.audit) == 3, "the last request audited (once answered)")
        records = [decode_audit(entry) for entry in layer.audit]  # no Redis: the in-memory trail
        assert [(r.subject, r.credential, r.status) for r in records] == [
            ("api-key", "api-key", 202),
            ("unauthenticated", "api-key", 401),
            ("unauthenticated", "token", 401),
        ]
    finally:
        await xapp.stop()
    assert provision_api_key(key_file) == key, "the key stays the same across starts"


async def test_the_rapp_pushes_policies_to_the_xapp_with_a_client_credentials_token(
    redis_url: str, issuer: Issuer, tmp_path: Path
) -> None:
    xapp = Running(XappService(XappSettings(e2_targets=[f"127.0.0.1:{free_port()}"], http_host="127.0.0.1",
                                            a1_port=0, auth_issuer=ISSUER, auth_jwks_url=f"{issuer.url}/jwks"),
                               MemoryDataLayer()))  # fmt: skip
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n")
    await xapp.service.started.wait()
    rapp_settings = RappSettings(
        redis_url=redis_url, http_host="127.0.0.1", port=0, a1_base_url=f"http://127.0.0.1:{xapp.service.http_port}",
        a1_retries=1, a1_sync_interval_s=0.2, report_summaries=False, work_dir=tmp_path / "rapp",
        a1_token_url=f"{issuer.url}/token", a1_client_id="rapp", a1_client_secret_file=secret,
    )  # fmt: skip
    rapp = RappService(rapp_settings, prefix=f"test-{uuid.uuid4().hex[:8]}")
    task = asyncio.create_task(rapp.run())
    try:
        await rapp.started.wait()
        rapp_key = tmp_path / "rapp" / "api-key"
        assert stat.S_IMODE(rapp_key.stat().st_mode) == 0o600, "the rApp's own key, generated at start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rapp.http_port}", headers=key_header(rapp_key),
                                     timeout=20) as client:  # fmt: skip
            for n in (1, 2):
                info = {"ric_id": "ric-1", "policy_id": f"p{n}", "policytype_id": "20100", "policy_data": POLICY}
                answer = await client.put("/a1-policy/v2/policies", json=info)
                assert answer.status_code == 201, answer.text
        reader = {"Authorization": f"Bearer {issuer.token('ranomaly-xapp', [READ])}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{xapp.service.http_port}", headers=reader) as near_rt:
            assert (await near_rt.get("/A1-P/v2/policytypes/20100/policies/p2")).json() == POLICY
        assert issuer.tokens_issued == 1, "the token is kept until near its expiry"
    finally:
        rapp.stop()
        await asyncio.wait_for(task, 20)
        await xapp.stop()


def test_auth_off_needs_saying_and_warns_at_every_start(tmp_path: Path) -> None:
    settings = XappSettings(auth="off", state_dir=tmp_path)
    for _ in range(2):
        with capture_logs() as logs:
            guard = build_guard(settings.auth_settings(), "xapp")
        assert not guard.enabled and [line["log_level"] for line in logs if line["event"] == "auth_off"] == ["warning"]
    assert not (tmp_path / "api-key").exists(), "no key is made while auth is off"
    with pytest.raises(ValueError, match="need auth_issuer"):
        build_guard(XappSettings(auth_jwks_url="http://127.0.0.1:1/jwks").auth_settings(), "xapp")


async def test_health_and_metrics_move_to_a_port_of_their_own_and_stay_open(redis_url: str, tmp_path: Path) -> None:
    xapp = Running(XappService(XappSettings(e2_targets=[f"127.0.0.1:{free_port()}"], http_host="127.0.0.1", a1_port=0,
                                            health_port=0), MemoryDataLayer()))  # fmt: skip
    rapp = RappService(RappSettings(redis_url=redis_url, http_host="127.0.0.1", port=0, health_port=0,
                                    a1_base_url=f"http://127.0.0.1:{free_port()}", a1_retries=0,
                                    report_summaries=False), prefix=f"test-{uuid.uuid4().hex[:8]}")  # fmt: skip
    task = asyncio.create_task(rapp.run())
    try:
        await xapp.service.started.wait()
        await rapp.started.wait()
        apps = [(xapp.service.http_port, xapp.service.http.health_port, "/A1-P/v2/policytypes"),
                (rapp.http_port, rapp.health_port, "/a1-policy/v2/policies")]  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as client:
            for main, health, guarded in apps:
                assert health is not None and health != main
                for path in ("/healthz", "/readyz", "/metrics"):
                    assert (await client.get(f"http://127.0.0.1:{health}{path}")).status_code in (200, 503), path
                    assert (await client.get(f"http://127.0.0.1:{main}{path}")).status_code == 404, path
                assert (await client.get(f"http://127.0.0.1:{health}{guarded}")).status_code == 404
                assert (await client.get(f"http://127.0.0.1:{main}{guarded}")).status_code == 401
    finally:
        rapp.stop()
        await asyncio.wait_for(task, 20)
        await xapp.stop()


async def test_a_rotated_issuer_key_is_fetched_and_shared_secret_tokens_are_refused() -> None:
    issuer = Issuer()
    try:
        keys = f"{issuer.url}/jwks"
        verifier = TokenVerifier(TokenSettings(ISSUER, "ranomaly-xapp", jwks_url=keys, refetch_cooldown_s=0))
        assert (await verifier.verify(issuer.token("ranomaly-xapp", [READ]))).subject == "operator-1"
        issuer.rotate("k2")
        rotated = await verifier.verify(issuer.token("ranomaly-xapp", [POLICIES], sub="ops-2"))
        assert (rotated.subject, rotated.scopes, issuer.jwks_fetched) == ("ops-2", {POLICIES}, 2), "kid k2: fetched"
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "ranomaly-xapp", "sub": "forger", "exp": now + 60, "scope": ADMIN}
        forged = jwt.encode(claims, "a guessed shared secret of 32 bytes", algorithm="HS256", headers={"kid": "k2"})
        with pytest.raises(InvalidToken, match="alg"):
            await verifier.verify(forged)
    finally:
        issuer.close()


async def test_the_audit_stream_stays_bounded(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    key = f"test-{uuid.uuid4().hex[:8]}:audit"
    try:
        stream = RedisAuditStream(client, key, maxlen=50)
        for _ in range(600):
            await stream.append_audit(b"{}")
        assert 50 <= await client.xlen(key) < 600, "trimmed (MAXLEN ~ trims whole nodes: a few more may stay)"
    finally:
        await client.delete(key)
        await client.aclose()
