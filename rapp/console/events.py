"""Related incidents grouped into network events: incidents that start together on cells of one node, with
the same measurements involved, are one event (a transport fault on a node is one event, not twelve alarms).

Density clustering (scikit-learn's DBSCAN, `min_samples` 2) over a precomputed distance per node: the gap
between two incidents' openings in units of `window_s`, plus `measurement_weight` times the Jaccard distance
of their attributed measurements (0 when either has none). Two incidents within `eps` (1) of each other, or
chained through others, are one event; an incident near none stays on its own. The topology the data holds is
the node (cells carry no area), so incidents of different nodes are never grouped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN

from rapp.console.incidents import Incident

EPS = 1.0


@dataclass(frozen=True, slots=True)
class Grouping:
    """How close two incidents must be to share an event."""

    window_s: float = 600.0  # openings this far apart are at the edge of one event
    measurement_weight: float = 1.0  # disjoint measurements push two incidents to the edge of one event


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """Incidents of one node that started together."""

    incidents: tuple[Incident, ...]  # in opening order

    @property
    def event_id(self) -> str:
        """The node and the first opening: `<node>@<ms>`."""
        return f"{self.incidents[0].node_id}@{self.incidents[0].opened_ms}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        first = self.incidents[0]
        measurements = sorted({str(a["measurement"]) for i in self.incidents for a in i.attribution})
        return {"event_id": self.event_id, "node_id": first.node_id, "opened_ms": first.opened_ms,
                "last_ms": max(i.last_ms for i in self.incidents),
                "state": "open" if any(i.state == "open" for i in self.incidents) else "closed",
                "cells": sorted({i.cell_id for i in self.incidents}), "measurements": measurements,
                "incidents": [i.incident_id for i in self.incidents]}  # fmt: skip


def _measurements(incident: Incident) -> frozenset[str]:
    return frozenset(str(a["measurement"]) for a in incident.attribution)


def distances(incidents: Sequence[Incident], grouping: Grouping) -> np.ndarray:
    """The pairwise distances of one node's incidents."""
    opened = np.array([i.opened_ms for i in incidents], dtype=np.float64) / 1000 / grouping.window_s
    apart = np.abs(opened[:, None] - opened[None, :])
    sets = [_measurements(i) for i in incidents]
    jaccard = np.array([[1 - len(a & b) / len(a | b) if a and b else 0.0 for b in sets] for a in sets])
    return apart + grouping.measurement_weight * jaccard


def network_events(incidents: Sequence[Incident], grouping: Grouping | None = None) -> list[NetworkEvent]:
    """The events among the incidents (each of two incidents or more), in opening order."""
    chosen = grouping or Grouping()
    by_node: dict[str, list[Incident]] = {}
    for incident in incidents:
        by_node.setdefault(incident.node_id, []).append(incident)
    events = []
    for members in by_node.values():
        if len(members) < 2:
            continue
        labels = DBSCAN(eps=EPS, min_samples=2, metric="precomputed").fit(distances(members, chosen)).labels_
        for label in set(labels.tolist()) - {-1}:
            grouped = sorted((m for m, g in zip(members, labels, strict=True) if g == label),
                             key=lambda i: (i.opened_ms, i.cell_id))  # fmt: skip
            events.append(NetworkEvent(tuple(grouped)))
    return sorted(events, key=lambda e: (e.incidents[0].opened_ms, e.event_id))


def folded(incidents: Sequence[Incident], events: Sequence[NetworkEvent]) -> list[Incident | NetworkEvent]:
    """The list with each event's incidents folded into one row, where its first listed incident was."""
    event_of = {i.incident_id: e for e in events for i in e.incidents}
    rows: list[Incident | NetworkEvent] = []
    placed: set[str] = set()
    for incident in incidents:
        event = event_of.get(incident.incident_id)
        if event is None:
            rows.append(incident)
        elif event.event_id not in placed:
            placed.add(event.event_id)
            rows.append(event)
    return rows
