"""Response models of the forecast, breach, remediation and drift routes, as OpenAPI declares them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ForecastRound(BaseModel):
    """The latest forecast round, without the values."""

    model_version: str
    period_s: float
    horizon: int = Field(description="periods forecast ahead")
    made_at: str = Field(description="the newest history period the round read (ISO 8601)")
    times: list[str] = Field(description="the forecast periods (ISO 8601)")
    cells: list[str]


class CellForecast(BaseModel):
    """One cell's forecast of every measurement for the next `horizon` periods."""

    cell_id: str
    node_id: str
    model_version: str
    period_s: float
    horizon: int
    made_at: str
    times: list[str]
    forecast: dict[str, list[float]] = Field(description="measurement -> one value per forecast period")


class Limit(BaseModel):
    """A measurement's limit: a forecast beyond it within the horizon is a predicted breach."""

    measurement: str
    direction: Literal["above", "below"]
    threshold: float


class BreachEventOut(BaseModel):
    """A predicted breach opened or closed."""

    event: Literal["open", "close"]
    breach_id: str
    cell_id: str
    node_id: str
    measurement: str
    direction: Literal["above", "below"]
    threshold: float
    breach_at: str
    predicted: float
    opened_at: str
    made_at: str
    model_version: str


class Breaches(BaseModel):
    """The limits in force, the breaches still forecast, and the newest events first."""

    limits: list[Limit]
    active: list[BreachEventOut]
    events: list[BreachEventOut]


class ActionOut(BaseModel):
    """One ranked remediation action (advice only)."""

    rank: int
    id: str
    title: str
    control: str
    oran_control: str
    confidence: float
    rationale: str


class AllAdvice(BaseModel):
    """Every anomaly kind's ranked actions."""

    automatic: Literal[False]
    kinds: dict[str, list[ActionOut]]


class KindAdvice(BaseModel):
    """One anomaly kind's ranked actions."""

    automatic: Literal[False]
    kind: str
    actions: list[ActionOut]


class DriftCheck(BaseModel):
    """The last drift check: every drifted cell and whether it asked for a retraining."""

    checked_at: str
    cells: int
    drifted: dict[str, float] = Field(description="cell -> drift, for cells at or above the threshold")
    share: float
    triggered: bool
