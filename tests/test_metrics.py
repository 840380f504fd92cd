"""Detection metrics on small hand-built [T, N] cases whose expected values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import (
    UNKNOWN_KIND,
    Event,
    composite_f1,
    evaluate,
    event_recall,
    false_alarms_per_1k_cell_hours,
    fpr,
    label_events,
    median_delay_periods,
    pa_f1,
    point_f1,
    point_precision,
    point_recall,
    pr_auc,
    recall_by_kind,
    threshold_for_alarm_rate,
    vus_pr,
)

NAN = math.nan
SQRT_HALF = math.sqrt(1 / 2)


def column(*values: float) -> np.ndarray:
    """One cell's series as a [T, 1] array."""
    return np.array(values, dtype=np.float64)[:, np.newaxis]


def flags(*values: int) -> np.ndarray:
    """One cell's labels as a [T, 1] boolean array."""
    return np.array(values, dtype=bool)[:, np.newaxis]


def rows(length: int, *labelled: range) -> np.ndarray:
    """[length] booleans, True on the given row ranges."""
    mask = np.zeros(length, dtype=bool)
    for span in labelled:
        mask[span] = True
    return mask


def test_label_events_are_maximal_runs_per_cell() -> None:
    labels = np.array([[1, 0], [1, 0], [0, 0], [1, 1], [0, 1]], dtype=bool)
    assert label_events(labels) == [Event(0, 0, 1), Event(0, 3, 3), Event(1, 3, 4)]


def test_point_metrics_leave_nan_scores_out() -> None:
    # Row 4 is labelled but unscored: without it two labelled points remain, rows 0 and 1.
    scores = column(0.9, 0.2, 0.8, 0.1, NAN, 0.7)
    labels = flags(1, 1, 0, 0, 1, 0)
    # Alarms at >= 0.5: rows 0, 2, 5; one of them is labelled.
    assert point_precision(scores, labels, 0.5) == pytest.approx(1 / 3)
    assert point_recall(scores, labels, 0.5) == pytest.approx(1 / 2)
    assert point_f1(scores, labels, 0.5) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert fpr(scores, labels, 0.5) == pytest.approx(2 / 3)  # rows 2 and 5 of the normal rows 2, 3, 5
    # A threshold below every score alarms on the five scored rows only.
    assert point_precision(scores, labels, -1.0) == pytest.approx(2 / 5)
    assert point_recall(scores, labels, -1.0) == 1.0


def test_no_alarm_gives_nan_precision_and_zero_f1() -> None:
    scores, labels = column(0.1, 0.2, 0.3), flags(0, 1, 0)
    assert math.isnan(point_precision(scores, labels, 1.0))
    assert point_recall(scores, labels, 1.0) == 0.0
    assert point_f1(scores, labels, 1.0) == 0.0
    assert composite_f1(scores, labels, 1.0) == 0.0


def test_no_labelled_point_gives_nan_recall_but_a_precision() -> None:
    scores, labels = column(0.1, 0.9, 0.3), flags(0, 0, 0)
    assert point_precision(scores, labels, 0.5) == 0.0
    assert math.isnan(point_recall(scores, labels, 0.5))
    assert math.isnan(point_f1(scores, labels, 0.5))
    assert math.isnan(event_recall(scores, labels, 0.5))
    assert math.isnan(pr_auc(scores, labels))
    assert math.isnan(vus_pr(scores, labels, 4))
    assert fpr(scores, labels, 0.5) == pytest.approx(1 / 3)


def test_all_nan_scores_make_every_metric_nan() -> None:
    scores = np.full((6, 2), NAN)
    labels = np.zeros((6, 2), dtype=bool)
    labels[1:3, 0] = True
    result = evaluate(scores, labels, threshold=0.5, period_s=60.0, max_buffer=4)
    assert all(math.isnan(value) for value in result.values()), result


