"""What an anomaly policy names that the xApp does not know now: cells, nodes and measurements.

A type-20100 instance may name cells and nodes that have not reported yet, and per-measurement thresholds
for measurements the scoring model lacks. It is accepted (they may come later); its A1 status then carries
`warnings`, one per field, naming them. The scoring loop publishes a `KnownNames` snapshot; the A1 handler
reads it on its own thread (an immutable object, swapped whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xapp.policy.store import PolicyInstance
from xapp.policy.types import MODEL_INSTANCE_ID, POLICY_TYPE_ID


@dataclass(frozen=True, slots=True)
class KnownNames:
    """The cells and nodes reporting to the xApp, and the measurements its scoring model reads."""

    cells: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    measurements: frozenset[str] = frozenset()


def _unknown(named: Iterable[str], known: frozenset[str]) -> list[str]:
    return sorted(set(named) - known)


def policy_warnings(record: PolicyInstance, known: KnownNames) -> list[str]:
    """One warning per field of a type-20100 instance that names what `known` lacks (none for other types)."""
    if record.type_id != POLICY_TYPE_ID or record.instance_id == MODEL_INSTANCE_ID:
        return []
    body: Mapping[str, Any] = record.body
    scope = body.get("scope", {})
    fields = (
        ("scope.cells", "cells", _unknown(scope.get("cells", ()), known.cells)),
        ("scope.nodes", "nodes", _unknown(scope.get("nodes", ()), known.nodes)),
        ("threshold.per_measurement", "measurements",
         _unknown(body.get("threshold", {}).get("per_measurement", {}), known.measurements)),
    )  # fmt: skip
    return [
        f"{field}: {what} this xApp does not know now (applied once they appear): {', '.join(map(repr, names))}"
        for field, what, names in fields
        if names
    ]
