"""Incidents: anomalous periods debounced per cell (open after N in a row, close after M normal ones).

An incident's attribution is each measurement's share of the excess deviation (deviation over its
attribution threshold, minus one, where positive) summed over the incident's anomalous periods. An
incident's id is `<cell id>:<collection start of its first anomalous period>`, so it is the same
wherever it is computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ranomaly_contracts.sdl import Attribution, IncidentEvent
from xapp.cells import extend_rows
from xapp.verdicts import ANOMALOUS, NORMAL, SILENCED

UPDATE_GROWTH = 1.25  # an open incident is re-published when its peak score grows by this factor
MIN_SHARE = 0.05  # measurements with a smaller share are left out of an attribution
MAX_ATTRIBUTED = 5
CARRIED = 7  # values of a carried row before the excess (IncidentTracker.carried)


class IncidentTracker:
    """Debounce counters and open incidents per slot."""

    def __init__(self, measurements: Sequence[str]) -> None:
        self.measurements = tuple(measurements)
        self.anomalous_run = np.zeros(0, dtype=np.int32)
        self.normal_run = np.zeros(0, dtype=np.int32)
        self.open = np.zeros(0, dtype=bool)
        self.run_start_ms = np.zeros(0, dtype=np.int64)
        self.last_anomalous_ms = np.zeros(0, dtype=np.int64)
        self.peak = np.zeros(0, dtype=np.float32)
        self.published_peak = np.zeros(0, dtype=np.float32)
        self.excess = np.zeros((0, len(self.measurements)), dtype=np.float32)

    @property
    def open_count(self) -> int:
        """Incidents open now."""
        return int(self.open.sum())

    def resize(self, capacity: int) -> None:
        """Grow to capacity slots."""
        for name in ("anomalous_run", "normal_run", "open", "run_start_ms", "last_anomalous_ms"):
            setattr(self, name, extend_rows(getattr(self, name), capacity, 0))
        self.peak = extend_rows(self.peak, capacity, 0.0)
        self.published_peak = extend_rows(self.published_peak, capacity, 0.0)
        self.excess = extend_rows(self.excess, capacity, 0.0)

    def reset(self, slot: int) -> None:
        """A new cell: no run, no incident."""
        self.anomalous_run[slot] = self.normal_run[slot] = 0
        self.open[slot] = False
        self.peak[slot] = self.published_peak[slot] = 0.0
        self.excess[slot] = 0.0

    def remeasure(self, measurements: Sequence[str]) -> None:
        """A model with other measurements scores from now on: attributions restart."""
        if tuple(measurements) != self.measurements:
            self.measurements = tuple(measurements)
            self.excess = np.zeros((self.open.shape[0], len(self.measurements)), dtype=np.float32)

    def update(
        self,
        slots: np.ndarray,
        status: np.ndarray,
        score: np.ndarray,
        ratio: np.ndarray,
        period_ms: np.ndarray,
        open_after: np.ndarray,
        close_after: np.ndarray,
        cells: tuple[list[str], list[str]],
        model_version: str,
    ) -> list[IncidentEvent]:
        """Advance the counters with one scored batch (open_after, close_after: each row's debounce); return
        the events it causes (few, usually none)."""
        anomalous = status == ANOMALOUS
        normal = status == NORMAL
        run = self.anomalous_run
        starts = anomalous & (run[slots] == 0)
        self.run_start_ms[slots[starts]] = period_ms[starts]
        a_slots = slots[anomalous]
        run[a_slots] += 1
        self.normal_run[a_slots] = 0
        self.last_anomalous_ms[a_slots] = period_ms[anomalous]
        self.peak[a_slots] = np.maximum(self.peak[a_slots], score[anomalous])
        self.excess[a_slots] += np.maximum(ratio[anomalous] - 1.0, 0.0)
        n_slots = slots[normal]
        run[n_slots] = 0
        self.normal_run[n_slots] += 1
        is_open = self.open[slots]
        events: list[IncidentEvent] = []
        opening = anomalous & ~is_open & (run[slots] >= open_after)
        closing = normal & is_open & (self.normal_run[slots] >= close_after)
        silenced = (status == SILENCED) & is_open
        growing = anomalous & is_open & (score > self.published_peak[slots] * UPDATE_GROWTH)
        for i in np.flatnonzero(opening | closing | silenced | growing).tolist():
            slot = int(slots[i])
            kind = "open" if opening[i] else "update" if growing[i] else "close"
            reason = "" if kind != "close" else "silenced" if silenced[i] else "recovered"
            events.append(
                self._event(slot, kind, reason, float(score[i]), int(period_ms[i]), ratio[i], cells, model_version)
            )
        # runs that ended without an incident, and incidents that closed, start afresh
        idle = ~anomalous & ~self.open[slots]
        idle_slots = slots[idle | (status == SILENCED)]
        self.peak[idle_slots] = 0.0
        self.excess[idle_slots] = 0.0
        run[slots[status == SILENCED]] = 0
        return events

    def close(
        self, slot: int, reason: str, period_ms: int, cells: tuple[list[str], list[str]], version: str
    ) -> IncidentEvent | None:
        """Close the slot's open incident, if any (the cell is released, or the xApp stops)."""
        if not self.open[slot]:
            return None
        ratio = np.zeros(len(self.measurements), dtype=np.float32)
        return self._event(slot, "close", reason, float(self.peak[slot]), period_ms, ratio, cells, version)

    def active(self, slots: np.ndarray) -> np.ndarray:
        """bool [n]: the slots with an anomalous run or an open incident (what a checkpoint carries)."""
        return self.open[slots] | (self.anomalous_run[slots] > 0)

    def carried(self, slot: int) -> list[float]:
        """The slot's run and incident as a checkpoint carries them (`carry_on` reads it back): [anomalous run,
        normal run, open, run start ms, last anomalous ms, peak, published peak, then the excess per
        measurement]."""
        head = [self.anomalous_run[slot], self.normal_run[slot], self.open[slot], self.run_start_ms[slot],
                self.last_anomalous_ms[slot], self.peak[slot], self.published_peak[slot]]  # fmt: skip
        return [*(float(value) for value in head), *self.excess[slot].tolist()]

    def carry_on(self, slot: int, row: Sequence[float], measurements: Sequence[str]) -> None:
        """Continue a run and incident another replica carried (`carried`); its excess only if it was
        attributed over the same measurements. ValueError if the row is not one."""
        if len(row) != CARRIED + len(measurements):
            raise ValueError(f"an incident row holds {CARRIED} values and one per measurement, not {len(row)}")
        self.anomalous_run[slot], self.normal_run[slot] = int(row[0]), int(row[1])
        self.open[slot] = row[2] > 0.5
        self.run_start_ms[slot], self.last_anomalous_ms[slot] = int(row[3]), int(row[4])
        self.peak[slot], self.published_peak[slot] = row[5], row[6]
        if tuple(measurements) == self.measurements:
            self.excess[slot] = row[CARRIED:]

    def open_slots(self) -> np.ndarray:
        """Slots with an open incident."""
        return np.flatnonzero(self.open)

    def _event(
        self,
        slot: int,
        kind: str,
        reason: str,
        score: float,
        period_ms: int,
        ratio: np.ndarray,
        cells: tuple[list[str], list[str]],
        model_version: str,
    ) -> IncidentEvent:
        cell_ids, node_ids = cells
        opened_ms = int(self.run_start_ms[slot])
        event = IncidentEvent(
            event=kind,
            incident_id=f"{cell_ids[slot]}:{opened_ms}",
            cell_id=cell_ids[slot],
            node_id=node_ids[slot],
            opened_ms=opened_ms,
            period_start_ms=period_ms,
            score=score,
            peak_score=float(self.peak[slot]),
            attribution=self._attribution(slot, ratio),
            model_version=model_version,
            closed_ms=int(self.last_anomalous_ms[slot]) if kind == "close" else None,
            reason=reason,
        )
        if kind == "close":
            self.open[slot] = False
            self.peak[slot] = self.published_peak[slot] = 0.0
            self.excess[slot] = 0.0
            self.anomalous_run[slot] = 0
        else:
            self.open[slot] = True
            self.published_peak[slot] = self.peak[slot]
        return event

    def _attribution(self, slot: int, ratio: np.ndarray) -> tuple[Attribution, ...]:
        weights = self.excess[slot].astype(np.float64)
        if weights.sum() <= 0.0:  # the score alone tripped: rank by how close each measurement came
            weights = np.maximum(ratio.astype(np.float64), 0.0)
        total = weights.sum()
        if total <= 0.0 or not np.isfinite(total):
            return ()
        shares = weights / total
        order = np.argsort(-shares)[:MAX_ATTRIBUTED]
        return tuple(
            Attribution(self.measurements[k], round(float(shares[k]), 4), round(float(ratio[k]), 4))
            for k in order.tolist()
            if shares[k] >= MIN_SHARE
        )
