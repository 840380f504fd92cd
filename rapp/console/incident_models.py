"""Response models of the console's incident routes (`Incident.to_json()` as OpenAPI declares it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class IncidentOut(BaseModel):
    """One incident: its cell and node, span, scores, attribution, root-cause kind and the operators' notes."""

    model_config = {"json_schema_extra": {"examples": [{
        "incident_id": "gnb-001/c1/1796601600000", "cell_id": "c1", "node_id": "gnb-001",
        "opened_ms": 1796601600000, "last_ms": 1796602500000, "duration_s": 900.0, "state": "closed",
        "close_reason": "recovered", "peak_score": 41.2, "latest_score": 3.1, "model_version": "v3", "events": 4,
        "attribution": [{"measurement": "DRB.UEThpDl", "share": 0.7}], "kind": "congestion",
        "kind_confidence": 0.82, "operator": {"review": "new", "notes": []}}]}}  # fmt: skip
    incident_id: str
    cell_id: str
    node_id: str
    opened_ms: int = Field(description="its first anomalous period's start (ms since the epoch)")
    last_ms: int = Field(description="its last anomalous period's start (closed) or latest event's (open)")
    duration_s: float
    state: Literal["open", "closed"]
    close_reason: str
    peak_score: float | None
    latest_score: float | None
    model_version: str
    events: int
    attribution: list[dict[str, Any]]
    kind: str
    kind_confidence: float | None
    operator: dict[str, Any] = Field(description="acknowledgement, notes and verdict")


class IncidentPage(BaseModel):
    """A page of incidents and the cursor of the next (null: the last page)."""

    incidents: list[IncidentOut]
    next_cursor: str | None
