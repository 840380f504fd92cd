"""Scoring a dataset with an exported artifact, period after period, as the xApp does (torch-free).

The scorer knows only the Models contract: measurement order and time features from the manifest, the
ONNX inputs x, mask, time, state and outputs score, deviation, state_out. A cell is scored at every
period it reported; before it has reported `warmup_periods` times it is warming up (no verdict).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from models.artifact import GROUP_INPUT, NODE_PERIOD, Artifact, context_groups, time_features
from ranomaly_contracts.dataset import KpmArrays


@dataclass(frozen=True)
class StreamScores:
    """What an artifact made of a dataset: NaN where a cell did not report."""

    scores: np.ndarray  # float64 [T, N]
    deviations: np.ndarray  # float32 [T, N, K], manifest measurement order
    warm: np.ndarray  # bool [T, N]: the cell had reported warmup_periods times before this period

    def verdicts(self, threshold: float) -> np.ndarray:
        """1.0 anomalous, 0.0 normal, NaN where unscored or warming up."""
        verdict = (self.scores >= threshold).astype(np.float64)
        return np.where(self.warm & ~np.isnan(self.scores), verdict, np.nan)


def _columns(artifact: Artifact, arrays: KpmArrays) -> list[int]:
    """Dataset column of every manifest measurement; refuses a dataset that lacks one."""
    index = {name: i for i, name in enumerate(arrays.measurements)}
    missing = [name for name in artifact.manifest.measurements if name not in index]
    if missing:
        raise ValueError(f"the dataset lacks measurement(s) the model needs: {', '.join(missing)}")
    return [index[name] for name in artifact.manifest.measurements]


def score_arrays(artifact: Artifact, session: ort.InferenceSession, arrays: KpmArrays) -> StreamScores:
    """Score every reported cell-period in time order, carrying each cell's state."""
    manifest = artifact.manifest
    period_ms = round(manifest.period_s * 1000)
    if len(arrays.times_ms) > 1 and int(arrays.times_ms[1] - arrays.times_ms[0]) != period_ms:
        step = int(arrays.times_ms[1] - arrays.times_ms[0]) / 1000
        raise ValueError(f"the dataset's period is {step:g} s; the model was trained at {manifest.period_s:g} s")
    values = arrays.values[:, :, _columns(artifact, arrays)]
    n_periods, n_cells, k = values.shape
    times = time_features(list(manifest.time_features), arrays.times_ms, manifest.utc_offset_h)
    state = np.zeros((n_cells, manifest.state_size), dtype=np.float32)
    seen = np.zeros(n_cells, dtype=np.int64)
    scores = np.full((n_periods, n_cells), np.nan)
    deviations = np.full((n_periods, n_cells, k), np.nan, dtype=np.float32)
    warm = np.zeros((n_periods, n_cells), dtype=bool)
    node = arrays.node_numbers()
    for row in range(n_periods):
        cells = np.flatnonzero(arrays.reported[row])
        if cells.size == 0:
            continue
        x = values[row, cells]
        mask = (~np.isnan(x)).astype(np.float32)
        feeds = {
            "x": np.nan_to_num(x, nan=0.0).astype(np.float32),
            "mask": mask,
            "time": np.repeat(times[row : row + 1], cells.size, axis=0),
            "state": state[cells],
        }
        if manifest.context == NODE_PERIOD:
            feeds[GROUP_INPUT] = context_groups(node[cells], arrays.cell_times_ms(np.full(cells.size, row), cells))
        score, deviation, state_out = session.run(None, feeds)
        scores[row, cells] = score
        deviations[row, cells] = deviation
        state[cells] = state_out
        warm[row, cells] = seen[cells] >= manifest.warmup_periods
        seen[cells] += 1
    return StreamScores(scores=scores, deviations=deviations, warm=warm)
