"""Fact sheets: everything a report may say, gathered from the collected history before any text is written.

An incident's sheet comes from its events (`rapp.history.read_incidents`) and the cell's KPM history around
it: the window, the peak score, the attribution, how the attributed and headline measurements changed (mean
over the hour before the incident against the mean during it), the root-cause class when a classifier is
given, predicted breaches when a forecast source is given, the remediation advice for the class, and the NOC
notifications when an alert source is given. A day's sheet counts the incidents that were open at some time
that day. Every figure a report prints is a field here; `to_json()` gives the sheet as JSON-ready data
(NaN as null).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ranomaly_contracts.dataset import KEY_COLUMNS
from ranomaly_contracts.sdl import IncidentEvent
from rapp.history import INCIDENTS, KPM, read_history, read_incidents
from rapp.remediation import CONTROL_MAPPING, advise
from rapp.reports.vocabulary import measurement_unit

UNCLASSIFIED = "unclassified"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
HEADLINE_MEASUREMENTS = ("DRB.UEThpDl", "RRU.PrbUsedDl", "RRC.ConnMean")


class ReportNotFound(LookupError):
    """What a report needs is not in the history; the message names it."""


@dataclass(frozen=True, slots=True)
class Window:
    """When an incident ran: from its first anomalous period to the end of its last one (or its latest event)."""

    opened_ms: int
    last_period_ms: int  # collection start of the last anomalous period (closed) or of the latest event (ongoing)
    closed_ms: int | None  # the last anomalous period's collection start, once closed
    ongoing: bool
    close_reason: str  # "" while ongoing
    period_s: float | None  # the cell's reporting period in the history, None when unknown
    duration_s: float  # last_period_ms + one period - opened_ms


@dataclass(frozen=True, slots=True)
class AttributedMeasurement:
    """One measurement's share of the incident's excess deviation, and its deviation over its threshold."""

    measurement: str
    share: float
    deviation: float


@dataclass(frozen=True, slots=True)
class MeasurementChange:
    """A measurement's mean over the hour before the incident and during it (None: no value stored there)."""

    measurement: str
    unit: str  # "" when unknown
    attributed: bool
    before_mean: float | None
    during_mean: float | None
    absolute_change: float | None  # during - before
    relative_change: float | None  # (during - before) / |before|; None when before is 0 or missing
    before_samples: int
    during_samples: int


@dataclass(frozen=True, slots=True)
class RootCause:
    """The root-cause class: an anomaly kind with the classifier's confidence, or UNCLASSIFIED."""

    kind: str
    confidence: float | None
    classifier: str | None  # which classifier said so


@dataclass(frozen=True, slots=True)
class ActionFact:
    """One ranked remediation action (advice only: nothing is executed)."""

    rank: int
    id: str
    title: str
    control: str
    oran_control: str
    confidence: float
    rationale: str


@dataclass(frozen=True, slots=True)
class PredictedBreach:
    """A measurement forecast to cross its threshold: what a forecast source hands to the reports."""

    measurement: str
    direction: str  # "above" | "below"
    threshold: float
    predicted: float
    crosses_at_ms: int


@dataclass(frozen=True, slots=True)
class Notification:
    """One NOC notification of the incident and what became of it."""

    event: str  # open | update | close
    period_start_ms: int
    state: str  # pending | delivered | refused
    attempts: int
    outcome: str


@dataclass(frozen=True, slots=True)
class Alerts:
    """The incident's NOC alert: its severity and its notifications, oldest first."""

    severity: str
    notifications: tuple[Notification, ...]


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """The fact sheet of one incident."""

    incident_id: str
    cell_id: str
    node_id: str
    window: Window
    peak_score: float
    latest_score: float
    model_version: str
    events: int
    attribution: tuple[AttributedMeasurement, ...]
    changes: tuple[MeasurementChange, ...]
    root_cause: RootCause
    advice_known: bool  # False: the generic escalation list (the cause is unknown)
    actions: tuple[ActionFact, ...]
    forecasts: tuple[PredictedBreach, ...] | None  # None: no forecast source
    alerts: Alerts | None  # None: no NOC notifications for it, or none configured

    def to_json(self) -> dict[str, Any]:
        """The sheet as JSON-ready data."""
        return _json(asdict(self))


