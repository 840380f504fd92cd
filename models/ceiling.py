"""What a detector that knows the normal could catch: the recall ceiling of a simulator export.

The simulator recomputes, for an export it wrote, every cell's noise-free, anomaly-free measurements
(the truth) and the same noise without anomalies (the normal run). An oracle scores the export's residual
to the truth, standardised per cell, measurement and hour by the normal run's noise: the error held two
periods in a row and its 3- and 20-period averages, each divided by its 99.9 % level on the normal run;
a value missing where the normal run has one scores high, one missing in both (the simulator's routine
reporting: the same draws) nothing. Its threshold lets through at most a target number of false-alarm runs on
the normal run's test part, and its event recall per kind at that threshold bounds what a detector that
has to learn the normal can reach on the same events. The oracle does not shape its alarms (an average
outlasts its event), so only its recall is reported.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from e2sim import catalogue as cat
from e2sim.anomalies import build_effects
from e2sim.kpm import compute_kpm
from e2sim.load import relative_load
from e2sim.noise import NoRandomness, PeriodRandomness
from e2sim.realism import Realism, coarsen, report
from e2sim.world import World, WorldConfig
from models import metrics
from models.data import events_from_labels, events_in, plan_split
from ranomaly_contracts.dataset import Dataset, KpmArrays, label_mask, to_arrays

FloatArray = npt.NDArray[np.float64]

MISSING_SCORE = 10.0
AVERAGES = (1.0 / 3.0, 1.0 / 20.0)  # EMA rates of the averaged errors
LEVEL = 0.999  # each evidence is scored against this quantile of its normal values


@dataclass(frozen=True)
class Ceiling:
    """The oracle's threshold and what it catches in the test part."""

    threshold: float
    false_alarms_per_1k_cell_hours: float  # on the normal run's test part, at the threshold
    event_recall: float
    recall_by_kind: dict[str, float]
    events_by_kind: dict[str, int]


