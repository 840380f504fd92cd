"""Maintenance silences: an A1 instance of the anomaly policy type (20100, `xapp/policy/types.py`) with
`enabled: false` scoped to one node or one cell, put through the rApp's policy registry with an expiry stored
in its record (`expires_ms`), so a restarted rApp still knows it. `run()` deletes every expired policy, on the
Near-RT side and from the store; an operator may lift a silence earlier.

A silence's policy id is `silence.<node|cell>.<id>`: silencing the same node or cell again replaces its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field

from rapp.a1.policies import PolicyError, PolicyInfo, PolicyRegistry
from rapp.jobs import POLICY_TYPE_ID

log = structlog.get_logger(__name__)

PREFIX = "silence."
SERVICE_ID = "ranomaly-console"  # the service_id the console's silences carry
MINUTES_MAX = 7 * 24 * 60
_ID = re.compile(r"^[A-Za-z0-9._:~-]{1,200}$")  # a policy id's characters (PolicyInfo)
TARGET_MAX = 200 - len(f"{PREFIX}node.")  # a target's characters: its silence's policy id holds at most 200


class SilenceBody(BaseModel):
    """A maintenance silence asked for: a node or a cell, for so many minutes."""

    scope: Literal["node", "cell"]
    target: str = Field(min_length=1, max_length=TARGET_MAX, pattern=r"^[A-Za-z0-9._:~-]+$")  # a policy id's
    minutes: float = Field(gt=0, le=MINUTES_MAX)
    by: str | None = Field(None, min_length=1, max_length=80)


def silence_id(scope: str, target: str) -> str:
    """The policy id of a node's or a cell's silence (PolicyError 400 when the id cannot hold it)."""
    if not _ID.match(target):
        raise PolicyError(400, f"target: {target[:80]!r} holds characters an A1 policy id cannot")
    return f"{PREFIX}{scope}.{target}"


def silence_json(record: dict[str, Any]) -> dict[str, Any]:
    """A silence as the console shows it."""
    scope, target = record["policy_id"][len(PREFIX) :].split(".", 1)
    return {"policy_id": record["policy_id"], "scope": scope, "target": target, "expires_ms": record["expires_ms"],
            "by": record["service_id"][len(SERVICE_ID) + 1 :], "since": record["last_modified"]}  # fmt: skip


class Silences:
    """The console's silences over the rApp's policy registry."""

    def __init__(self, registry: PolicyRegistry, every_s: float = 1.0) -> None:
        self._registry = registry
        self._every_s = every_s

    def all(self) -> list[dict[str, Any]]:
        """The silences in place, soonest to expire first."""
        records = [self._registry.get(pid) for pid in self._registry.ids(str(POLICY_TYPE_ID))]
        silences = [silence_json(r) for r in records if r["policy_id"].startswith(PREFIX) and "expires_ms" in r]
        return sorted(silences, key=lambda s: s["expires_ms"])

    async def silence(self, body: SilenceBody, actor: str) -> dict[str, Any]:
        """Put (or extend) a silence; PolicyError when refused."""
        who = actor if body.by is None else f"{body.by} via {actor}"
        policy_id = silence_id(body.scope, body.target)
        scope = {"nodes" if body.scope == "node" else "cells": [body.target]}
        data = {"enabled": False, "scope": scope}
        info = PolicyInfo(ric_id=self._registry.ric_id, policy_id=policy_id, policytype_id=str(POLICY_TYPE_ID),
                          service_id=f"{SERVICE_ID}:{who}"[:256], policy_data=data)  # fmt: skip
        expires_ms = int(time.time() * 1000 + body.minutes * 60_000)
        await self._registry.put(info, expires_ms=expires_ms)
        log.info("console_silence_put", policy_id=policy_id, expires_ms=expires_ms, by=who)
        return silence_json(self._registry.get(policy_id))

    async def lift(self, policy_id: str) -> None:
        """End a silence now; PolicyError 404 when there is none of that id."""
        if not policy_id.startswith(PREFIX):
            raise PolicyError(404, f"{policy_id[:120]!r} is not a silence")
        await self._registry.delete(policy_id)

    async def expire(self) -> int:
        """Delete every policy whose expiry has passed; how many went (a failed delete is retried next time)."""
        gone = 0
        for policy_id in self._registry.expired(int(time.time() * 1000)):
            try:
                await self._registry.delete(policy_id)
            except PolicyError as exc:
                log.warning("console_silence_expiry_failed", policy_id=policy_id, problem=exc.detail)
                continue
            gone += 1
            log.info("console_silence_expired", policy_id=policy_id)
        return gone

    async def run(self, stop: asyncio.Event) -> None:
        """Expire silences every `every_s` seconds until stop is set."""
        while not stop.is_set():
            await self.expire()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every_s)
