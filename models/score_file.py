"""The Scores contract (ARCHITECTURE.md): one row per reported cell-period with score, verdict and
per-measurement deviations, written as CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.artifact import Manifest
from models.scoring import StreamScores
from ranomaly_contracts.dataset import KpmArrays, format_times


def scores_frame(arrays: KpmArrays, result: StreamScores, manifest: Manifest) -> pd.DataFrame:
    """timestamp, node_id, cell_id, score, verdict (empty while warming up), dev.<measurement>..."""
    rows, cols = np.nonzero(arrays.reported)
    verdicts = result.verdicts(manifest.thresholds.score)[rows, cols]
    frame = pd.DataFrame(
        {
            "timestamp": format_times(pd.Series(pd.to_datetime(arrays.cell_times_ms(rows, cols), unit="ms", utc=True))),
            "node_id": np.array(arrays.node_ids)[cols],
            "cell_id": np.array(arrays.cell_ids)[cols],
            "score": np.round(result.scores[rows, cols], 6),
            "verdict": pd.Series(verdicts).astype("Int64"),
        }
    )
    for k, name in enumerate(manifest.measurements):
        frame[f"dev.{name}"] = np.round(result.deviations[rows, cols, k].astype(np.float64), 6)
    return frame


def write_scores(path: str | Path, arrays: KpmArrays, result: StreamScores, manifest: Manifest) -> int:
    """Write the scores CSV; return the number of rows."""
    frame = scores_frame(arrays, result, manifest)
    frame.to_csv(path, index=False)
    return len(frame)
