"""Labelled anomaly injection: when each event happens, to which cells, and what it does to them.

Events are drawn day by day from a generator keyed by (seed, day), so the schedule of any day is known
without generating the days before it. An event's strength is its intensity u in [0, 1], mapped to a
physical magnitude per kind (a demand surge, dB of SINR lost, ms of transport delay...); the KPM model
turns magnitudes into measurements, so every kind shows its own multi-KPM signature.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from e2sim import catalogue as cat
from e2sim.topology import Floats, Topology
from ranomaly_contracts.kinds import AnomalyKind

SECONDS_PER_DAY = 86400.0
MIN_GAP_S = 1800.0  # quiet time kept between two events of one cell


@dataclass(frozen=True)
class KindSpec:
    """How often a kind occurs, how long it lasts and what it touches."""

    weight: float
    duration_min: tuple[float, float]  # log-uniform range, minutes
    node_wide_share: float  # chance that one event hits every cell of its node
    measurements: tuple[int, ...]  # catalogue indices the kind changes


_ALL = tuple(range(len(cat.MEASUREMENTS)))
_LOAD = tuple(m for m in _ALL if m != cat.SINR)  # what demand moves: everything but the radio quality
_RADIO = tuple(m for m in _ALL if m not in (cat.CONN, cat.HO_REQ))  # what SINR and capacity move
# Measurements a stuck counter can freeze: the ones that move every period.
STUCKABLE = (cat.PRB_DL, cat.PRB_UL, cat.THP_DL, cat.THP_UL, cat.CONN, cat.DELAY_DL, cat.SINR, cat.VOL_DL)

KIND_SPECS: dict[AnomalyKind, KindSpec] = {
    AnomalyKind.CONGESTION: KindSpec(0.16, (20, 180), 0.0, _LOAD),
    AnomalyKind.INTERFERENCE: KindSpec(0.14, (15, 240), 0.0, _RADIO),
    AnomalyKind.OUTAGE: KindSpec(0.07, (10, 120), 0.0, _LOAD),
    AnomalyKind.HO_FAILURE: KindSpec(0.12, (10, 120), 0.0, (cat.HO_REQ, cat.HO_SUCC, cat.LOSS_UL)),
    AnomalyKind.TRANSPORT: KindSpec(0.12, (5, 90), 0.5, (cat.THP_DL, cat.THP_UL, cat.DELAY_DL, cat.LOSS_UL)),
    AnomalyKind.DEGRADATION: KindSpec(0.12, (120, 480), 0.0, _RADIO),
    AnomalyKind.STUCK_COUNTER: KindSpec(0.18, (30, 360), 0.0, ()),
    AnomalyKind.SILENT: KindSpec(0.09, (5, 60), 0.0, _ALL),
}
_KINDS = tuple(KIND_SPECS)
_WEIGHTS = np.array([KIND_SPECS[k].weight for k in _KINDS]) / sum(s.weight for s in KIND_SPECS.values())
_LOG_DURATION = np.log([KIND_SPECS[k].duration_min for k in _KINDS])
_NODE_WIDE = np.array([KIND_SPECS[k].node_wide_share for k in _KINDS])
MAX_DURATION_S = max(s.duration_min[1] for s in KIND_SPECS.values()) * 60.0


@dataclass(frozen=True)
class AnomalyEvent:
    """One injected event: a kind, the cells it hits, when, and how strongly."""

    kind: AnomalyKind
    cells: tuple[int, ...]
    start_s: float
    end_s: float  # exclusive
    intensity: float
    measurements: tuple[int, ...]  # what it touches; for stuck_counter, what it freezes


def _draw_candidates(topology: Topology, seed: int, day: int, rate: float) -> list[AnomalyEvent]:
    """Events whose start falls on the given day (days since the epoch), before overlap removal."""
    rng = np.random.default_rng([seed, 0xA0A1, day])
    cells = np.repeat(np.arange(topology.n_cells), rng.poisson(rate, topology.n_cells))
    n = len(cells)
    kinds = rng.choice(len(_KINDS), size=n, p=_WEIGHTS)
    log_duration = _LOG_DURATION[kinds, 0] + rng.uniform(size=n) * (_LOG_DURATION[kinds, 1] - _LOG_DURATION[kinds, 0])
    durations = np.round(np.exp(log_duration) * 60.0)
    starts = day * SECONDS_PER_DAY + np.floor(rng.uniform(0.0, SECONDS_PER_DAY, n))
    intensities = rng.uniform(size=n) ** 3  # most events are mild
    node_wide = rng.uniform(size=n) < _NODE_WIDE[kinds]
    frozen_counts = rng.integers(1, 4, n)
    frozen_order = np.argsort(rng.uniform(size=(n, len(STUCKABLE))), axis=1)
    events: list[AnomalyEvent] = []
    for i in range(n):
        kind = _KINDS[kinds[i]]
        cell = int(cells[i])
        hit = tuple(int(c) for c in topology.cells_of_node(int(topology.cell_node[cell]))) if node_wide[i] else (cell,)
        touched = KIND_SPECS[kind].measurements
        if kind is AnomalyKind.STUCK_COUNTER:
            touched = tuple(sorted(STUCKABLE[k] for k in frozen_order[i, : frozen_counts[i]]))
        start = float(starts[i])
        events.append(AnomalyEvent(kind, hit, start, start + float(durations[i]), float(intensities[i]), touched))
    events.sort(key=lambda e: (e.start_s, e.cells))
    return events


@dataclass
class AnomalySchedule:
    """Every event of the simulated network, drawn day by day on demand."""

    topology: Topology
    seed: int
    events_per_cell_day: float
    appears_s: Floats | None = None  # [N] when each cell is switched on; no event starts on a cell before
    _days: OrderedDict[int, list[AnomalyEvent]] = field(default_factory=OrderedDict, repr=False)

    def day(self, day: int) -> list[AnomalyEvent]:
        """The events starting on a day. An event is dropped when it would overlap (with a gap) an
        event of the same cell that started earlier that day or any candidate of the day before."""
        cached = self._days.get(day)
        if cached is not None:
            self._days.move_to_end(day)
            return cached
        busy: dict[int, list[tuple[float, float]]] = {}
        for event in self._candidates(day - 1):
            for cell in event.cells:
                busy.setdefault(cell, []).append((event.start_s, event.end_s))
        accepted: list[AnomalyEvent] = []
        for event in self._candidates(day):
            lo, hi = event.start_s - MIN_GAP_S, event.end_s + MIN_GAP_S
            if any(s < hi and e > lo for cell in event.cells for s, e in busy.get(cell, ())):
                continue
            accepted.append(event)
            for cell in event.cells:
                busy.setdefault(cell, []).append((event.start_s, event.end_s))
        self._days[day] = accepted
        if len(self._days) > 8:
            self._days.popitem(last=False)
        return accepted

    def _candidates(self, day: int) -> list[AnomalyEvent]:
        """A day's candidates on cells already switched on when they start."""
        events = _draw_candidates(self.topology, self.seed, day, self.events_per_cell_day)
        if self.appears_s is None:
            return events
        appears = self.appears_s
        return [e for e in events if all(appears[c] <= e.start_s for c in e.cells)]

    def between(self, start_s: float, end_s: float) -> list[AnomalyEvent]:
        """Events active at some time in [start_s, end_s)."""
        first_day = int(np.floor((start_s - MAX_DURATION_S) / SECONDS_PER_DAY))
        last_day = int(np.floor(end_s / SECONDS_PER_DAY))
        return [
            event
            for day in range(first_day, last_day + 1)
            for event in self.day(day)
            if event.start_s < end_s and event.end_s > start_s
        ]


