"""Services (rApps) registered with the policy management API v2, as the O-RAN SC policy management service
keeps them: a registration names a callback URL and a keep-alive interval (0: not supervised). A supervised
service that neither calls keep-alive nor puts or deletes one of its policies within its interval has
expired: `ServiceSupervision` deletes its policies, a bounded number per sweep, then the registration.

A record (JSON in HASH_RAPP_SERVICES, field = service id) is the registration plus `last_activity_s` (Unix
seconds), so that supervision carries on over an rApp restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ranomaly_contracts.redis_client import REDIS_ERRORS, AsyncRedis
from ranomaly_contracts.sdl import as_text
from rapp.a1.policies import PolicyError, PolicyRegistry

log = structlog.get_logger(__name__)


def _integral(value: Any) -> Any:
    """A number with no fraction as an int (JSON Schema's integer: 60.0 is one), anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class ServiceRegistration(BaseModel):
    """`service_registration_info`: one service's registration."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"service_id": "energy-saver", "keep_alive_interval_seconds": 60, "callback_url": "http://saver:8080/ric"}
    ]})  # fmt: skip
    service_id: str = Field(min_length=1, max_length=256, description="identity of the service")
    callback_url: str = Field("", max_length=2048, description="kept and shown; the rApp calls no callback")
    keep_alive_interval_seconds: Annotated[int, BeforeValidator(_integral)] = Field(
        0, ge=0, le=2**63 - 1, description="0: not supervised; else deregistered when silent this long"
    )


class ServiceRegistry:
    """The registered services, kept in Redis; `clock` gives Unix seconds."""

    def __init__(self, redis: AsyncRedis, key: str, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._key = key
        self._clock = clock
        self._records: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        """Read every stored registration."""
        try:
            stored = await self._redis.hgetall(self._key)
        except REDIS_ERRORS as exc:
            raise PolicyError(503, f"service registry unavailable: {exc}") from None
        self._records = {as_text(key): json.loads(value) for key, value in stored.items()}

    def status(self, service_id: str | None = None) -> list[dict[str, Any]]:
        """`service_status` of every service (or of `service_id` alone; unknown: 404)."""
        if service_id is not None and service_id not in self._records:
            raise PolicyError(404, f"service {service_id[:256]!r} is not registered")
        now = self._clock()
        return [
            {
                "service_id": sid,
                "callback_url": r["callback_url"],
                "keep_alive_interval_seconds": r["keep_alive_interval_seconds"],
                "time_since_last_activity_seconds": max(0, int(now - r["last_activity_s"])),
            }  # fmt: skip
            for sid, r in sorted(self._records.items())
            if service_id is None or sid == service_id
        ]

    async def put(self, registration: ServiceRegistration) -> bool:
        """Register a service, or update its registration (its timer restarts); True if it is new."""
        created = registration.service_id not in self._records
        await self._store(registration.service_id, {**registration.model_dump(), "last_activity_s": self._clock()})
        log.info("a1_service_registered", service_id=registration.service_id, created=created,
                 keep_alive_interval_s=registration.keep_alive_interval_seconds)  # fmt: skip
        return created

    async def keepalive(self, service_id: str) -> None:
        """Restart a registered service's timer (unknown: 404)."""
        if service_id not in self._records:
            raise PolicyError(404, f"service {service_id[:256]!r} is not registered")
        await self.touch(service_id)

    async def touch(self, service_id: str) -> None:
        """A registered service acted (a keep-alive, a put or delete of its policy); others are ignored."""
        record = self._records.get(service_id)
        if record is not None:
            await self._store(service_id, {**record, "last_activity_s": self._clock()})

    async def delete(self, service_id: str) -> None:
        """Remove a registration (unknown: 404)."""
        if service_id not in self._records:
            raise PolicyError(404, f"service {service_id[:256]!r} is not registered")
        try:
            await self._redis.hdel(self._key, service_id)
        except REDIS_ERRORS as exc:
            raise PolicyError(503, f"service registry unavailable: {exc}") from None
        del self._records[service_id]
        log.info("a1_service_deregistered", service_id=service_id)

    def expired(self) -> list[str]:
        """Supervised services silent for longer than their interval, longest silent first."""
        now = self._clock()
        silent = [(r["last_activity_s"] + r["keep_alive_interval_seconds"], sid) for sid, r in self._records.items()
                  if r["keep_alive_interval_seconds"] > 0]  # fmt: skip
        return [sid for deadline, sid in sorted(silent) if deadline < now]

    async def _store(self, service_id: str, record: dict[str, Any]) -> None:
        try:
            await self._redis.hset(self._key, service_id, json.dumps(record))
        except REDIS_ERRORS as exc:
            raise PolicyError(503, f"service registry unavailable: {exc}") from None
        self._records[service_id] = record


async def remove_service(services: ServiceRegistry, policies: PolicyRegistry, service_id: str, limit: int) -> bool:
    """Delete up to `limit` policies of a service, then (all gone) its registration; True once it is removed."""
    for policy_id in policies.ids(service_id=service_id)[:limit]:
        try:
            await policies.delete(policy_id)
        except PolicyError as exc:
            if exc.status != 404:  # 404: deleted meanwhile
                raise
        log.info("a1_service_policy_removed", service_id=service_id, policy_id=policy_id)
    if policies.ids(service_id=service_id):
        return False
    with contextlib.suppress(PolicyError):
        await services.delete(service_id)
    return True


class ServiceSupervision:
    """Every `interval_s`, removes the expired services: at most `batch` policy deletes per sweep, so that a
    service with many policies is removed over several sweeps and never holds up the policy API for long."""

    def __init__(self, services: ServiceRegistry, policies: PolicyRegistry, interval_s: float, batch: int) -> None:
        self.services = services
        self.policies = policies
        self.interval_s = interval_s
        self.batch = batch
        self.removed = 0  # services removed because their keep-alive lapsed

    async def sweep(self) -> int:
        """One pass; how many policies it deleted."""
        budget = self.batch
        for service_id in self.services.expired():
            if budget <= 0:
                break
            before = len(self.policies.ids(service_id=service_id))
            try:
                done = await remove_service(self.services, self.policies, service_id, budget)
            except PolicyError as exc:  # the Near-RT side or the store: the next sweep tries again
                log.warning("a1_service_expiry_failed", service_id=service_id, problem=exc.detail)
                break
            budget -= before - len(self.policies.ids(service_id=service_id))
            if done:
                self.removed += 1
                log.warning("a1_service_expired", service_id=service_id, policies_removed=before)
        return self.batch - budget

    async def run(self, stop: asyncio.Event, ready: Callable[[], bool]) -> None:
        """Sweep every interval until `stop`, once `ready()` (the stored policies and services are loaded)."""
        while not stop.is_set():
            if ready():
                await self.sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
