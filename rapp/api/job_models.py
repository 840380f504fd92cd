"""Response models of the training and model routes (`rapp.api.jobs`), as OpenAPI declares them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class JobOut(BaseModel):
    """A training or rollback job: its state, log and outcome."""

    model_config = {"json_schema_extra": {"examples": [{
        "id": "train-20261207-040000-1", "kind": "training", "reason": "on demand", "state": "succeeded",
        "created": 1796616000.0, "finished": 1796616300.0, "log": ["exported 1440 periods"],
        "outcome": {"promoted": True, "version": "v4"}, "log_dropped": 0}]}}  # fmt: skip
    id: str
    kind: str = Field(description="training or rollback")
    reason: str
    state: Literal["queued", "running", "succeeded", "rejected", "failed"]
    created: float = Field(description="Unix seconds")
    finished: float | None
    log: list[str]
    outcome: dict[str, Any]
    log_dropped: int = Field(description="older log lines no longer kept")


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    jobs: list[JobOut]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class JobLog(BaseModel):
    """The newest lines of a job's log."""

    id: str
    state: str
    lines: list[str]
    dropped: int


class PromotedModels(BaseModel):
    """The promoted model versions, oldest first."""

    promoted: list[str]


def query(name: str, description: str, minimum: int, maximum: int) -> dict[str, Any]:
    """An integer query parameter's OpenAPI entry (for routes that read it from the request themselves)."""
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