@dataclass
class Effects:
    """Physical magnitudes of the active events on a time grid, arrays [T, N]; neutral where none."""

    surge: Floats  # congestion: extra demand, as a fraction of normal demand
    outage_keep: Floats  # outage: share of demand the cell still carries (1: normal)
    sinr_drop_db: Floats  # interference and degradation
    capacity_factor: Floats  # degradation: share of radio capacity left
    ho_fail: Floats  # handover failure: share of executions that fail on top of normal
    transport: Floats  # transport: intensity 0..1 of backhaul delay and loss
    silent: np.ndarray  # bool: records carry no value
    labelled: np.ndarray  # bool: some event's window (the cells it hits)
    stuck: list[tuple[slice, int, tuple[int, ...], AnomalyEvent]]  # (periods, cell, frozen measurements, event)

    @property
    def any_outage(self) -> bool:
        """Whether some cell sleeps in this block."""
        return bool((self.outage_keep < 1.0).any())


def _grid_slice(times_s: Floats, start_s: float, end_s: float) -> slice:
    """Periods whose collection start lies in [start_s, end_s)."""
    return slice(int(np.searchsorted(times_s, start_s, "left")), int(np.searchsorted(times_s, end_s, "left")))


def build_effects(events: list[AnomalyEvent], times_s: Floats, n_cells: int) -> Effects:
    """Turn the events active on a grid of collection start times into magnitudes per cell."""
    shape = (len(times_s), n_cells)
    fx = Effects(
        surge=np.zeros(shape),
        outage_keep=np.ones(shape),
        sinr_drop_db=np.zeros(shape),
        capacity_factor=np.ones(shape),
        ho_fail=np.zeros(shape),
        transport=np.zeros(shape),
        silent=np.zeros(shape, dtype=bool),
        labelled=np.zeros(shape, dtype=bool),
        stuck=[],
    )
    for event in events:
        rows = _grid_slice(times_s, event.start_s, event.end_s)
        if rows.start >= rows.stop:
            continue
        u = event.intensity
        cols = list(event.cells)
        fx.labelled[rows, cols] = True
        match event.kind:
            case AnomalyKind.CONGESTION:
                fx.surge[rows, cols] = 0.35 + 2.2 * u
            case AnomalyKind.INTERFERENCE:
                fx.sinr_drop_db[rows, cols] = 1.5 + 10.5 * u
            case AnomalyKind.OUTAGE:
                fx.outage_keep[rows, cols] = 0.06 - 0.05 * u
            case AnomalyKind.HO_FAILURE:
                fx.ho_fail[rows, cols] = 0.15 + 0.55 * u
            case AnomalyKind.TRANSPORT:
                fx.transport[rows, cols] = 0.05 + 0.95 * u
            case AnomalyKind.DEGRADATION:
                ramp = (times_s[rows] - event.start_s) / (event.end_s - event.start_s)
                fx.sinr_drop_db[rows, cols] = ((1.5 + 10.5 * u) * ramp)[:, None]
                fx.capacity_factor[rows, cols] = (1.0 - 0.4 * u * ramp)[:, None]
            case AnomalyKind.STUCK_COUNTER:
                fx.stuck.append((rows, cols[0], event.measurements, event))
            case AnomalyKind.SILENT:
                fx.silent[rows, cols] = True
    return fx
