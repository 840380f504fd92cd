"""The incidents the collector recorded, one summary each: from their events in the history folder
(`rapp.history.read_incidents`), with the root-cause kind when the reports' classifier is set, and the
operators' notes (`rapp.console.notes`). Filters and sorting for the list page and `GET /api/v1/incidents`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ranomaly_contracts.sdl import IncidentEvent
from rapp.console.notes import IncidentNotes, notes_json
from rapp.history import read_incidents
from rapp.reports import FactBuilder
from rapp.reports.facts import UNCLASSIFIED

SORTS = ("opened", "peak_score", "duration", "cell")


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident as the console lists it."""

    incident_id: str
    cell_id: str
    node_id: str
    opened_ms: int
    last_ms: int  # the last anomalous period (closed) or the latest event's period (open)
    state: str  # "open" | "closed"
    close_reason: str
    peak_score: float
    latest_score: float
    model_version: str
    events: int
    attribution: tuple[dict[str, float | str], ...]
    kind: str = UNCLASSIFIED
    kind_confidence: float | None = None
    notes: IncidentNotes = field(default_factory=IncidentNotes)

    @property
    def duration_s(self) -> float:
        """From its first to its last anomalous period's start."""
        return (self.last_ms - self.opened_ms) / 1000

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "incident_id": self.incident_id,
            "cell_id": self.cell_id,
            "node_id": self.node_id,
            "opened_ms": self.opened_ms,
            "last_ms": self.last_ms,
            "duration_s": self.duration_s,
            "state": self.state,
            "close_reason": self.close_reason,
            "peak_score": _finite(self.peak_score),
            "latest_score": _finite(self.latest_score),
            "model_version": self.model_version,
            "events": self.events,
            "attribution": list(self.attribution),
            "kind": self.kind,
            "kind_confidence": self.kind_confidence,
            "operator": notes_json(self.notes),
        }


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def summarize(events: Sequence[IncidentEvent]) -> Incident:
    """One incident from its events (period order)."""
    latest = events[-1]
    closing = next((e for e in events if e.event == "close"), None)
    attributed = next((e.attribution for e in reversed(events) if e.attribution), ())
    last = closing.closed_ms if closing is not None and closing.closed_ms is not None else latest.period_start_ms
    return Incident(
        incident_id=latest.incident_id,
        cell_id=latest.cell_id,
        node_id=latest.node_id,
        opened_ms=min(e.opened_ms for e in events),
        last_ms=last,
        state="open" if closing is None else "closed",
        close_reason="" if closing is None else closing.reason,
        peak_score=max(e.peak_score for e in events),
        latest_score=latest.score,
        model_version=latest.model_version,
        events=len(events),
        attribution=tuple(
            {"measurement": a.measurement, "share": a.share, "deviation": a.deviation} for a in attributed
        ),  # fmt: skip
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """What the list shows: each given field must match; `review` is the operators' word (new, acknowledged,
    false_alarm, confirmed)."""

    state: str | None = None
    kind: str | None = None
    cell: str | None = None
    node: str | None = None
    review: str | None = None
    sort: str = "opened"
    descending: bool = True

    def keep(self, incident: Incident) -> bool:
        """Whether the incident passes every filter."""
        wanted = {"state": self.state, "kind": self.kind, "cell_id": self.cell, "node_id": self.node}
        if any(value and getattr(incident, name) != value for name, value in wanted.items()):
            return False
        return not self.review or incident.notes.review() == self.review

    def order(self, incidents: list[Incident]) -> list[Incident]:
        """The incidents sorted by `sort` (an unknown word sorts by opening time)."""
        key: Callable[[Incident], Any] = {
            "peak_score": lambda i: _finite(i.peak_score) or 0.0,
            "duration": lambda i: i.duration_s,
            "cell": lambda i: i.cell_id,
        }.get(self.sort, lambda i: i.opened_ms)
        return sorted(incidents, key=lambda i: (key(i), i.incident_id), reverse=self.descending)


class IncidentIndex:
    """Reads the incidents from the history folder; remembers the kinds the classifier gave (a closed
    incident's kind never changes, an open one's is asked again when it has new events)."""

    def __init__(self, history_dir: Path, facts: FactBuilder) -> None:
        self.history_dir = history_dir
        self.facts = facts
        self._kinds: dict[str, tuple[int, str, float | None]] = {}  # id -> (events seen, kind, confidence)

    async def incidents(self, since_ms: int | None = None) -> list[Incident]:
        """Every incident with an event since `since_ms` (None: all), with its kind (period order of opening)."""
        return await asyncio.to_thread(self._read, since_ms)

    def _read(self, since_ms: int | None) -> list[Incident]:
        start = None if since_ms is None else pd.Timestamp(since_ms, unit="ms", tz="UTC")
        by_id: dict[str, list[IncidentEvent]] = {}
        for event in read_incidents(self.history_dir, start=start):
            by_id.setdefault(event.incident_id, []).append(event)
        self._classify(by_id)
        found = []
        for incident_id, events in by_id.items():
            incident = summarize(events)
            _, kind, confidence = self._kinds.get(incident_id, (0, UNCLASSIFIED, None))
            found.append(replace(incident, kind=kind, kind_confidence=confidence))
        return sorted(found, key=lambda i: i.opened_ms)

    def _classify(self, by_id: dict[str, list[IncidentEvent]]) -> None:
        if self.facts.classifier is None:
            return
        stale = [events for key, events in by_id.items() if self._kinds.get(key, (0,))[0] != len(events)]
        for sheet in self.facts.many(stale):
            events = len(by_id[sheet.incident_id])
            self._kinds[sheet.incident_id] = (events, sheet.root_cause.kind, sheet.root_cause.confidence)


def with_notes(incidents: list[Incident], notes: dict[str, IncidentNotes]) -> list[Incident]:
    """The incidents with the operators' notes of each."""
    return [replace(i, notes=notes[i.incident_id]) if i.incident_id in notes else i for i in incidents]