def test_event_recall_and_delay_count_from_the_event_start() -> None:
    labels = np.zeros((10, 2), dtype=bool)
    labels[2:5, 0] = True  # event A: rows 2..4 of cell 0
    labels[7:9, 0] = True  # event B: rows 7..8 of cell 0
    labels[0:2, 1] = True  # event C: rows 0..1 of cell 1
    scores = np.zeros((10, 2))
    scores[4, 0] = 1.0  # A detected in its third period
    scores[5, 1] = 1.0  # outside every event
    assert event_recall(scores, labels, 0.5) == pytest.approx(1 / 3)
    assert median_delay_periods(scores, labels, 0.5) == 2.0
    scores[0, 1] = 1.0  # C detected in its first period
    assert event_recall(scores, labels, 0.5) == pytest.approx(2 / 3)
    assert median_delay_periods(scores, labels, 0.5) == 1.0  # median of delays 2 and 0


def test_median_delay_is_nan_when_nothing_is_detected() -> None:
    assert math.isnan(median_delay_periods(column(0, 0, 0), flags(0, 1, 1), 0.5))


def test_event_with_no_scored_point_is_left_out() -> None:
    scores = column(NAN, NAN, 0.0, 0.0, 1.0, 0.0)
    labels = flags(1, 1, 0, 0, 1, 0)  # the first event lies entirely in the warm-up
    assert event_recall(scores, labels, 0.5) == 1.0


def test_composite_f1_of_an_always_alarming_detector_is_capped_by_the_anomaly_rate() -> None:
    labels = np.zeros((100, 2), dtype=bool)
    labels[10:20, 0] = True
    labels[50:55, 1] = True
    scores = np.full((100, 2), 3.0)
    threshold = threshold_for_alarm_rate(scores)  # a constant score alarms everywhere
    anomaly_rate = 15 / 200
    assert point_precision(scores, labels, threshold) == pytest.approx(anomaly_rate)
    assert event_recall(scores, labels, threshold) == 1.0
    assert composite_f1(scores, labels, threshold) == pytest.approx(2 * anomaly_rate / (anomaly_rate + 1))


def test_composite_f1_combines_point_precision_and_event_recall() -> None:
    labels = flags(1, 1, 0, 1, 0, 0, 1, 0)  # events rows 0..1, 3, 6
    scores = column(0, 1, 1, 0, 1, 0, 0, 0)  # alarms rows 1, 2, 4: one labelled, one event detected
    assert composite_f1(scores, labels, 0.5) == pytest.approx(1 / 3)  # harmonic mean of 1/3 and 1/3


def test_point_adjusted_f1_rewards_one_alarm_per_event() -> None:
    labels = rows(40, range(5, 15), range(25, 35))[:, np.newaxis]
    scores = np.zeros((40, 1))
    scores[[5, 25], 0] = 1.0  # one alarm at the start of each ten-period event
    assert point_f1(scores, labels, 0.5) == pytest.approx(2 * 0.1 / 1.1)  # precision 1, recall 2 / 20
    assert pa_f1(scores, labels, 0.5) == 1.0
    scores[25, 0], scores[20, 0] = 0.0, 1.0  # the second event missed, one false alarm
    assert point_f1(scores, labels, 0.5) == pytest.approx(2 * 0.5 * 0.05 / 0.55)
    assert pa_f1(scores, labels, 0.5) == pytest.approx(2 * (10 / 11) * 0.5 / (10 / 11 + 0.5))


def test_false_alarms_are_counted_per_run_not_per_point() -> None:
    scores = np.array(
        [
            [1, 1, 1, 0, 0, 1, 0, 1],  # runs 0..2 (false), 5 (on a label), 7 (false)
            [1, 0, 0, 1, NAN, 1, 0, 0],  # runs 0, 3 and 5: the unscored row 4 ends a run
        ],
        dtype=np.float64,
    ).T
    labels = np.zeros((8, 2), dtype=bool)
    labels[5:7, 0] = True
    # Five false runs (a run of cell 0's last row and one of cell 1's first row stay apart) over
    # 15 scored quarter-hours = 3.75 cell-hours.
    assert false_alarms_per_1k_cell_hours(scores, labels, 0.5, period_s=900.0) == pytest.approx(5 * 1000 / 3.75)


