"""Verdicts: the active policies' thresholds and scope per cell slot, applied to a scored batch.

Cells share few distinct effective policies (one per scope that differs), so a slot keeps only the index
of its policy in a table of the distinct ones: 4 bytes a cell, whatever the number of measurements.
"""

from __future__ import annotations

import numpy as np

from ranomaly_contracts.sdl import CellStatus
from xapp.cells import extend_rows

WARMING_UP, NORMAL, ANOMALOUS, SILENCED = (np.uint8(s) for s in CellStatus)

_COMPACT_AT = 1024  # distinct policies kept before those no slot uses any more are dropped


class PolicyArrays:
    """Effective policy per slot, as resolve_cells computed it for the model scoring now.

    Row 0 of the table is a new slot's: silenced, nothing assigned yet.
    """

    def __init__(self, n_measurements: int) -> None:
        self.k = n_measurements
        self.row = np.zeros(0, dtype=np.uint32)  # per slot: its policy's row in the table
        self.enabled = np.zeros(1, dtype=bool)
        self.score_threshold = np.full(1, np.inf, dtype=np.float32)
        self.verdict_deviation = np.full((1, n_measurements), np.inf, dtype=np.float32)
        self.attribution_deviation = np.ones((1, n_measurements), dtype=np.float32)
        self.open_after = np.ones(1, dtype=np.int32)
        self.close_after = np.ones(1, dtype=np.int32)
        self._rows: dict[bytes, int] = {self._keys(*self._columns(slice(0, 1))).tolist()[0]: 0}

    def __len__(self) -> int:
        """Distinct policies in the table."""
        return len(self.enabled)

    def resize(self, capacity: int) -> None:
        """Grow to capacity slots (new slots silenced until assigned)."""
        self.row = extend_rows(self.row, capacity, 0)

    def reset(self, slot: int) -> None:
        """A new cell: nothing assigned yet."""
        self.row[slot] = 0

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
        attribution = np.where(attribution_deviation > 0, attribution_deviation, 1.0)
        columns = (enabled, score_threshold, verdict_deviation, attribution, open_after, close_after)
        keys = self._keys(*columns)
        distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rows = np.empty(len(distinct), dtype=np.uint32)
        added: list[int] = []
        for i, key in enumerate(distinct.tolist()):
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = len(self._rows)
                added.append(int(first[i]))
            rows[i] = row
        if added:
            self._append(*(np.asarray(column)[added] for column in columns))
        self.row[slots] = rows[inverse.reshape(-1)]
        if len(self) > _COMPACT_AT:
            self._compact()

    def decide(
        self, slots: np.ndarray, score: np.ndarray, deviation: np.ndarray, warm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Status per row (CellStatus values, uint8) and deviation over its attribution threshold."""
        row = self.row[slots]
        anomalous = (score >= self.score_threshold[row]) | (deviation >= self.verdict_deviation[row]).any(axis=1)
        status = np.where(anomalous, ANOMALOUS, NORMAL)
        status = np.where(self.enabled[row], status, SILENCED)
        status = np.where(warm, status, WARMING_UP).astype(np.uint8)
        return status, deviation / self.attribution_deviation[row]

    def debounce(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """open_after and close_after of each given slot."""
        row = self.row[slots]
        return self.open_after[row], self.close_after[row]

    def _columns(self, rows: slice | np.ndarray) -> tuple[np.ndarray, ...]:
        return (self.enabled[rows], self.score_threshold[rows], self.verdict_deviation[rows],
                self.attribution_deviation[rows], self.open_after[rows], self.close_after[rows])  # fmt: skip

    def _keys(self, *columns: np.ndarray) -> np.ndarray:
        """Each row's policy as bytes (equal bytes: equal policy, NaN included)."""
        enabled, score, verdict, attribution, open_after, close_after = columns
        n = len(enabled)
        packed = np.concatenate(
            [
                np.asarray(enabled, dtype=np.float32).reshape(n, 1),
                np.asarray(score, dtype=np.float32).reshape(n, 1),
                np.asarray(verdict, dtype=np.float32).reshape(n, self.k),
                np.asarray(attribution, dtype=np.float32).reshape(n, self.k),
                np.asarray(open_after, dtype=np.int32).view(np.float32).reshape(n, 1),
                np.asarray(close_after, dtype=np.int32).view(np.float32).reshape(n, 1),
            ],
            axis=1,
        )
        return np.ascontiguousarray(packed).view(np.dtype((np.bytes_, packed.shape[1] * 4))).reshape(n)

    def _append(self, *columns: np.ndarray) -> None:
        enabled, score, verdict, attribution, open_after, close_after = columns
        self.enabled = np.concatenate([self.enabled, enabled.astype(bool)])
        self.score_threshold = np.concatenate([self.score_threshold, score.astype(np.float32)])
        self.verdict_deviation = np.concatenate([self.verdict_deviation, verdict.astype(np.float32)])
        self.attribution_deviation = np.concatenate([self.attribution_deviation, attribution.astype(np.float32)])
        self.open_after = np.concatenate([self.open_after, open_after.astype(np.int32)])
        self.close_after = np.concatenate([self.close_after, close_after.astype(np.int32)])

    def _compact(self) -> None:
        """Keep only the policies some slot uses (and row 0)."""
        used = np.union1d(np.zeros(1, dtype=np.uint32), np.unique(self.row))
        columns = self._columns(used)
        self.enabled, self.score_threshold, self.verdict_deviation = columns[0], columns[1], columns[2]
        self.attribution_deviation, self.open_after, self.close_after = columns[3], columns[4], columns[5]
        self._rows = {key: i for i, key in enumerate(self._keys(*columns).tolist())}
        renumber = np.zeros(int(used[-1]) + 1, dtype=np.uint32)
        renumber[used] = np.arange(len(used), dtype=np.uint32)
        self.row = renumber[self.row]