@dataclass(frozen=True, slots=True)
class DailyIncident:
    """One incident of a day, as the daily summary lists it."""

    incident_id: str
    cell_id: str
    node_id: str
    kind: str
    opened_ms: int
    duration_s: float
    ongoing: bool
    peak_score: float


@dataclass(frozen=True, slots=True)
class Tally:
    """How many incidents share a key (a kind, a cell, an attributed measurement)."""

    key: str
    incidents: int
    mean_share: float | None = None  # for measurements: their mean attribution share over those incidents


@dataclass(frozen=True, slots=True)
class DailyFacts:
    """The fact sheet of one UTC day: the incidents open at some time that day."""

    date: str  # YYYY-MM-DD
    incidents: int
    opened: int  # of which opened that day
    by_kind: tuple[Tally, ...]
    by_cell: tuple[Tally, ...]
    longest: tuple[DailyIncident, ...]
    ongoing: tuple[DailyIncident, ...]  # still open at their latest event
    top_measurements: tuple[Tally, ...]

    def to_json(self) -> dict[str, Any]:
        """The sheet as JSON-ready data."""
        return _json(asdict(self))


@dataclass(frozen=True, slots=True)
class CellWindow:
    """What a root-cause classifier sees: one cell's KPM rows on a regular grid around an incident."""

    measurements: tuple[str, ...]
    times_ms: np.ndarray  # int64 [T]
    values: np.ndarray  # float64 [T, K], NaN where no value or no row
    start: int  # row of the first anomalous period
    end: int  # row of the last one (inclusive)
    attribution: tuple[AttributedMeasurement, ...]


class Classifier(Protocol):
    """A root-cause classifier: the kind of an incident and a confidence, or None when it cannot tell."""

    name: str

    def classify(self, window: CellWindow) -> tuple[str, float] | None:
        """The anomaly kind of the incident in this window and the classifier's confidence in [0, 1]."""
        ...


ForecastSource = Callable[[str], Sequence[PredictedBreach]]  # cell id -> breaches predicted for it
AlertSource = Callable[[str], Alerts | None]  # incident id -> its NOC alert


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


def _mean(column: pd.Series) -> tuple[float | None, int]:
    values = column.dropna()
    return (float(values.mean()), len(values)) if len(values) else (None, 0)


def _change(name: str, attributed: bool, before: pd.DataFrame, during: pd.DataFrame) -> MeasurementChange:
    b, nb = _mean(before[name]) if name in before else (None, 0)
    d, nd = _mean(during[name]) if name in during else (None, 0)
    absolute = None if b is None or d is None else d - b
    relative = None if absolute is None or b is None or b == 0 else absolute / abs(b)
    return MeasurementChange(name, measurement_unit(name), attributed, b, d, absolute, relative, nb, nd)


def _period_ms(times_ms: np.ndarray) -> int | None:
    steps = np.diff(np.unique(times_ms))
    return int(np.median(steps)) if steps.size else None


