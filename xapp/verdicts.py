"""Verdicts: the active policies' thresholds and scope per cell slot, applied to a scored batch."""

from __future__ import annotations

import numpy as np

from ranomaly_contracts.sdl import CellStatus
from xapp.cells import extend_rows

WARMING_UP, NORMAL, ANOMALOUS, SILENCED = (np.uint8(s) for s in CellStatus)


class PolicyArrays:
    """Effective policy per slot, as resolve_cells computed it for the model scoring now."""

    def __init__(self, n_measurements: int) -> None:
        self.enabled = np.zeros(0, dtype=bool)
        self.score_threshold = np.zeros(0, dtype=np.float32)
        self.verdict_deviation = np.zeros((0, n_measurements), dtype=np.float32)
        self.attribution_deviation = np.zeros((0, n_measurements), dtype=np.float32)
        self.open_after = np.zeros(0, dtype=np.int32)
        self.close_after = np.zeros(0, dtype=np.int32)

    def resize(self, capacity: int) -> None:
        """Grow to capacity slots (new slots silenced until assigned)."""
        self.enabled = extend_rows(self.enabled, capacity, False)
        self.score_threshold = extend_rows(self.score_threshold, capacity, np.inf)
        self.verdict_deviation = extend_rows(self.verdict_deviation, capacity, np.inf)
        self.attribution_deviation = extend_rows(self.attribution_deviation, capacity, 1.0)
        self.open_after = extend_rows(self.open_after, capacity, 1)
        self.close_after = extend_rows(self.close_after, capacity, 1)

    def reset(self, slot: int) -> None:
        """A new cell: nothing assigned yet."""
        self.enabled[slot] = False

    def assign(
        self,
        slots: np.ndarray,
        enabled: np.ndarray,
        score_threshold: np.ndarray,
        verdict_deviation: np.ndarray,
        attribution_deviation: np.ndarray,
        open_after: np.ndarray,
        close_after: np.ndarray,
    ) -> None:
        """Set the resolved policy of these slots."""
        self.enabled[slots] = enabled
        self.score_threshold[slots] = score_threshold
        self.verdict_deviation[slots] = verdict_deviation
        self.attribution_deviation[slots] = np.where(attribution_deviation > 0, attribution_deviation, 1.0)
        self.open_after[slots] = open_after
        self.close_after[slots] = close_after

    def decide(
        self, slots: np.ndarray, score: np.ndarray, deviation: np.ndarray, warm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Status per row (CellStatus values, uint8) and deviation over its attribution threshold."""
        anomalous = (score >= self.score_threshold[slots]) | (deviation >= self.verdict_deviation[slots]).any(axis=1)
        status = np.where(anomalous, ANOMALOUS, NORMAL)
        status = np.where(self.enabled[slots], status, SILENCED)
        status = np.where(warm, status, WARMING_UP).astype(np.uint8)
        return status, deviation / self.attribution_deviation[slots]
