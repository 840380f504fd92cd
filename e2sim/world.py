"""The simulated network: topology, load, anomalies and the KPM model behind one KpmSource."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from e2sim import catalogue as cat
from e2sim.anomalies import AnomalyEvent, AnomalySchedule, build_effects
from e2sim.kpm import compute_kpm
from e2sim.load import relative_load
from e2sim.noise import NoRandomness, PeriodRandomness
from e2sim.realism import Realism, coarsen, deploy, report
from e2sim.source import KpmBlock, Label, StreamStart
from e2sim.topology import Topology, build_topology

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
_CHUNK_CELL_PERIODS = 16384


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides what the simulated network reports."""

    seed: int = 7
    n_cells: int = 60
    utc_offset_h: float = 0.0  # local time of the network, for its daily rhythm
    events_per_cell_day: float = 0.62  # candidate anomalies per cell and day, before overlap removal
    start: datetime = DEFAULT_START  # where accelerated streams begin
    min_period_ms: int = 10
    max_period_ms: int = 3_600_000
    realism: Realism = Realism()  # routine missing values, coarse resolution, late cells (e2sim.realism)


class World:
    """A deterministic simulated network: the same seed gives the same numbers, however it is read."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.topology: Topology = build_topology(config.seed, config.n_cells)
        self.deployment = deploy(self.topology, config.seed, config.realism, DEFAULT_START.timestamp())
        self.schedule = AnomalySchedule(
            self.topology, config.seed, config.events_per_cell_day, self.deployment.appears_s
        )
        self._lock = threading.Lock()
        self._stuck_values: OrderedDict[tuple[AnomalyEvent, int], np.ndarray] = OrderedDict()

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Node identities."""
        return self.topology.node_ids

    @property
    def cell_ids(self) -> tuple[str, ...]:
        """Cell identities, grouped by node."""
        return self.topology.cell_ids

    @property
    def cell_node(self) -> np.ndarray:
        """Node index of every cell."""
        return self.topology.cell_node

    @property
    def measurements(self) -> tuple[cat.Measurement, ...]:
        """The catalogue."""
        return cat.MEASUREMENTS

    @property
    def period_range_ms(self) -> tuple[int, int]:
        """Reporting periods the simulator serves."""
        return self.config.min_period_ms, self.config.max_period_ms

    def stream_start(self, period_ms: int, now_ms: int, realtime: bool) -> StreamStart:
        """Real time: the first whole period after now, due when it ends. Accelerated: the configured start."""
        if realtime:
            return StreamStart(now_ms // period_ms + 1, 0, None)
        start_ms = int(self.config.start.timestamp() * 1000)
        return StreamStart(_ceil_div(start_ms, period_ms), 0, None)

    def block(self, first_period: int, count: int, period_ms: int) -> KpmBlock:
        """Measurements of count consecutive periods of every cell."""
        periods = np.arange(first_period, first_period + count, dtype=np.int64)
        values = np.empty((count, self.topology.n_cells, len(cat.MEASUREMENTS)), dtype=np.float32)
        times_s = periods.astype(np.float64) * (period_ms / 1000.0)
        step = max(1, _CHUNK_CELL_PERIODS // self.topology.n_cells)  # keep temporaries in cache
        with self._lock:
            for row in range(0, count, step):
                chunk = periods[row : row + step]
                values[row : row + len(chunk)] = self._compute(chunk, times_s[row : row + step], period_ms)
        appeared = self.deployment.appeared(times_s)
        if appeared.all():
            return KpmBlock(times_ms=periods * period_ms, values=values)
        values[~appeared] = np.nan
        return KpmBlock(times_ms=periods * period_ms, values=values, reported=appeared)

    def _compute(self, periods: np.ndarray, times_s: np.ndarray, period_ms: int) -> np.ndarray:
        realism = self.config.realism
        events = self.schedule.between(float(times_s[0]), float(times_s[-1]) + 1e-3)
        effects = build_effects(events, times_s, self.topology.n_cells)
        load = relative_load(self.topology, times_s, self.config.utc_offset_h)
        losses = (realism.value_drop, realism.record_drop)
        noise = PeriodRandomness(self.config.seed, period_ms, periods, self.topology.n_cells, losses)
        values = compute_kpm(self.topology, load, period_ms / 1000.0, effects, noise)
        for rows, cell, measurements, event in effects.stuck:
            frozen = self._stuck_value(event, period_ms)
            values[rows, cell, list(measurements)] = frozen[list(measurements)]
        coarsen(values, self.deployment.coarse)
        report(values, noise.draws(), ~effects.labelled, period_ms / 1000.0, realism)
        values[effects.silent] = np.nan
        return values

    def _stuck_value(self, event: AnomalyEvent, period_ms: int) -> np.ndarray:
        """Noise-free measurements [K] of a stuck-counter event's cell when the event starts; cached."""
        key = (event, period_ms)
        cached = self._stuck_values.get(key)
        if cached is None:
            cell = event.cells[0]
            node_cells = self.topology.cells_of_node(int(self.topology.cell_node[cell]))
            node = self.topology.select(node_cells)
            times_s = np.array([event.start_s])
            load = relative_load(node, times_s, self.config.utc_offset_h)
            quiet = build_effects([], times_s, node.n_cells)
            values = compute_kpm(node, load, period_ms / 1000.0, quiet, NoRandomness(1, node.n_cells))
            cached = values[0, int(np.flatnonzero(node_cells == cell)[0])]
            self._stuck_values[key] = cached
            if len(self._stuck_values) > 4096:
                self._stuck_values.popitem(last=False)
        return cached

    def labels(self, start_ms: int, end_ms: int, period_ms: int) -> list[Label]:
        """Labelled events on the grid of period_ms, for periods starting in [start_ms, end_ms)."""
        with self._lock:
            events = self.schedule.between(start_ms / 1000.0, end_ms / 1000.0)
        names = cat.MEASUREMENT_NAMES
        labels: list[Label] = []
        for event in events:
            first = max(_ceil_div(int(event.start_s * 1000), period_ms), _ceil_div(start_ms, period_ms))
            last = min(_ceil_div(int(event.end_s * 1000), period_ms), _ceil_div(end_ms, period_ms)) - 1
            first, last = first * period_ms, last * period_ms
            if first > last:
                continue
            touched = tuple(names[m] for m in event.measurements)
            for cell in event.cells:
                labels.append(
                    Label(
                        node_id=self.topology.node_ids[int(self.topology.cell_node[cell])],
                        cell_id=self.topology.cell_ids[cell],
                        kind=event.kind.value,
                        first_ms=first,
                        last_ms=last,
                        intensity=event.intensity,
                        measurements=touched,
                    )
                )
        labels.sort(key=lambda lb: (lb.first_ms, lb.cell_id))
        return labels


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
