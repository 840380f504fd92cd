"""Alarms per cell and day at a threshold: runs counted once, warm-up and unreported periods left out."""

from __future__ import annotations

import numpy as np
import pytest

from models.alarm_budget import AlarmRate, alarm_rates, within_budget
from models.scoring import StreamScores


def _scores(values: list[list[float]], warm_from: int = 0) -> StreamScores:
    scores = np.array(values, dtype=np.float64)
    warm = np.zeros(scores.shape, dtype=bool)
    warm[warm_from:] = True
    return StreamScores(scores, np.zeros((*scores.shape, 1), dtype=np.float32), warm)


def test_a_run_above_the_threshold_is_one_alarm_and_warm_up_does_not_count() -> None:
    # two cells, a quarter day a period: cell 0 one run of two periods, cell 1 above only while warming up
    result = _scores([[0.0, 5.0], [2.0, 0.0], [2.0, 0.0], [0.0, np.nan], [3.0, 0.0]], warm_from=1)
    low, high = alarm_rates(result, [1.0, 2.5], period_s=21_600)
    judged_cell_days = 7 * 0.25  # cell 1's unreported period and both first periods are not judged
    assert low == AlarmRate(1.0, 2 / judged_cell_days, 3 / 7)
    assert high.alarms_per_cell_day == pytest.approx(1 / judged_cell_days)


def test_a_budget_picks_the_lowest_threshold_that_every_higher_one_keeps() -> None:
    rates = [AlarmRate(1.0, 3.0, 0.1), AlarmRate(2.0, 0.5, 0.01), AlarmRate(3.0, 0.9, 0.01), AlarmRate(4.0, 0.2, 0.0)]
    assert within_budget(rates, 1.0) == rates[1]
    assert within_budget(rates, 0.6) == rates[3]
    assert within_budget(rates, 0.1) is None


def test_data_shorter_than_the_warm_up_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the model's warm-up"):
        alarm_rates(_scores([[1.0]], warm_from=1), [1.0], period_s=60)
