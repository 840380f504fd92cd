"""Effective anomaly policy per cell, from the type-20100 instances and the model's manifest, as arrays.

Fields are merged from broad to narrow, each level overriding only the fields its instances carry:
the manifest's defaults (enabled, `thresholds.score`, `thresholds.deviation`, debounce 2/3), then all-cells
instances (scope absent, or both lists empty), then node instances (the cell's node is listed), then cell
instances (the cell is listed; an instance listing both the cell and its node counts as a cell instance).
Within a level, the most recently updated instance wins. The merged fields are `enabled`, the score
threshold (`threshold.mode` with its `value`, as one field), each `threshold.per_measurement` name on its
own, and `debounce.open_after` and `debounce.close_after` on their own.

`enabled` merges like any other field, so the narrowest instance decides: a disabled node instance silences
the node's cells, and an enabled cell instance re-enables one of them (maintenance of a node except a cell).
The `ranomaly-model` instance only names the model version (`model_version()`); it never touches cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.artifact import Manifest
from xapp.policy.store import PolicyInstance
from xapp.policy.types import MODEL_INSTANCE_ID, POLICY_TYPE_ID

DEFAULT_OPEN_AFTER = 2
"""Anomalous periods in a row that open an incident, unless a policy says otherwise."""
DEFAULT_CLOSE_AFTER = 3
"""Normal periods in a row that close an incident, unless a policy says otherwise."""


@dataclass(frozen=True, slots=True)
class ResolvedPolicies:
    """Effective settings for n cells (in the order asked for) and K measurements (the manifest's order)."""

    measurements: tuple[str, ...]
    enabled: np.ndarray  # bool [n]; False: silenced
    score_threshold: np.ndarray  # float32 [n]; anomalous when score >= threshold
    verdict_deviation: np.ndarray  # float32 [n, K]; also anomalous when a deviation reaches it (+inf: no override)
    attribution_deviation: np.ndarray  # float32 [n, K]; override, else the manifest's deviation threshold
    open_after: np.ndarray  # int32 [n]
    close_after: np.ndarray  # int32 [n]
    notes: tuple[str, ...] = ()  # what was ignored or clamped, naming the instance


@dataclass(frozen=True, slots=True)
class _Overlay:
    """One instance's contribution: its scope and the fields it carries, already turned into numbers."""

    nodes: frozenset[str]
    cells: frozenset[str]
    settings: dict[str, Any] = field(default_factory=dict)  # enabled, score, open_after, close_after
    deviation: dict[int, float] = field(default_factory=dict)  # measurement index -> threshold


def _quantile(q: float, quantiles: dict[str, float], where: str, notes: list[str]) -> float | None:
    if not quantiles:
        notes.append(f"{where}: threshold mode quantile, but the manifest has no score quantiles; manifest threshold")
        return None
    levels = sorted((float(level), value) for level, value in quantiles.items())
    xs, ys = [level for level, _ in levels], [value for _, value in levels]
    if not xs[0] <= q <= xs[-1]:
        nearest = xs[0] if q < xs[0] else xs[-1]
        notes.append(f"{where}: quantile {q} outside the manifest's levels {xs[0]}..{xs[-1]}; clamped to {nearest}")
    return float(np.interp(q, xs, ys))


def _overlay(record: PolicyInstance, manifest: Manifest, index: dict[str, int], notes: list[str]) -> _Overlay:
    body = record.body
    where = f"instance {record.instance_id!r}"
    scope = body.get("scope", {})
    overlay = _Overlay(frozenset(scope.get("nodes", ())), frozenset(scope.get("cells", ())))
    overlay.settings["enabled"] = bool(body["enabled"])
    threshold = body.get("threshold", {})
    mode = threshold.get("mode")
    stats = manifest.thresholds.score_stats
    if mode == "sigma":
        overlay.settings["score"] = stats.mean + float(threshold["value"]) * stats.std
    elif mode == "quantile":
        quantile = _quantile(float(threshold["value"]), stats.quantiles, where, notes)
        overlay.settings["score"] = manifest.thresholds.score if quantile is None else quantile
    elif mode == "manifest":
        overlay.settings["score"] = manifest.thresholds.score
    for name, value in threshold.get("per_measurement", {}).items():
        if name in index:
            overlay.deviation[index[name]] = float(value)
        else:
            notes.append(f"{where}: per_measurement {name!r} is not a measurement of model {manifest.version}; ignored")
    overlay.settings.update(body.get("debounce", {}))
    return overlay


def _merge(overlays: Iterable[_Overlay], defaults: dict[str, Any]) -> tuple[dict[str, Any], dict[int, float]]:
    settings, deviation = dict(defaults), {}
    for overlay in overlays:
        settings.update(overlay.settings)
        deviation.update(overlay.deviation)
    return settings, deviation


def resolve_cells(
    instances: Iterable[PolicyInstance], manifest: Manifest, cell_ids: Sequence[str], node_ids: Sequence[str]
) -> ResolvedPolicies:
    """Effective settings of each cell (`node_ids[i]` is the node of `cell_ids[i]`) from type-20100 instances.

    Cells are grouped by the instances that name them or their node, so the merging runs once per group
    and the per-cell work is two dictionary lookups.
    """
    if len(cell_ids) != len(node_ids):
        raise ValueError(f"{len(cell_ids)} cell ids but {len(node_ids)} node ids")
    notes: list[str] = []
    index = {name: k for k, name in enumerate(manifest.measurements)}
    records = sorted(
        (r for r in instances if r.type_id == POLICY_TYPE_ID and r.instance_id != MODEL_INSTANCE_ID),
        key=lambda r: r.order,
    )
    overlays = [_overlay(r, manifest, index, notes) for r in records]  # oldest first
    all_cells = [o for o in overlays if not o.nodes and not o.cells]
    by_node: dict[str, tuple[int, ...]] = {}
    by_cell: dict[str, tuple[int, ...]] = {}
    for i, overlay in enumerate(overlays):
        for node in overlay.nodes:
            by_node[node] = (*by_node.get(node, ()), i)
        for cell in overlay.cells:
            by_cell[cell] = (*by_cell.get(cell, ()), i)

    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    node_get, cell_get = by_node.get, by_cell.get
    keys = [(node_get(node, ()), cell_get(cell, ())) for cell, node in zip(cell_ids, node_ids, strict=True)]
    group_of = np.fromiter((groups.setdefault(key, len(groups)) for key in keys), dtype=np.intp, count=len(keys))

    k = len(manifest.measurements)
    defaults = {
        "enabled": True,
        "score": manifest.thresholds.score,
        "open_after": DEFAULT_OPEN_AFTER,
        "close_after": DEFAULT_CLOSE_AFTER,
    }
    g = len(groups)
    enabled = np.empty(g, dtype=bool)
    score = np.empty(g, dtype=np.float32)
    verdict = np.full((g, k), np.inf, dtype=np.float32)
    manifest_deviation = np.array([manifest.thresholds.deviation[m] for m in manifest.measurements], np.float32)
    attribution = np.tile(manifest_deviation, (g, 1))
    open_after = np.empty(g, dtype=np.int32)
    close_after = np.empty(g, dtype=np.int32)
    for (node_overlays, cell_overlays), row in groups.items():
        node_only = [overlays[i] for i in node_overlays if i not in cell_overlays]
        settings, deviation = _merge([*all_cells, *node_only, *(overlays[i] for i in cell_overlays)], defaults)
        enabled[row] = settings["enabled"]
        score[row] = settings["score"]
        open_after[row] = settings["open_after"]
        close_after[row] = settings["close_after"]
        for m, value in deviation.items():
            verdict[row, m] = attribution[row, m] = value
    return ResolvedPolicies(
        measurements=tuple(manifest.measurements),
        enabled=enabled[group_of],
        score_threshold=score[group_of],
        verdict_deviation=verdict[group_of],
        attribution_deviation=attribution[group_of],
        open_after=open_after[group_of],
        close_after=close_after[group_of],
        notes=tuple(dict.fromkeys(notes)),
    )


def model_version(instances: Iterable[PolicyInstance]) -> str | None:
    """The version the `ranomaly-model` instance names, if it is enabled; None: the newest promoted version."""
    for record in instances:
        if record.type_id == POLICY_TYPE_ID and record.instance_id == MODEL_INSTANCE_ID:
            version = record.body.get("model_version")
            return version if record.body.get("enabled") and isinstance(version, str) else None
    return None
