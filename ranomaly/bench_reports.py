"""`ranomaly bench reports`: incident reports over simulated incidents, with the real language model.

The simulator (seed `seed`) writes a history folder the way the collector does (`rapp.history.HistoryStore`):
its KPM rows, and incident events for its labelled anomalies as a perfect detector would raise them (opened at
the first anomalous period, attributed to the measurements whose robust z-score against the hour before is in
excess, every tenth left open). A root-cause classifier (`rapp.reports.rootcause`) is trained on another seed.
Then every incident's whole report is written (fact sheet, template, the model's summary and its check), and
the figures are: the share of the model's summaries that were kept, the time of a whole report (p50 among
those the model wrote, and over every model attempt), the model's load time, the same reports with the
template alone, and the classifier's accuracy on these incidents.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e2sim.export import export_world
from e2sim.world import World, WorldConfig
from models.data import events_from_labels
from models.metrics import Event
from models.rootcause import BEFORE
from ranomaly_contracts.dataset import KpmArrays, read_dataset, to_arrays
from ranomaly_contracts.sdl import Attribution, IncidentEvent
from rapp.history import HistoryStore, KpmRows
from rapp.reports.facts import FactBuilder
from rapp.reports.rootcause import history_deviations, train_history_classifier
from rapp.reports.summarizer import Summarizer, TransformersGenerator
from rapp.reports.writer import Reporter

PERIOD_S = 60.0
MODEL_VERSION = "sim-labels"
_CATEGORIES = (
    ("contains the digit", "digit"),
    ("contains the number word", "number word"),
    ("names the cause", "cause"),
    ("names the action", "action"),
    ("names an action through", "action"),
    ("says", "state"),
    ("no complete sentence", "no sentence"),
    ("model failed", "model failed"),
)


def _simulate(folder: Path, seed: int, cells: int, days: float) -> tuple[KpmArrays, list[Event]]:
    export_world(World(WorldConfig(seed=seed, n_cells=cells)), folder, days, PERIOD_S, "parquet")
    dataset = read_dataset(folder)
    arrays = to_arrays(dataset)
    return arrays, events_from_labels(arrays, dataset.labels)


def _write_kpm(store: HistoryStore, arrays: KpmArrays) -> None:
    """The KPM rows, one batch per simulated hour."""
    t, n, _ = arrays.values.shape
    cells = list(arrays.cell_ids)
    nodes = list(arrays.node_ids)
    for batch, first in enumerate(range(0, t, 60), 1):
        rows = arrays.values[first : first + 60]
        count = len(rows)
        store.write_kpm(
            [f"{batch}-0"],
            [
                KpmRows(
                    measurements=arrays.measurements,
                    times_ms=np.repeat(arrays.times_ms[first : first + count], n),
                    node_ids=nodes * count,
                    cell_ids=cells * count,
                    values=rows.reshape(count * n, -1).astype(np.float64),
                    periods_ms=frozenset({round(PERIOD_S * 1000)}),
                )
            ],
        )


def _incident_events(arrays: KpmArrays, event: Event, ongoing: bool) -> list[IncidentEvent]:
    """Open (and close) events of a labelled anomaly, attributed as the xApp does: shares of excess deviation."""
    first = max(event.start - BEFORE, 0)
    values = arrays.values[first : event.end + 1, event.cell].astype(np.float64)
    z = np.nan_to_num(history_deviations(values, event.start - first)[event.start - first :] / 3.0)
    excess = np.maximum(z - 1.0, 0.0).sum(axis=0)
    shares = excess / excess.sum() if excess.sum() > 0 else np.zeros_like(excess)
    order = [k for k in np.argsort(-shares)[:5].tolist() if shares[k] >= 0.05]
    attribution = tuple(Attribution(arrays.measurements[k], round(float(shares[k]), 4), float(z[-1, k])) for k in order)
    times = arrays.times_ms
    scores = z.max(axis=1)
    cell, node = arrays.cell_ids[event.cell], arrays.node_ids[event.cell]
    opened = int(times[event.start])
    closing = int(times[min(event.end + 3, len(times) - 1)])

    def incident(kind: str, period_ms: int, score: float, closed_ms: int | None, reason: str) -> IncidentEvent:
        return IncidentEvent(event=kind, incident_id=f"{cell}:{opened}", cell_id=cell, node_id=node, opened_ms=opened,
                             period_start_ms=period_ms, score=score, peak_score=float(scores.max()),
                             attribution=attribution, model_version=MODEL_VERSION, closed_ms=closed_ms,
                             reason=reason)  # fmt: skip

    events = [incident("open", opened, float(scores[0]), None, "")]
    if not ongoing:
        events.append(incident("close", closing, float(scores[-1]), int(times[event.end]), "recovered"))
    return events


@dataclass(frozen=True, slots=True)
class _Row:
    incident_id: str
    true_kind: str
    kind: str
    written_by: str
    rejection: str | None
    model_text: str | None
    seconds: float
    model_seconds: float | None


def _category(reason: str) -> str:
    return next((name for prefix, name in _CATEGORIES if reason.startswith(prefix)), reason)


def _p(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def run_reports_bench(
    work: Path, cache_dir: Path, incidents: int = 50, seed: int = 21, train_seed: int = 22, cells: int = 60,
    days: float = 2.0,
) -> dict[str, Any]:  # fmt: skip
    """Write `incidents` reports with the default model; the figures, JSON-ready."""
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        root = Path(scratch)
        began = time.perf_counter()
        export_world(World(WorldConfig(seed=train_seed, n_cells=cells)), root / "train", days, PERIOD_S, "parquet")
        classifier = train_history_classifier(read_dataset(root / "train"))
        train_s = time.perf_counter() - began
        arrays, labelled = _simulate(root / "data", seed, cells, days)
        picked = [e for e in sorted(labelled, key=lambda e: e.start) if e.start >= BEFORE][:incidents]
        if len(picked) < incidents:
            raise ValueError(f"the simulation holds {len(picked)} usable incidents, fewer than {incidents}")
        store = HistoryStore(root / "history")
        _write_kpm(store, arrays)
        truth = {}
        for i, event in enumerate(picked):
            events = _incident_events(arrays, event, ongoing=i % 10 == 9)
            store.write_incidents([f"{10_000 + i}-0"], events)
            truth[events[0].incident_id] = str(event.kind)

        builder = FactBuilder(root / "history", classifier=classifier)
        template_only = Reporter(builder, Summarizer(None))
        template_s = [template_only.incident_report(key).seconds for key in truth]

        generator = TransformersGenerator(None, cache_dir)
        began = time.perf_counter()
        generator.load()
        load_s = time.perf_counter() - began
        reporter = Reporter(builder, Summarizer(generator))
        load_before = os.getloadavg()[0]
        rows = []
        for key, kind in truth.items():
            report = reporter.incident_report(key)
            summary = report.summary
            rows.append(_Row(key, kind, report.facts.root_cause.kind, summary.written_by, summary.rejection,
                             summary.model_text, report.seconds, summary.model_seconds))  # fmt: skip

        load_after = os.getloadavg()[0]
    attempted = [r for r in rows if r.model_text is not None]
    kept = [r for r in attempted if r.written_by == "model"]
    return {
        "incidents": len(rows),
        "model": generator.name,
        "model_load_s": load_s,
        "summaries_attempted": len(attempted),
        "summaries_kept": len(kept),
        "accepted_share": len(kept) / len(attempted) if attempted else None,
        "rejections": dict(Counter(_category(r.rejection) for r in attempted if r.rejection)),
        "report_s_p50_model_written": _p([r.seconds for r in kept], 50),
        "report_s_p90_model_written": _p([r.seconds for r in kept], 90),
        "report_s_p50_model_attempts": _p([r.seconds for r in attempted], 50),
        "generation_s_p50": _p([r.model_seconds for r in attempted if r.model_seconds is not None], 50),
        "report_s_p50_template_only": _p(template_s, 50),
        "load_average": [load_before, load_after],  # 1-minute load of this 2-core machine, around the reports
        "classifier": {
            "train_seed": train_seed,
            "train_s": train_s,
            "accuracy": float(np.mean([r.kind == r.true_kind for r in rows])),
        },
        "simulation": {
            "seed": seed,
            "cells": cells,
            "days": days,
            "period_s": PERIOD_S,
            "ongoing": sum(1 for i in range(len(rows)) if i % 10 == 9),
        },
        "reports": [asdict(r) for r in rows],
    }
