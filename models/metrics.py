"""Detection metrics that `ranomaly eval` prints: point, event and range-based scores of [T, N] anomaly scores.

Scores and labels are [T, N] arrays: T periods (rows, in time order) by N cells (columns). A higher score is
more anomalous; a NaN score marks a cell-period the detector did not score (a warming-up cell, say), and such
points are left out of every metric. An alarm is a scored point whose score is >= the threshold. Rates are
fractions. A metric whose denominator is empty is NaN: precision with no alarm, recall with no labelled point,
FPR with no normal point; an event with no scored point is left out of the event metrics.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

VUS_THRESHOLDS = 250
"""Thresholds per range-based PR curve: TSB-AD's default `thre`."""

UNKNOWN_KIND = "unknown"
"""The key under which recall_by_kind counts events whose kind is None."""


@dataclass(frozen=True)
class Event:
    """A labelled anomaly: rows start..end (inclusive) of one cell's column, with an optional kind."""

    cell: int
    start: int
    end: int
    kind: str | None = None


def label_events(labels: npt.ArrayLike) -> list[Event]:
    """The events of [T, N] labels: maximal runs of True in each column, ordered by cell then start."""
    label_array = np.asarray(labels, dtype=bool)
    if label_array.ndim != 2:
        raise ValueError(f"labels must be a 2-D [T, N] array, got shape {label_array.shape}")
    cells, starts, ends = _true_runs(label_array)
    return [Event(int(cell), int(start), int(end)) for cell, start, end in zip(cells, starts, ends, strict=True)]


