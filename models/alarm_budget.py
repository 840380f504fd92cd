"""An operating point from an alarm budget: how many alarms each threshold raises per cell and day on a network's
own data, labels or not, and the A1 threshold that holds a budget.

An alarm is the start of a run of periods at or above the threshold (what the xApp opens an incident on with
the default debounce); warming-up periods do not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.artifact import Manifest
from models.scoring import StreamScores

MULTIPLES = tuple(2 ** (k / 2) for k in range(-4, 7))  # 0.25 to 8 times the model's own threshold


@dataclass(frozen=True, slots=True)
class AlarmRate:
    """What one threshold does to the data."""

    threshold: float
    alarms_per_cell_day: float
    flagged_share: float  # of the scored cell-periods, those at or above the threshold


def alarm_rates(result: StreamScores, thresholds: list[float], period_s: float) -> list[AlarmRate]:
    """Alarms per cell per day and the flagged share at every threshold, lowest threshold first."""
    judged = result.warm & ~np.isnan(result.scores)
    if not judged.any():
        raise ValueError("no period was scored after warm-up: the data is shorter than the model's warm-up")
    cell_days = float(judged.sum()) * period_s / 86_400
    scores = np.where(judged, result.scores, -np.inf)
    rates = []
    for threshold in sorted(thresholds):
        above = scores >= threshold
        starts = above.copy()
        starts[1:] &= ~above[:-1]
        rates.append(AlarmRate(threshold, float(starts.sum()) / cell_days, float(above.sum()) / float(judged.sum())))
    return rates


def candidate_thresholds(manifest: Manifest) -> list[float]:
    """The model's threshold and multiples of it from a quarter to eight times."""
    return [manifest.thresholds.score * multiple for multiple in MULTIPLES]


def within_budget(rates: list[AlarmRate], budget: float) -> AlarmRate | None:
    """The lowest threshold from which on every higher one raises at most budget alarms per cell and day."""
    chosen = None
    for rate in reversed(rates):
        if rate.alarms_per_cell_day > budget:
            break
        chosen = rate
    return chosen


def sigma_policy(manifest: Manifest, threshold: float) -> dict[str, Any] | None:
    """The A1 type-20100 threshold that sets this score threshold (mode sigma), or None if none can."""
    stats = manifest.thresholds.score_stats
    if stats.std <= 0 or threshold <= stats.mean:
        return None
    return {"threshold": {"mode": "sigma", "value": round((threshold - stats.mean) / stats.std, 4)}}


def format_rates(rates: list[AlarmRate], manifest: Manifest) -> str:
    """The table `ranomaly alarms` prints."""
    lines = ["threshold  x model  alarms/cell/day  flagged"]
    for rate in rates:
        multiple = rate.threshold / manifest.thresholds.score
        lines.append(
            f"{rate.threshold:9.3f}  {multiple:7.2f}  {rate.alarms_per_cell_day:15.3f}  {rate.flagged_share:7.3%}"
        )
    return "\n".join(lines)
