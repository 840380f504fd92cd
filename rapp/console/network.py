"""The "network now" view: every cell's latest state grouped by node (the xApp's cell hash,
`ranomaly_contracts.sdl.HASH_CELLS`), the open incidents by kind and the incidents opened per hour
(`rapp.console.incidents`), the model version scoring with its age (the cells' states and the model
registry's manifest), and the Near-RT side's health (the rApp's A1 view, and the xApp's /healthz when
`console_xapp_url` is set).

"Now" is the newest period any cell reported, not the wall clock: replayed or simulated data keeps its own
time, and the alarm rate covers the hours before it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import structlog

from ranomaly_contracts.redis_client import AsyncRedis
from ranomaly_contracts.sdl import CellState, CellStatus, decode_cell_state
from rapp.console.incidents import Incident, IncidentIndex
from rapp.registry import ModelRegistry

log = structlog.get_logger(__name__)

HOUR_MS = 3_600_000
STATUSES = tuple(status.name.lower() for status in CellStatus)


class NetworkView:
    """Builds the network view's JSON from the rApp's objects."""

    def __init__(
        self,
        redis: AsyncRedis,
        cells_key: str,
        index: IncidentIndex,
        registry: ModelRegistry,
        near_rt: Callable[[], dict[str, Any]],
        alarm_hours: int,
        xapp_url: str | None = None,
        http: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=2.0),
    ) -> None:
        self._redis = redis
        self._cells_key = cells_key
        self._index = index
        self._registry = registry
        self._near_rt = near_rt
        self._alarm_hours = alarm_hours
        self._xapp_url = xapp_url
        self._http = http
        self._created: dict[str, str | None] = {}  # model version -> manifest's creation time

    async def cells(self) -> list[CellState]:
        """Every cell's latest state (a malformed entry is logged and left out)."""
        raw = await self._redis.hgetall(self._cells_key)
        states = []
        for cell, value in raw.items():
            try:
                states.append(decode_cell_state(value))
            except ValueError as exc:
                log.warning("console_cell_state_malformed", cell=str(cell), error=str(exc))
        return sorted(states, key=lambda s: (s.node_id, s.cell_id))

    async def build(self) -> dict[str, Any]:
        """The view's JSON."""
        states = await self.cells()
        newest = max((s.period_start_ms for s in states), default=None)
        since = None if newest is None else newest - self._alarm_hours * HOUR_MS
        incidents = await self._index.incidents(since)
        if newest is None:
            newest = max((i.last_ms for i in incidents), default=int(time.time() * 1000))
        return {
            "now_ms": newest,
            "cells": _by_node(states),
            "counts": _counts(states),
            "open_incidents": _open(incidents),
            "alarm_rate": _alarm_rate(incidents, newest, self._alarm_hours),
            "model": await self._model(states),
            "near_rt": {**self._near_rt(), "xapp": await self._xapp()},
        }

    async def _model(self, states: list[CellState]) -> dict[str, Any]:
        versions = Counter(s.model_version for s in states)
        if not versions:
            return {"version": None, "versions": {}, "created": None, "age_s": None}
        version = versions.most_common(1)[0][0]
        if version not in self._created:
            artifact = await self._registry.get(version)
            self._created[version] = None if artifact is None else artifact.manifest.created
        created = self._created[version]
        age = None if created is None else time.time() - datetime.fromisoformat(created).timestamp()
        return {"version": version, "versions": dict(versions), "created": created, "age_s": age}

    async def _xapp(self) -> dict[str, Any] | None:
        if self._xapp_url is None:
            return None
        try:
            async with self._http() as client:
                answer = await client.get(f"{self._xapp_url.rstrip('/')}/healthz")
            body = answer.json()
            return {"reachable": True, "status": body.get("status"), "problems": body.get("problems", []),
                    "model_version": body.get("model_version"), "cells": body.get("cells")}  # fmt: skip
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return {"reachable": False, "status": "unreachable", "problems": [type(exc).__name__]}


def _by_node(states: list[CellState]) -> list[dict[str, Any]]:
    nodes: dict[str, list[dict[str, Any]]] = {}
    for s in states:
        cell = {
            "cell_id": s.cell_id,
            "status": s.status.name.lower(),
            "score": s.score if s.score == s.score else None,
            "incident_id": s.incident_id,
            "period_start_ms": s.period_start_ms,
        }
        nodes.setdefault(s.node_id, []).append(cell)
    return [{"node_id": node, "cells": cells} for node, cells in nodes.items()]


def _counts(states: list[CellState]) -> dict[str, int]:
    counts = Counter(s.status.name.lower() for s in states)
    return {status: counts.get(status, 0) for status in STATUSES}


def _open(incidents: list[Incident]) -> dict[str, Any]:
    opened = [i for i in incidents if i.state == "open"]
    kinds = Counter(i.kind for i in opened)
    return {"total": len(opened), "by_kind": dict(sorted(kinds.items())),
            "incidents": [i.to_json() for i in sorted(opened, key=lambda i: -i.opened_ms)]}  # fmt: skip


def _alarm_rate(incidents: list[Incident], newest_ms: int, hours: int) -> dict[str, Any]:
    """Incidents opened per hour, the newest hour last (the hour holding `newest_ms`)."""
    last = newest_ms - newest_ms % HOUR_MS
    starts = [last - (hours - 1 - h) * HOUR_MS for h in range(hours)]
    counts = Counter((i.opened_ms - i.opened_ms % HOUR_MS) for i in incidents)
    return {"hour_ms": starts, "opened": [counts.get(start, 0) for start in starts]}