def cell_window(
    frame: pd.DataFrame, opened_ms: int, last_ms: int, attribution: tuple[AttributedMeasurement, ...]
) -> CellWindow | None:
    """One cell's rows (read_history columns) on a regular grid from its first row to the incident's last
    period; None when the incident's own periods have no row."""
    times = frame["timestamp"].astype("int64").to_numpy()
    period = _period_ms(times)
    if period is None or not ((times >= opened_ms) & (times <= last_ms)).any():
        return None
    measurements = tuple(c for c in frame.columns if c not in KEY_COLUMNS)
    first = opened_ms - max((opened_ms - int(times.min())) // period, 0) * period
    grid = np.arange(first, last_ms + 1, period, dtype=np.int64)
    rows = np.searchsorted(grid, times)
    keep = (rows < grid.size) & (grid[np.minimum(rows, grid.size - 1)] == times)
    values = np.full((grid.size, len(measurements)), np.nan)
    values[rows[keep]] = frame.loc[keep, list(measurements)].to_numpy(dtype=np.float64)
    start = int(np.searchsorted(grid, opened_ms))
    end = int(np.searchsorted(grid, last_ms, side="right")) - 1
    return CellWindow(measurements, grid, values, start, max(end, start), attribution)


class FactBuilder:
    """Builds fact sheets from a history folder, with the optional classifier, forecast and alert sources."""

    def __init__(
        self,
        history_dir: str | Path,
        *,
        classifier: Classifier | None = None,
        forecasts: ForecastSource | None = None,
        alerts: AlertSource | None = None,
        headline: Sequence[str] = HEADLINE_MEASUREMENTS,
    ) -> None:
        self.history_dir = Path(history_dir)
        self.classifier = classifier
        self.forecasts = forecasts
        self.alerts = alerts
        self.headline = tuple(headline)

    def incident(self, incident_id: str) -> IncidentFacts:
        """The fact sheet of one incident; ReportNotFound when the history has no event of it."""
        events = [e for e in read_incidents(self.history_dir) if e.incident_id == incident_id]
        if not events:
            raise ReportNotFound(f"incident {incident_id!r}: no event of it in the history at {self.history_dir}")
        first = min(e.opened_ms for e in events)
        last = _last_period(events)
        kpm = read_history(self.history_dir, start=_utc(first - HOUR_MS), end=_utc(last + HOUR_MS))
        return self._facts(events, kpm[kpm["cell_id"] == events[0].cell_id])

    def daily(self, day: date) -> DailyFacts:
        """The fact sheet of one UTC day; ReportNotFound when the history holds nothing of that day."""
        start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        end_ms = start_ms + DAY_MS
        by_incident: dict[str, list[IncidentEvent]] = {}
        for event in read_incidents(self.history_dir):
            by_incident.setdefault(event.incident_id, []).append(event)
        today = {
            key: events
            for key, events in by_incident.items()
            if min(e.opened_ms for e in events) < end_ms and _last_period(events) >= start_ms
        }
        if not today and not _has_day(self.history_dir, day):
            raise ReportNotFound(f"daily report {day.isoformat()}: the history at {self.history_dir} holds no data "
                                 "of that day")  # fmt: skip
        facts = self.many(today.values())
        longest = sorted(facts, key=lambda f: (-f.window.duration_s, f.incident_id))[:3]
        measured: dict[str, list[float]] = {}
        for f in facts:
            for part in f.attribution:
                measured.setdefault(part.measurement, []).append(part.share)
        top = sorted(measured.items(), key=lambda item: (-len(item[1]), -sum(item[1]), item[0]))[:5]
        return DailyFacts(
            date=day.isoformat(),
            incidents=len(facts),
            opened=sum(start_ms <= f.window.opened_ms < end_ms for f in facts),
            by_kind=_tallies(f.root_cause.kind for f in facts),
            by_cell=_tallies(f.cell_id for f in facts),
            longest=tuple(_daily(f) for f in longest),
            ongoing=tuple(_daily(f) for f in sorted(facts, key=lambda f: f.window.opened_ms) if f.window.ongoing),
            top_measurements=tuple(Tally(name, len(shares), sum(shares) / len(shares)) for name, shares in top),
        )

    def many(self, incidents: Iterable[list[IncidentEvent]]) -> list[IncidentFacts]:
        """Fact sheets of several incidents from one read of the KPM history they span."""
        groups = list(incidents)
        if not groups:
            return []
        first = min(e.opened_ms for events in groups for e in events)
        last = max(_last_period(events) for events in groups)
        kpm = read_history(self.history_dir, start=_utc(first - HOUR_MS), end=_utc(last + HOUR_MS))
        cells = dict(tuple(kpm.groupby("cell_id", sort=False)))
        empty = kpm.iloc[:0]
        return [self._facts(events, cells.get(events[0].cell_id, empty)) for events in groups]

    def _facts(self, events: list[IncidentEvent], kpm: pd.DataFrame) -> IncidentFacts:
        latest = events[-1]
        closing = next((e for e in events if e.event == "close"), None)
        opened = min(e.opened_ms for e in events)
        last = _last_period(events)
        times = kpm["timestamp"].astype("int64").to_numpy()
        period = _period_ms(times)
        attributed = next((e.attribution for e in reversed(events) if e.attribution), ())
        attribution = tuple(AttributedMeasurement(a.measurement, a.share, a.deviation) for a in attributed)
        before = kpm[(times >= opened - HOUR_MS) & (times < opened)]
        during = kpm[(times >= opened) & (times <= last)]
        names = dict.fromkeys([a.measurement for a in attribution] + [h for h in self.headline if h in kpm])
        changes = tuple(_change(name, name in {a.measurement for a in attribution}, before, during) for name in names)
        window = Window(
            opened_ms=opened,
            last_period_ms=last,
            closed_ms=None if closing is None else closing.closed_ms,
            ongoing=closing is None,
            close_reason="" if closing is None else closing.reason,
            period_s=None if period is None else period / 1000,
            duration_s=(last + (period or 0) - opened) / 1000,
        )
        root_cause = self._classify(kpm, opened, last, attribution)
        advice = advise(None if root_cause.kind == UNCLASSIFIED else root_cause.kind)
        actions = tuple(
            ActionFact(rank, a.id, a.title, str(a.control), CONTROL_MAPPING[a.control], a.confidence, a.rationale)
            for rank, a in enumerate(advice.actions, 1)
        )
        return IncidentFacts(
            incident_id=latest.incident_id,
            cell_id=latest.cell_id,
            node_id=latest.node_id,
            window=window,
            peak_score=max(e.peak_score for e in events),
            latest_score=latest.score,
            model_version=latest.model_version,
            events=len(events),
            attribution=attribution,
            changes=changes,
            root_cause=root_cause,
            advice_known=advice.known,
            actions=actions,
            forecasts=None if self.forecasts is None else tuple(self.forecasts(latest.cell_id)),
            alerts=None if self.alerts is None else self.alerts(latest.incident_id),
        )

    def _classify(
        self, kpm: pd.DataFrame, opened: int, last: int, attribution: tuple[AttributedMeasurement, ...]
    ) -> RootCause:
        if self.classifier is None:
            return RootCause(UNCLASSIFIED, None, None)
        window = cell_window(kpm, opened, last, attribution) if len(kpm) else None
        verdict = None if window is None else self.classifier.classify(window)
        if verdict is None:
            return RootCause(UNCLASSIFIED, None, self.classifier.name)
        kind, confidence = verdict
        return RootCause(kind, confidence, self.classifier.name)


def _last_period(events: Sequence[IncidentEvent]) -> int:
    """The last anomalous period of a closed incident, else the latest event's period."""
    for event in events:
        if event.event == "close" and event.closed_ms is not None:
            return event.closed_ms
    return max(e.period_start_ms for e in events)


def _utc(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _has_day(history_dir: Path, day: date) -> bool:
    return any((history_dir / store / f"date={day.isoformat()}").is_dir() for store in (KPM, INCIDENTS))


def _tallies(keys: Iterable[str]) -> tuple[Tally, ...]:
    counts = Counter(keys)
    return tuple(Tally(key, n) for key, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _daily(f: IncidentFacts) -> DailyIncident:
    return DailyIncident(f.incident_id, f.cell_id, f.node_id, f.root_cause.kind, f.window.opened_ms,
                         f.window.duration_s, f.window.ongoing, f.peak_score)  # fmt: skip
