"""How far the main detector's estimate of normal is from the truth, day by day, on a simulator export.

The detector is trained as `ranomaly eval` trains it (the default split's training periods and cells)
and run over the whole export. Its baseline (level profile plus drift offset, in its own transformed
units) is compared with the simulator's noise-free normal in the same units. The error is measured in
the true noise's standard deviation per cell, measurement and hour of day, taken from the anomaly-free
normal run. Labelled periods, and the hour after each, are left out: there the error is the anomaly,
not the estimate. An error of 1 is as large as one period's noise; because it lasts for hours, it
weighs far more than the noise on evidence averaged over many periods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from models.ceiling import FloatArray, noise_spread, simulated_runs
from models.data import plan_split, select
from models.detector import DetectorConfig
from models.detector.model import period_of
from models.detector.passes import Stepped, run_pass, step_inputs
from models.detector.train import fit_step
from ranomaly_contracts.dataset import Dataset, label_mask, to_arrays

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR
NOISELESS = 1e-6  # a noise standard deviation at or under this is none


@dataclass(frozen=True)
class NormalError:
    """Root-mean-square baseline error per day since the export's start and per measurement, in true-noise
    standard deviations."""

    measurements: tuple[str, ...]
    day_starts_ms: npt.NDArray[np.int64]  # [days] the first period of each day
    rms: FloatArray  # [days, K]


def normal_error(
    baseline: FloatArray,
    truth: FloatArray,
    normal: FloatArray,
    times_ms: npt.NDArray[np.int64],
    excluded: npt.NDArray[np.bool_],
) -> FloatArray:
    """RMS of (baseline - truth) per day and measurement [days, K], in units of the noise (normal - truth)
    standard deviation per cell, measurement and hour of day; all arrays [T, N, K] in one unit, periods
    starting at times_ms [T]; cell-periods where excluded [T, N] is true are left out, and so are a cell's
    measurement-hours without noise."""
    noise = normal - truth
    per_period = noise_spread(noise, times_ms)
    noisy = per_period > NOISELESS  # a measurement without noise at some hour (no handovers at night) has no unit
    squared = ((baseline - truth) / np.where(noisy, per_period, 1.0)) ** 2
    kept = ~excluded[:, :, None] & noisy
    day = (times_ms - times_ms[0]) // MS_PER_DAY
    rms = np.full((int(day[-1]) + 1, noise.shape[2]), np.nan)
    for d in range(len(rms)):
        rows = day == d
        count = kept[rows].sum(axis=(0, 1))
        total = np.where(kept[rows], squared[rows], 0.0).sum(axis=(0, 1))
        rms[d] = np.sqrt(total / np.maximum(count, 1))
        rms[d][count == 0] = np.nan
    return rms


def detector_normal_error(dataset: Dataset, config: DetectorConfig | None = None) -> NormalError:
    """Train the main detector as the eval does and measure its baseline error on the whole export.

    Raises ValueError when the dataset is not an e2sim export the simulator can reproduce."""
    arrays = to_arrays(dataset)
    _, truth, normal = simulated_runs(dataset, arrays)
    plan = plan_split(arrays)
    step = fit_step(
        select(arrays, plan.train_rows, plan.train_cells), period_of(arrays), config or DetectorConfig()
    ).step
    inputs = step_inputs(arrays)
    rows = len(arrays.times_ms)
    baseline = np.full(arrays.values.shape, np.nan)

    def take(stepped: Stepped) -> None:
        baseline[stepped.row, stepped.cells] = stepped.outputs["baseline"]

    run_pass(step, inputs, rows, ("baseline",), True, "baseline", take)

    def transformed(values: FloatArray) -> FloatArray:
        flat = torch.from_numpy(values.reshape(-1, values.shape[-1]))
        return step.transformed(flat).numpy().reshape(values.shape)

    labelled = label_mask(arrays, dataset.labels)
    excluded = labelled.copy()
    for lag in range(1, round(3600.0 / dataset.period_s) + 1):
        excluded[lag:] |= labelled[:-lag]
    rms = normal_error(baseline, transformed(truth), transformed(normal), arrays.times_ms, excluded)
    day_starts = arrays.times_ms[0] + MS_PER_DAY * np.arange(len(rms), dtype=np.int64)
    return NormalError(measurements=tuple(arrays.measurements), day_starts_ms=day_starts, rms=rms)