def point_precision(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> float:
    """Share of alarms that fall on labelled points; NaN when nothing alarms."""
    score_array, label_array, valid = _as_arrays(scores, labels)
    return _precision_recall(_alarms(score_array, threshold), label_array, valid)[0]


def point_recall(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> float:
    """Share of labelled scored points that alarm; NaN when no scored point is labelled."""
    score_array, label_array, valid = _as_arrays(scores, labels)
    return _precision_recall(_alarms(score_array, threshold), label_array, valid)[1]


def point_f1(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> float:
    """Harmonic mean of point precision and point recall (0 when recall is 0, even with no alarm)."""
    score_array, label_array, valid = _as_arrays(scores, labels)
    return _harmonic_mean(*_precision_recall(_alarms(score_array, threshold), label_array, valid))


def event_recall(
    scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, events: list[Event] | None = None
) -> float:
    """Share of events (default: label_events(labels)) with at least one alarm in [start, end]."""
    score_array, label_array, valid = _as_arrays(scores, labels)
    scorable = _scorable(_events_or_labelled(events, label_array), valid)
    return _share_detected(_alarms(score_array, threshold), scorable)


def composite_f1(
    scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, events: list[Event] | None = None
) -> float:
    """Harmonic mean of point precision and event recall (Garg et al. 2021).

    Alarming everywhere gives precision = anomaly rate and event recall = 1, so the score stays low.
    """
    return _harmonic_mean(point_precision(scores, labels, threshold), event_recall(scores, labels, threshold, events))


def pa_f1(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, events: list[Event] | None = None) -> float:
    """Point-adjusted F1: one alarm in an event marks every scored point of it as detected.

    It overrates detectors that alarm once per long event; report it next to the honest metrics only.
    """
    score_array, label_array, valid = _as_arrays(scores, labels)
    adjusted = _alarms(score_array, threshold)
    for event in _scorable(_events_or_labelled(events, label_array), valid):
        rows = slice(event.start, event.end + 1)
        if adjusted[rows, event.cell].any():
            adjusted[rows, event.cell] = valid[rows, event.cell]
    return _harmonic_mean(*_precision_recall(adjusted, label_array, valid))


def pr_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Average precision of the scores against the point labels (scikit-learn); NaN with no labelled point."""
    score_array, label_array, valid = _as_arrays(scores, labels)
    if not label_array[valid].any():
        return math.nan
    return float(average_precision_score(label_array[valid], score_array[valid]))


def fpr(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> float:
    """False-positive rate: share of unlabelled scored points that alarm."""
    score_array, label_array, valid = _as_arrays(scores, labels)
    alarms = _alarms(score_array, threshold)
    return _ratio(_count(alarms & ~label_array), _count(valid & ~label_array))


def false_alarms_per_1k_cell_hours(
    scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, period_s: float
) -> float:
    """False-alarm runs per 1,000 cell-hours of scored data.

    A false-alarm run is a maximal run of consecutive alarms in one cell that touches no labelled point; a
    NaN score ends a run. Each run counts once, however long.
    """
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    score_array, label_array, valid = _as_arrays(scores, labels)
    cells, starts, ends = _true_runs(_alarms(score_array, threshold))
    labelled_before = np.vstack([np.zeros((1, label_array.shape[1]), dtype=np.intp), label_array.cumsum(axis=0)])
    labelled_in_run = labelled_before[ends + 1, cells] - labelled_before[starts, cells]
    cell_hours = _count(valid) * period_s / 3600.0
    return _ratio(1000.0 * _count(labelled_in_run == 0), cell_hours)


def median_delay_periods(
    scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float, events: list[Event] | None = None
) -> float:
    """Median, over detected events, of the periods from the event's start to its first alarm (0 = first period).

    NaN when no event is detected.
    """
    score_array, label_array, valid = _as_arrays(scores, labels)
    scorable = _scorable(_events_or_labelled(events, label_array), valid)
    delays = [delay for delay in _delays(_alarms(score_array, threshold), scorable) if delay is not None]
    return float(np.median(delays)) if delays else math.nan


def recall_by_kind(scores: npt.ArrayLike, threshold: float, events: list[Event]) -> dict[str, float]:
    """Event recall per event kind (events whose kind is None count under UNKNOWN_KIND), keys sorted.

    A kind whose events have no scored point at all gets NaN.
    """
    score_array = _as_scores(scores)
    alarms, valid = _alarms(score_array, threshold), ~np.isnan(score_array)
    by_kind: defaultdict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_kind[UNKNOWN_KIND if event.kind is None else event.kind].append(event)
    return {kind: _share_detected(alarms, _scorable(of_kind, valid)) for kind, of_kind in sorted(by_kind.items())}


def threshold_for_alarm_rate(validation_scores: npt.ArrayLike, rate: float = 0.005) -> float:
    """The smallest threshold at which scores >= threshold alarm on at most `rate` of the scored validation points.

    With k = floor(rate * n) alarms allowed among n scored points, that is the float just above the (k+1)-th
    highest score, so ties at that score never alarm. Two edges: a constant score carries no ranking, and its
    threshold is that constant, so such a detector alarms on every point (rather than on none); with no scored
    point the threshold is NaN, which never alarms.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    values = np.asarray(validation_scores, dtype=np.float64).ravel()
    ascending = np.sort(values[~np.isnan(values)])
    if ascending.size == 0:
        return math.nan
    allowed = math.floor(rate * ascending.size)
    if ascending[0] == ascending[-1] or allowed >= ascending.size:
        return float(ascending[0])
    return float(np.nextafter(ascending[ascending.size - 1 - allowed], np.inf))


def vus_pr(scores: npt.ArrayLike, labels: npt.ArrayLike, max_buffer: int) -> float:
    """Volume under the range-based PR surface (VUS-PR; Paparrizos et al., VLDB 2022), as TSB-AD computes it.

    This follows TSB-AD's `basic_metricor.RangeAUC_volume_opt`, the function behind its `VUS-PR`, with
    `max_buffer` in the role of its `windowSize`. For each buffer length w = 0, 1, ..., max_buffer:

    - Soft labels: every labelled point weighs 1; an unlabelled point at distance d <= w // 2 outside a labelled
      range weighs sqrt(1 - d / w), contributions of several ranges add up and the sum is capped at 1. So a
      range reaches w // 2 periods on each side (w = 0 and w = 1 add nothing).
    - Thresholds: the VUS_THRESHOLDS (250) scores at evenly spaced ranks, highest first, of the sorted scores.
    - At each threshold, over the alarms (scores >= threshold): TP = alarmed labelled points + the weights of
      alarmed buffer points; precision = TP / alarms; recall = min(TP / (P + B / 2), 1), with P labelled points
      and B the weight of the alarmed buffer points (TSB-AD's (P + N_labels) / 2); existence = share of the
      widened ranges (ranges widened by w // 2, merged where their widenings meet) holding an alarm anywhere,
      buffer included; the range TPR is recall * existence.
    - The range PR-AUC of w is sum over thresholds of (TPR_i - TPR_(i-1)) * precision_i, from TPR_0 = 0 (a step
      sum, no interpolation).

    The result is the mean of the max_buffer + 1 range PR-AUCs. A perfect score (labelled points strictly above
    all others) gives 1.0. NaN when no scored point is labelled.

    Where it differs from TSB-AD, which takes one series: every cell is its own series, and each count (TP,
    alarms, P, B, ranges, ranges detected) is summed over all cells before precision and recall are computed,
    with one set of thresholds taken from the scores of all cells. A range's buffer and its merging with other
    ranges stop at its own cell's first and last rows. NaN-scored points are unlabelled points that never alarm
    and are not counted: a labelled range they interrupt is two ranges. For one cell without NaN the result is
    TSB-AD's. Like TSB-AD's `get_metrics`, which passes its `slidingWindow` as `windowSize`, max_buffer is a
    total buffer length: a range reaches max_buffer // 2 periods on each side at most.
    """
    if max_buffer < 0:
        raise ValueError(f"max_buffer must be >= 0, got {max_buffer}")
    score_array, label_array, valid = _as_arrays(scores, labels)
    series, labelled = _cells_in_one_series(score_array, label_array & valid, gap=max_buffer + 1)
    if not labelled.any():
        return math.nan
    scored = np.sort(series[~np.isnan(series)])
    thresholds = scored[::-1][np.linspace(0, scored.size - 1, VUS_THRESHOLDS).astype(np.intp)]
    _, starts, ends = _true_runs(labelled[:, np.newaxis])
    alarmed = _count_at_least(scored, thresholds)
    alarmed_labelled = _count_at_least(np.sort(series[labelled]), thresholds)
    buffer = _buffer_points(series, labelled, starts, ends, max_buffer // 2)
    peaks = _widened_range_peaks(series, labelled, starts, ends, max_buffer // 2)
    n_labelled = _count(labelled)
    average_precisions = [
        _range_average_precision(
            alarmed_labelled,
            _alarmed_buffer_weight(buffer, window, thresholds),
            alarmed,
            n_labelled,
            _existence(peaks[window // 2], starts, ends, window // 2, thresholds),
        )
        for window in range(max_buffer + 1)
    ]
    return float(np.mean(average_precisions))


def evaluate(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    threshold: float,
    period_s: float,
    max_buffer: int,
    events: list[Event] | None = None,
) -> dict[str, float]:
    """Every metric of this module for one detector at one threshold, keyed by metric name."""
    return {
        "composite_f1": composite_f1(scores, labels, threshold, events),
        "event_recall": event_recall(scores, labels, threshold, events),
        "point_precision": point_precision(scores, labels, threshold),
        "point_recall": point_recall(scores, labels, threshold),
        "point_f1": point_f1(scores, labels, threshold),
        "pr_auc": pr_auc(scores, labels),
        "vus_pr": vus_pr(scores, labels, max_buffer),
        "fpr": fpr(scores, labels, threshold),
        "false_alarms_per_1k_cell_hours": false_alarms_per_1k_cell_hours(scores, labels, threshold, period_s),
        "median_delay_periods": median_delay_periods(scores, labels, threshold, events),
        "pa_f1": pa_f1(scores, labels, threshold, events),
    }


def _as_scores(scores: npt.ArrayLike) -> FloatArray:
    score_array = np.asarray(scores, dtype=np.float64)
    if score_array.ndim != 2:
        raise ValueError(f"scores must be a 2-D [T, N] array, got shape {score_array.shape}")
    return score_array


def _as_arrays(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Scores as floats, labels as booleans, and the mask of scored (non-NaN) points."""
    score_array = _as_scores(scores)
    label_array = np.asarray(labels, dtype=bool)
    if label_array.shape != score_array.shape:
        raise ValueError(f"labels have shape {label_array.shape}, scores {score_array.shape}")
    return score_array, label_array, ~np.isnan(score_array)


def _alarms(scores: FloatArray, threshold: float) -> BoolArray:
    return scores >= threshold  # False where the score (or the threshold) is NaN


def _count(mask: BoolArray) -> int:
    return int(np.count_nonzero(mask))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else math.nan


def _precision_recall(alarms: BoolArray, labels: BoolArray, valid: BoolArray) -> tuple[float, float]:
    hits = _count(alarms & labels)
    return _ratio(hits, _count(alarms)), _ratio(hits, _count(labels & valid))


def _harmonic_mean(precision: float, recall: float) -> float:
    """F1 of a precision and a recall: 0 when recall is 0 (precision may then be NaN), else NaN if either is."""
    if recall == 0.0:
        return 0.0
    if math.isnan(precision) or math.isnan(recall):
        return math.nan
    return 2.0 * precision * recall / (precision + recall)


def _true_runs(mask: BoolArray) -> tuple[IntArray, IntArray, IntArray]:
    """Cells, first rows and last rows of the maximal runs of True in each column, ordered by cell then row."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1]), dtype=np.int8)
    padded[1:-1] = mask
    steps = np.diff(padded, axis=0).T  # [N, T + 1]: 1 on a run's first row, -1 on the row after its last
    cells, starts = np.nonzero(steps == 1)
    stops = np.nonzero(steps == -1)[1]
    return cells, starts, stops - 1


def _events_or_labelled(events: list[Event] | None, labels: BoolArray) -> list[Event]:
    return label_events(labels) if events is None else events


def _scorable(events: list[Event], valid: BoolArray) -> list[Event]:
    """The events with at least one scored point."""
    return [event for event in events if valid[event.start : event.end + 1, event.cell].any()]


def _delays(alarms: BoolArray, events: list[Event]) -> list[int | None]:
    """For each event, the periods from its start to its first alarm; None when it has none."""
    delays: list[int | None] = []
    for event in events:
        inside = alarms[event.start : event.end + 1, event.cell]
        delays.append(int(np.argmax(inside)) if inside.any() else None)
    return delays


def _share_detected(alarms: BoolArray, events: list[Event]) -> float:
    delays = _delays(alarms, events)
    return _ratio(sum(delay is not None for delay in delays), len(delays))


class _BufferPoints(NamedTuple):
    """Unlabelled scored points near a labelled range, in ascending order of score."""

    scores: FloatArray
    nearest: FloatArray  # distance to the nearest range
    second: FloatArray  # the smallest reach at which two ranges' buffers cover the point


def _cells_in_one_series(scores: FloatArray, labelled: BoolArray, gap: int) -> tuple[FloatArray, BoolArray]:
    """The cells' columns end to end, each followed by `gap` unscored, unlabelled points that keep them apart."""
    n_periods, n_cells = scores.shape
    series = np.full((n_cells, n_periods + gap), np.nan)
    series[:, :n_periods] = scores.T
    labels = np.zeros((n_cells, n_periods + gap), dtype=bool)
    labels[:, :n_periods] = labelled.T
    return series.ravel(), labels.ravel()


def _count_at_least(ascending: FloatArray, thresholds: FloatArray) -> IntArray:
    """For each threshold, how many of the sorted values are >= it."""
    return ascending.size - np.searchsorted(ascending, thresholds, side="left")


def _buffer_points(
    series: FloatArray, labelled: BoolArray, starts: IntArray, ends: IntArray, reach: int
) -> _BufferPoints:
    """The unlabelled scored points within `reach` of a range, with the distances their soft labels depend on."""
    positions = np.flatnonzero(~labelled & ~np.isnan(series))
    ranges_before = np.searchsorted(ends, positions)
    ends_padded = np.concatenate([[-np.inf, -np.inf], ends.astype(np.float64)])
    starts_padded = np.concatenate([starts.astype(np.float64), [np.inf, np.inf]])
    left = positions - ends_padded[ranges_before + 1]
    second_left = positions - ends_padded[ranges_before]
    right = starts_padded[ranges_before] - positions
    second_right = starts_padded[ranges_before + 1] - positions
    nearest = np.minimum(left, right)
    second = np.minimum(np.minimum(second_left, second_right), np.maximum(left, right))
    near = nearest <= reach
    order = np.argsort(series[positions[near]], kind="stable")
    return _BufferPoints(series[positions[near]][order], nearest[near][order], second[near][order])


def _alarmed_buffer_weight(buffer: _BufferPoints, window: int, thresholds: FloatArray) -> FloatArray:
    """For each threshold, the summed soft labels of the buffer points that alarm, for buffer length `window`.

    One range's contribution at distance d <= window // 2 is sqrt(1 - d / window) >= sqrt(1/2), so a point
    within reach of two ranges weighs min(1, sum) = 1.
    """
    reach = window // 2
    single = np.sqrt(np.clip(1.0 - buffer.nearest / max(window, 1), 0.0, None))
    weights = np.where(buffer.second <= reach, 1.0, np.where(buffer.nearest <= reach, single, 0.0))
    weight_at_or_above = np.append(np.cumsum(weights[::-1])[::-1], 0.0)
    return weight_at_or_above[np.searchsorted(buffer.scores, thresholds, side="left")]


def _widened_range_peaks(
    series: FloatArray, labelled: BoolArray, starts: IntArray, ends: IntArray, max_reach: int
) -> FloatArray:
    """[max_reach + 1, ranges]: the highest score within [start - h, end + h] of each range, for h = 0..max_reach."""
    values = np.where(np.isnan(series), -np.inf, series)
    range_of_point = np.cumsum(np.diff(labelled.astype(np.int8), prepend=0) == 1) - 1
    core = np.full(starts.size, -np.inf)
    np.maximum.at(core, range_of_point[labelled], values[labelled])
    offsets = np.arange(1, max_reach + 1)[:, np.newaxis]
    last = values.size - 1
    outward = np.maximum(values[np.clip(starts - offsets, 0, last)], values[np.clip(ends + offsets, 0, last)])
    return np.maximum.accumulate(np.vstack([core, outward]), axis=0)


def _existence(peaks: FloatArray, starts: IntArray, ends: IntArray, reach: int, thresholds: FloatArray) -> FloatArray:
    """For each threshold, the share of widened ranges (merged where their widenings meet) holding an alarm."""
    firsts = np.concatenate([[0], np.flatnonzero(starts[1:] - ends[:-1] > 2 * reach) + 1])
    merged_peaks = np.sort(np.maximum.reduceat(peaks, firsts))
    return _count_at_least(merged_peaks, thresholds) / firsts.size


def _range_average_precision(
    alarmed_labelled: IntArray,
    alarmed_buffer_weight: FloatArray,
    alarmed: IntArray,
    n_labelled: int,
    existence: FloatArray,
) -> float:
    """Step-wise area under one range-based PR curve given per-threshold counts."""
    true_positives = alarmed_labelled + alarmed_buffer_weight
    recall = np.minimum(true_positives / (n_labelled + alarmed_buffer_weight / 2.0), 1.0)
    precision = true_positives / alarmed
    return float(np.sum(np.diff(recall * existence, prepend=0.0) * precision))
