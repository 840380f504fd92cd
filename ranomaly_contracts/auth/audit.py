"""The audit trail: one record per mutating HTTP request and per refused credential (who, from where, what,
the result), written as a structured log line and appended to a bounded sink (`sdl.STREAM_AUDIT` in Redis,
or the xApp's in-memory list without Redis).
"""

from __future__ import annotations

import json
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import structlog

from ranomaly_contracts.auth.scopes import Principal
from ranomaly_contracts.redis_client import AsyncRedis
from ranomaly_contracts.sdl import AUDIT_MAX, FIELD_DATA

log = structlog.get_logger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited request. JSON: every field by name."""

    at_ms: int  # wall clock when the response was sent
    app: str  # "rapp" | "xapp"
    subject: str  # the token's subject, "api-key", "anonymous" (auth off) or "unauthenticated"
    credential: str  # "token" | "api-key" | "off" | "none"
    client: str  # the peer's address as host:port
    method: str
    path: str
    ids: dict[str, str] = field(default_factory=dict)  # the route's path parameters
    status: int = 0  # the response's HTTP status
    problem: str | None = None  # why the credential was refused (401/403)


def encode_audit(record: AuditRecord) -> bytes:
    """The stream entry of a record."""
    return json.dumps(asdict(record), separators=(",", ":")).encode()


def decode_audit(data: bytes | str) -> AuditRecord:
    """A record read back; ValueError if it is not one."""
    try:
        return AuditRecord(**json.loads(data))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"audit record: {exc}") from exc


class AuditSink(Protocol):
    """Where records are kept (bounded)."""

    async def append_audit(self, entry: bytes) -> None:
        """Append one encoded record."""


class RedisAuditStream:
    """Records appended to a Redis stream, trimmed to about `maxlen` entries."""

    def __init__(self, client: AsyncRedis, key: str, maxlen: int = AUDIT_MAX) -> None:
        self._client, self._key, self._maxlen = client, key, maxlen

    async def append_audit(self, entry: bytes) -> None:
        """XADD with MAXLEN ~."""
        await self._client.xadd(self._key, {FIELD_DATA: entry}, maxlen=self._maxlen, approximate=True)


AUDITED = "audited"  # a route sets `request.state.audited = True` to have a read recorded too (a sign-in)


class AuditMiddleware:
    """ASGI middleware recording every mutating request, every 401/403 and every request a route marked
    `AUDITED` of `app`, once answered."""

    def __init__(self, app: Any, app_name: str, sink: AuditSink) -> None:
        self._app, self._name, self._sink = app, app_name, sink

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500  # unless a response starts

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            if scope["method"] in MUTATING or status in (401, 403) or scope.get("state", {}).get(AUDITED):
                await self._record(scope, status)

    async def _record(self, scope: MutableMapping[str, Any], status: int) -> None:
        state = scope.get("state", {})
        principal: Principal | None = state.get("principal")
        host, port = scope.get("client") or ("", 0)
        record = AuditRecord(
            at_ms=time.time_ns() // 1_000_000, app=self._name,
            subject=principal.subject if principal else "unauthenticated",
            credential=principal.via if principal else state.get("credential", "none"),
            client=f"{host}:{port}", method=scope["method"], path=scope["path"],
            ids={k: str(v) for k, v in scope.get("path_params", {}).items()}, status=status,
            problem=state.get("auth_problem"),
        )  # fmt: skip
        log.info("audit", **asdict(record))
        try:
            await self._sink.append_audit(encode_audit(record))
        except Exception as exc:  # the log line stands; the request is answered already
            log.warning("audit_not_stored", problem=f"{type(exc).__name__}: {exc}")