def test_pr_auc_is_average_precision_over_scored_points() -> None:
    scores = column(0.9, 0.8, 0.7, 0.6, NAN)
    labels = flags(1, 0, 1, 0, 1)
    assert pr_auc(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))


def test_vus_pr_of_a_perfect_score_is_one() -> None:
    labels = np.zeros((50, 3), dtype=bool)
    labels[[4, 5, 6, 30], 0] = True
    labels[0:3, 1] = True
    labels[45:50, 2] = True
    scores = labels + 0.1 * np.random.default_rng(3).random((50, 3))
    assert vus_pr(scores, labels, max_buffer=10) == 1.0


def test_vus_pr_of_a_constant_score_is_the_soft_anomaly_rate() -> None:
    labels = flags(0, 0, 0, 0, 1, 1, 0, 0, 0, 0)
    scores = np.full((10, 1), 0.5)
    # Everything alarms at once: TPR 1, precision (2 + B_w) / 10, where B_w sums the soft labels of the
    # w // 2 rows on each side of the event, sqrt(1 - d / w) at distance d.
    buffer_weights = [0.0, 0.0, 2 * SQRT_HALF, 2 * math.sqrt(2 / 3), 2 * (math.sqrt(3 / 4) + SQRT_HALF)]
    expected = float(np.mean([(2 + b) / 10 for b in buffer_weights]))
    assert vus_pr(scores, labels, max_buffer=4) == pytest.approx(expected)
    assert expected < 0.35


def test_vus_pr_rewards_existence_of_each_range() -> None:
    labels = flags(0, 1, 1, 0, 0, 0, 1, 1, 0, 0)
    scores = column(0, 1, 1, 0, 0, 0, 0, 0, 0, 0)  # the first event found perfectly, the second not at all
    # Threshold 1: recall 2/4 times existence 1/2 = TPR 0.25 at precision 1; threshold 0: TPR 1 at 4/10.
    assert vus_pr(scores, labels, max_buffer=0) == pytest.approx(0.25 * 1 + 0.75 * 0.4)
    assert pr_auc(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 0.4)


def test_vus_pr_credits_an_alarm_just_after_the_event() -> None:
    labels = flags(0, 0, 0, 1, 1, 0, 0, 0, 0, 0)
    scores = column(0, 0, 0, 0, 0, 1, 0, 0, 0, 0)  # alarm one period after the event
    # w = 0, 1: no buffer, the alarm is a plain false positive, AP = 1 * 2/10.
    # w = 2: rows 2 and 5 weigh b = sqrt(1/2). Threshold 1: TP = b, recall b / (2 + b/2), the widened range
    # holds an alarm, precision b. Threshold 0: TPR 1, precision (2 + 2b) / 10.
    b = SQRT_HALF
    tpr = b / (2 + b / 2)
    second_window = tpr * b + (1 - tpr) * (2 + 2 * b) / 10
    assert vus_pr(scores, labels, max_buffer=2) == pytest.approx((0.2 + 0.2 + second_window) / 3)
    assert pr_auc(scores, labels) == pytest.approx(0.2)


@pytest.mark.parametrize("event_in_first_cell", [False, True])
def test_vus_pr_buffer_never_crosses_into_another_cell(event_in_first_cell: bool) -> None:
    # The event touches one cell's edge and the only high score sits on the touching edge of the other cell:
    # were the cells one series, that score would be inside the event's buffer.
    labels = np.zeros((4, 2), dtype=bool)
    scores = np.zeros((4, 2))
    if event_in_first_cell:
        labels[2:4, 0] = True
        scores[0, 1] = 1.0
    else:
        labels[0:2, 1] = True
        scores[3, 0] = 1.0
    # Threshold 1 finds nothing (TPR 0); threshold 0 gives TPR 1 at precision (2 + B_w) / 8, B_w from the
    # event's own cell only.
    buffer_weights = [0.0, 0.0, SQRT_HALF, math.sqrt(2 / 3), math.sqrt(3 / 4) + SQRT_HALF]
    expected = float(np.mean([(2 + b) / 8 for b in buffer_weights]))
    assert vus_pr(scores, labels, max_buffer=4) == pytest.approx(expected)


