"""A client of a Near-RT RIC's A1-P endpoint in the O-RAN SC flavour: the xApp's own, an O-RAN SC A1
mediator (API root /A1-P/v2) or the O-RAN SC A1 simulator (/a1-p), chosen by base URL and API root.

Transient failures (no connection, timeouts, 5xx) are retried with doubling backoff; a 4xx is final and
raised with the Near-RT side's own explanation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from ranomaly_contracts.tls import ClientTls

log = structlog.get_logger(__name__)


class A1Error(RuntimeError):
    """The Near-RT side refused a request (4xx) or stayed unreachable; `status` is its HTTP status (503 when
    it could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class A1Client:
    """A1-P operations on one Near-RT RIC; over HTTPS (mutual TLS) with an https:// base URL and `tls`; `auth`
    is the rApp's credential there (`rapp.a1.credentials`)."""

    def __init__(
        self,
        base_url: str,
        api_root: str = "/A1-P/v2",
        timeout_s: float = 5.0,
        retries: int = 3,
        tls: ClientTls | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.where = f"{base_url.rstrip('/')}{api_root}"
        verify = True if tls is None else tls.ssl_context()  # an https:// URL: verified, the certificate presented
        self._http = httpx.AsyncClient(base_url=self.where, timeout=timeout_s, verify=verify, auth=auth)
        self._retries = retries

    async def close(self) -> None:
        """Release the connections."""
        await self._http.aclose()

    async def healthy(self) -> bool:
        """Whether the healthcheck answers 200 (one try, no retries)."""
        try:
            return (await self._http.get("/healthcheck")).status_code == 200
        except httpx.HTTPError:
            return False

    async def policy_types(self) -> list[int]:
        """Policy type ids the Near-RT side knows."""
        return [int(t) for t in await self._json("GET", "/policytypes")]

    async def policy_type(self, type_id: int) -> dict[str, Any]:
        """A policy type document: name, description, policy_type_id, create_schema."""
        document: dict[str, Any] = await self._json("GET", f"/policytypes/{type_id}")
        return document

    async def put_type(self, type_id: int, document: dict[str, Any]) -> None:
        """Create a policy type from its document (name, description, policy_type_id, create_schema)."""
        await self._request("PUT", f"/policytypes/{type_id}", document)

    async def instances(self, type_id: int) -> list[str]:
        """Instance ids of a type."""
        return [str(i) for i in await self._json("GET", f"/policytypes/{type_id}/policies")]

    async def instance(self, type_id: int, instance_id: str) -> dict[str, Any]:
        """An instance's body."""
        body: dict[str, Any] = await self._json("GET", f"/policytypes/{type_id}/policies/{instance_id}")
        return body

    async def put(self, type_id: int, instance_id: str, body: dict[str, Any]) -> None:
        """Create or replace an instance."""
        await self._request("PUT", f"/policytypes/{type_id}/policies/{instance_id}", body)

    async def delete(self, type_id: int, instance_id: str) -> None:
        """Delete an instance; one the Near-RT side does not hold counts as deleted."""
        try:
            await self._request("DELETE", f"/policytypes/{type_id}/policies/{instance_id}")
        except A1Error as exc:
            if exc.status != 404:
                raise

    async def status(self, type_id: int, instance_id: str) -> dict[str, Any]:
        """An instance's enforcement status as the Near-RT side reports it."""
        status: dict[str, Any] = await self._json("GET", f"/policytypes/{type_id}/policies/{instance_id}/status")
        return status

    async def _json(self, method: str, path: str) -> Any:
        return (await self._request(method, path)).json()

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        delay = 0.1
        for attempt in range(self._retries + 1):
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                problem, status = f"{type(exc).__name__}: {exc}", 503
            else:
                if response.status_code < 400:
                    return response
                problem, status = _detail(response), response.status_code
                if status < 500:
                    raise A1Error(status, f"Near-RT RIC {self.where} answered {status} to {method} {path}: {problem}")
            if attempt < self._retries:
                log.warning("a1_retry", method=method, path=path, problem=problem, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 2.0)
        raise A1Error(503, f"Near-RT RIC {self.where} unavailable for {method} {path}: {problem}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)[:300]