def simulated_runs(dataset: Dataset, arrays: KpmArrays) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(export, truth, normal) measurements [T, N, K] of a simulator export (arrays: to_arrays(dataset)),
    recomputed from its meta.json.

    Raises ValueError when the dataset is not an e2sim export or its values differ from what the simulator
    writes for the settings its meta.json records."""
    generator = dataset.meta.get("generator", {})
    if generator.get("name") != "ranomaly e2sim":
        raise ValueError("the ceiling needs an e2sim export: meta.json names no 'ranomaly e2sim' generator")
    realism = generator.get("realism")
    if realism is not None:
        realism = realism | {"late_cell_days": tuple(realism["late_cell_days"])}  # JSON has lists
    config = WorldConfig(
        seed=int(generator["seed"]),
        n_cells=len(arrays.cell_ids),
        utc_offset_h=float(generator["utc_offset_h"]),
        events_per_cell_day=float(generator["events_per_cell_day"]),
        realism=Realism()
        if realism is None
        else Realism(**(realism | {"late_cell_days": tuple(realism["late_cell_days"])})),
    )
    world = World(config)
    if tuple(arrays.cell_ids) != tuple(world.cell_ids):
        raise ValueError("the export's cells are not the simulator's for this seed and cell count")
    period_ms = round(dataset.period_s * 1000)
    periods = arrays.times_ms // period_ms
    written = world.block(int(periods[0]), len(periods), period_ms).values.astype(np.float64)
    export = arrays.values.astype(np.float64)
    if written.shape != export.shape or not np.allclose(written, export, rtol=1e-6, equal_nan=True):
        raise ValueError(
            f"the export's values differ from what the simulator writes for seed {config.seed}: "
            "edited, or written by another simulator version"
        )
    topology = world.topology
    times_s = periods * (period_ms / 1000.0)
    load = relative_load(topology, times_s, config.utc_offset_h)
    quiet = build_effects([], times_s, topology.n_cells)
    truth = compute_kpm(topology, load, dataset.period_s, quiet, NoRandomness(len(periods), topology.n_cells))
    # the normal run reports as the export does outside events: coarse vendors, routine missing values
    losses = (config.realism.value_drop, config.realism.record_drop)
    noise = PeriodRandomness(config.seed, period_ms, periods, topology.n_cells, losses)
    normal = compute_kpm(topology, load, dataset.period_s, quiet, noise)
    coarsen(normal, world.deployment.coarse)
    report(normal, noise.draws(), np.ones(normal.shape[:2], dtype=bool), dataset.period_s, config.realism)
    normal[~world.deployment.appeared(times_s)] = np.nan
    return export, truth.astype(np.float64), normal.astype(np.float64)


def _transformed(values: FloatArray) -> FloatArray:
    """log1p for the non-negative measurements, SINR (in dB) as it is."""
    out = np.log1p(np.maximum(values, 0.0))
    out[..., cat.SINR] = values[..., cat.SINR]
    return out


def _evidence(residual: FloatArray) -> list[FloatArray]:
    """|error| held two periods in a row and the magnitudes of its averages, each [T, N, K]."""
    filled = np.nan_to_num(residual)
    held = np.minimum(np.abs(filled), np.abs(np.concatenate([np.zeros_like(filled[:1]), filled[:-1]])))
    flat = pd.DataFrame(filled.reshape(len(filled), -1))
    averages = [np.abs(flat.ewm(alpha=rate, adjust=False).mean().to_numpy().reshape(filled.shape)) for rate in AVERAGES]
    return [held, *averages]


def noise_spread(noise: FloatArray, times_ms: npt.NDArray[np.int64]) -> FloatArray:
    """Standard deviation of the noise [T, N, K] per cell and measurement over the periods of the same UTC
    hour of day, repeated for every period [T, N, K] (the hour only groups periods of like noise); missing
    values left out, NaN where an hour has none."""
    hour = (times_ms // 3_600_000) % 24
    spread = np.full((24, *noise.shape[1:]), np.nan)
    with warnings.catch_warnings():  # an hour without a value of a cell's measurement: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        for h in np.unique(hour):
            spread[h] = np.nanstd(noise[hour == h], axis=0)
    return spread[hour]


def oracle_scores(
    export: FloatArray, truth: FloatArray, normal: FloatArray, times_ms: npt.NDArray[np.int64]
) -> tuple[FloatArray, FloatArray]:
    """Oracle scores [T, N] of the export and of the normal run, periods starting at times_ms [T]."""
    noise = _transformed(normal) - _transformed(truth)
    per_period = np.fmax(noise_spread(noise, times_ms), 1e-3)  # fmax: an hour without values gets the floor
    normal_present, export_present = ~np.isnan(normal), ~np.isnan(export)
    normal_evidence = _evidence(noise / per_period)
    levels = [np.nanquantile(np.where(normal_present, e, np.nan).reshape(-1, e.shape[-1]), LEVEL, axis=0)
              for e in normal_evidence]  # fmt: skip

    def score(
        evidence: list[FloatArray], present: npt.NDArray[np.bool_], surprising: npt.NDArray[np.bool_]
    ) -> FloatArray:
        deviation = np.max([e / np.maximum(q, 1e-9) for e, q in zip(evidence, levels, strict=True)], axis=0)
        return np.where(present, deviation, np.where(surprising, MISSING_SCORE, 0.0)).max(axis=2)

    residual = (_transformed(export) - _transformed(truth)) / per_period
    scores = score(_evidence(residual), export_present, ~export_present & normal_present)
    return scores, score(normal_evidence, normal_present, np.zeros(noise.shape, dtype=bool))


def ceiling(dataset: Dataset, max_false_alarms: float = 5.0) -> Ceiling:
    """The oracle's event recall on the eval's test part, at the lowest threshold that raises at most
    max_false_alarms false-alarm runs per 1,000 cell-hours on the normal run there."""
    arrays = to_arrays(dataset)
    export, truth, normal = simulated_runs(dataset, arrays)
    scores, normal_scores = oracle_scores(export, truth, normal, arrays.times_ms)
    test = plan_split(arrays).test_rows  # the eval's default split: the last 25 % of the periods
    quiet = np.zeros(normal_scores[test].shape, dtype=bool)

    def false_alarms(threshold: float) -> float:
        return metrics.false_alarms_per_1k_cell_hours(normal_scores[test], quiet, threshold, dataset.period_s)

    low, high = 0.0, float(np.nanmax(normal_scores[test])) + 1e-6
    for _ in range(40):  # bisection: false alarms fall as the threshold rises
        middle = (low + high) / 2
        low, high = (low, middle) if false_alarms(middle) <= max_false_alarms else (middle, high)
    events = events_in(events_from_labels(arrays, dataset.labels), test)
    kinds = sorted({e.kind for e in events if e.kind is not None})
    return Ceiling(
        threshold=high,
        false_alarms_per_1k_cell_hours=false_alarms(high),
        event_recall=metrics.event_recall(scores[test], label_mask(arrays, dataset.labels)[test], high, events),
        recall_by_kind=metrics.recall_by_kind(scores[test], high, events),
        events_by_kind={k: sum(e.kind == k for e in events) for k in kinds},
    )