def test_vus_pr_ignores_an_unscored_cell() -> None:
    labels = flags(0, 0, 0, 1, 1, 0, 0, 0, 0, 0)
    scores = column(0.1, 0.3, 0.2, 0.9, 0.4, 0.8, 0.0, 0.5, 0.6, 0.7)
    with_unscored = np.hstack([scores, np.full((10, 1), NAN)])
    labels_with_unscored = np.hstack([labels, flags(1, 1, 0, 0, 0, 0, 1, 1, 1, 0)])
    assert vus_pr(with_unscored, labels_with_unscored, 6) == pytest.approx(vus_pr(scores, labels, 6))


def test_threshold_for_alarm_rate_stays_at_or_under_the_rate() -> None:
    scores = np.arange(1000, dtype=np.float64).reshape(500, 2)
    threshold = threshold_for_alarm_rate(np.vstack([scores, np.full((7, 2), NAN)]), rate=0.005)
    assert 994 < threshold <= 995  # five alarms allowed: 995..999
    assert np.count_nonzero(scores >= threshold) == 5


def test_threshold_for_alarm_rate_is_the_smallest_such_threshold() -> None:
    scores = np.random.default_rng(7).normal(size=(400, 5))
    threshold = threshold_for_alarm_rate(scores, rate=0.01)
    assert np.count_nonzero(scores >= threshold) <= 20
    assert np.count_nonzero(scores >= np.nextafter(threshold, -np.inf)) > 20


def test_threshold_for_alarm_rate_edges() -> None:
    tied_top = np.r_[np.zeros(990), np.ones(10)][:, np.newaxis]
    assert np.count_nonzero(tied_top >= threshold_for_alarm_rate(tied_top, rate=0.005)) == 0  # 10 ties > 5
    assert threshold_for_alarm_rate(np.full((5, 2), 3.0)) == 3.0
    assert math.isnan(threshold_for_alarm_rate(np.full((5, 2), NAN)))
    assert threshold_for_alarm_rate(column(1, 2, 3), rate=1.0) == 1.0
    with pytest.raises(ValueError, match="rate"):
        threshold_for_alarm_rate(column(1, 2, 3), rate=1.5)


def test_recall_by_kind() -> None:
    scores = np.zeros((10, 2))
    scores[3, 0] = 1.0
    events = [
        Event(0, 2, 4, "outage"),
        Event(1, 2, 4, "outage"),
        Event(0, 7, 8, "congestion"),
        Event(1, 6, 6),
    ]
    assert recall_by_kind(scores, 0.5, events) == {"congestion": 0.0, "outage": 0.5, UNKNOWN_KIND: 0.0}


def test_evaluate_reports_every_metric() -> None:
    labels = np.zeros((20, 2), dtype=bool)
    labels[5:9, 0] = True
    labels[12:14, 1] = True
    scores = np.linspace(0, 1, 40).reshape(20, 2) + labels
    result = evaluate(scores, labels, threshold=1.2, period_s=60.0, max_buffer=4)
    assert list(result) == [
        "composite_f1",
        "event_recall",
        "point_precision",
        "point_recall",
        "point_f1",
        "pr_auc",
        "vus_pr",
        "fpr",
        "false_alarms_per_1k_cell_hours",
        "median_delay_periods",
        "pa_f1",
    ]
    assert result["point_f1"] == point_f1(scores, labels, 1.2)
    assert result["vus_pr"] == vus_pr(scores, labels, 4)
    assert result["median_delay_periods"] == median_delay_periods(scores, labels, 1.2)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        point_precision(np.zeros((4, 2)), np.zeros((4, 3), dtype=bool), 0.5)
