"""Training the streaming detector: transforms, state recursion, network, precision, calibration.

1. Choose per-measurement transforms, scale floors and priors from the training rows.
2. Run the state recursion over the training rows (no network needed) and collect, for every
   warmed-up cell-period, the network's inputs and the standardised residual. Every cell's span (first
   to last record) starts at row 0 (`align`), and a row steps only the cells inside their span, so
   training costs the cell-periods of the spans, not every cell over the union of all spans.
3. Fit the network (Student-t likelihood: a few percent of unlabelled anomalies pull it little).
4. Estimate the precision matrix of the network-standardised residuals, robustly.
5. Run the step with the network and fit, per measurement, the gain of the node mates' shared error
   (network context: the slope of a cell's error on its mates' mean error, on the bulk of the data).
6. Run the whole step again and calibrate each kind of evidence per measurement at its normal 99.9 %
   level, extrapolated from the bulk of its training values, so that deviations of all kinds and
   measurements are comparable.
7. On the last part of the training span (never used above), set the score threshold and the
   per-measurement deviation thresholds at the configured alarm rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import structlog
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models.detector.config import DetectorConfig
from models.detector.passes import StepInputs, Stepped, run_pass, step_inputs
from models.detector.step import CALIBRATED, LOG_SPREAD_LIMIT, DetectorStep
from models.progress import progress
from ranomaly_contracts.dataset import KpmArrays

log = structlog.get_logger(__name__)

SHRINKAGE = 0.05  # added to the error covariance: no measurement is ever predicted near-exactly
CALIBRATION_SHARE = 0.15  # last share of the training periods, kept for thresholds
MAX_SAMPLES = 600_000
MOSTLY_EMPTY = 0.5  # a measurement empty in more of its training records than this is noted
WEIGHT_EMA_DECAY = 0.995  # the network kept is an average of its last few hundred steps' weights
MISSING_STEPS = 400  # of the missing-value network, each a batch of the configured size
EXTREME_Z = 6.0  # an instant error this large marks a cell-period as anomalous for calibration
# The 99.9 % level of the normal evidence is about 2.2 times its 90 % level (measured on anomaly-free
# simulator data: 2.0 to 2.6 for every kind of evidence).
TAIL_RATIO = 2.2
Q99_RATIO = 1.3  # and about 1.3 times its 99 % level (more for the spiky count measurements: hence the max)
# Stuck evidence is a log-likelihood already (a run of exact repeats against the cell's repeat rate):
# 12 is a run with normal odds below 1 in 160,000.
STUCK_LEVEL = 12.0
# Missing evidence is a log-likelihood too (values missing in a row against their learnt chance): 10 is
# odds of 1 in 22,000. A measurement missing one time in a hundred reaches it after three periods in a row,
# one that is never missing after two (a single period is at most 9.2: no value is ever impossible).
MISSING_LEVEL = 10.0
THRESHOLD_FLOOR = 1.0
# Cell-periods whose own or mates' error is beyond this are left out of the network context's fit: the bulk
# says what a node's cells share normally; unlabelled anomalies, node-wide ones most, would pull the gain.
CONTEXT_CORE = 3.0
MAX_CONTEXT_GAIN = 1.0
# Smallest calibration levels, for measurements that barely vary in training.
MIN_LEVEL = {
    "u_pair": 0.5,
    "z_pair": 0.5,
    "u_short": 0.2,
    "u_long": 0.1,
    "z_short": 0.2,
    "z_long": 0.1,
    "shift_long": 0.1,
    "stuck": 0.0,
}


def align(arrays: KpmArrays) -> KpmArrays:
    """Every cell's span moved to start at row 0, its collection times kept in phase_ms: the rows then
    number the longest span, not the union of all spans (series of other dates cost what they hold)."""
    reported = arrays.reported
    n_periods, n_cells = reported.shape
    has_any = reported.any(axis=0)
    first = np.where(has_any, reported.argmax(axis=0), 0)
    span = np.where(has_any, n_periods - reported[::-1].argmax(axis=0) - first, 0)
    if not first.any():
        return arrays
    length = int(span.max())
    offsets = np.arange(length)[:, None]
    rows = np.minimum(first[None, :] + offsets, n_periods - 1)
    cols = np.arange(n_cells)[None, :]
    inside = offsets < span[None, :]
    phase = arrays.times_ms[first] - arrays.times_ms[0]
    if arrays.phase_ms is not None:
        phase = phase + arrays.phase_ms
    return replace(
        arrays,
        times_ms=arrays.times_ms[:length],
        values=np.where(inside[..., None], arrays.values[rows, cols], np.nan).astype(np.float32),
        reported=reported[rows, cols] & inside,
        phase_ms=phase.astype(np.int64),
    )


def _transforms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per measurement: the transform (Anscombe for small integer counts, log1p for other non-negative
    measurements spanning a wide range, identity otherwise, such as dB), the scale floor and the prior
    of the residual variance, all in transformed units."""
    k = values.shape[-1]
    flat = values.reshape(-1, k)
    high, middle, low = (np.nanpercentile(flat, q, axis=0) for q in (99, 50, 0))
    integral = np.array([np.array_equal(c[~np.isnan(c)], np.round(c[~np.isnan(c)])) for c in flat.T])
    wide = (high > 3 * np.maximum(middle, 1e-9)) | (high > 50)
    codes = np.where(low < 0, 0, np.where(integral & (middle < 20), 2, np.where(wide, 1, 0))).astype(np.float32)
    transformed = np.where(codes == 2, 2 * np.sqrt(np.maximum(values, 0) + 0.375), values)
    transformed = np.where(codes == 1, np.log1p(np.maximum(values, 0)), transformed)
    flat_t = transformed.reshape(-1, k)
    spread = np.nanpercentile(flat_t, 99, axis=0) - np.nanpercentile(flat_t, 1, axis=0)
    # Poisson counts keep unit variance in Anscombe units; rarer values would look like huge errors. A
    # quantised measurement is known to half its step at best: a change of one step is no anomaly.
    floor = np.where(codes == 2, 1.0, np.maximum(np.maximum(0.01 * spread, 0.5 * _step(transformed)), 1e-3))
    floor = floor.astype(np.float32)
    with warnings.catch_warnings():  # a cell without two values of a measurement in a row has no noise: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        noise = np.nanmedian(np.nanvar(np.diff(transformed, axis=0), axis=0), axis=0) / 2.0
    prior = np.maximum(np.nan_to_num(noise, nan=1.0), floor**2).astype(np.float32)
    return codes, floor, prior


def _step(values: np.ndarray) -> np.ndarray:
    """Per measurement of values [T, N, K]: the smallest change it usually makes (the 10th percentile of
    its cells' non-zero changes from one period to the next): the step of a quantised measurement, about 0
    for a continuous one."""
    changes = np.abs(np.diff(values, axis=0)).reshape(-1, values.shape[-1])
    steps = [column[column > 0] for column in changes.T]  # NaN compares False: no change known
    return np.array([np.percentile(step, 10) if step.size else 0.0 for step in steps])


def measurement_notes(arrays: KpmArrays, rows: int) -> tuple[np.ndarray, list[dict[str, str]]]:
    """(which measurements are modelled, a note on each the detector cannot model): a measurement with
    one value only in training has no statistical evidence (only missing values count); one mostly
    empty is modelled from the values it has, its missing values judged by how often they are missing."""
    records = arrays.values[:rows][arrays.reported[:rows]]  # [reported cell-periods, K]
    modelled = np.ones(len(arrays.measurements), dtype=np.float32)
    notes = []
    for i, name in enumerate(arrays.measurements):
        column = records[:, i][~np.isnan(records[:, i])]
        empty = 1.0 - column.size / max(len(records), 1)
        if column.size == 0 or column.min() == column.max():
            modelled[i] = 0.0
            level = "no value at all" if column.size == 0 else f"always {column[0]:g}"
            action = "no statistical evidence; only missing values are scored"
            notes.append({"measurement": name, "problem": f"constant in training ({level})", "action": action})
        elif empty > MOSTLY_EMPTY:
            action = "modelled from its values; a missing value scored by its learnt chance"
            notes.append({"measurement": name, "problem": f"empty in {empty:.0%} of its records", "action": action})
    return modelled, notes


def _set_rates(step: DetectorStep, config: DetectorConfig, period_s: float) -> None:
    """EMA rates from the configured memories: a profile bin gets about an hour of periods a day, a
    scale bin three hours."""
    per_hour = 3600.0 / period_s
    rates = {
        "profile": 1.0 / (config.profile_memory_days * per_hour),
        "variance": 1.0 / (config.variance_memory_days * 3 * per_hour),
        "recent": 1.0 / config.recent_periods,
        "offset": 1.0 / (config.offset_hours * per_hour),
        "short": 1.0 / config.evidence_short_periods,
        "long": 1.0 / config.evidence_long_periods,
        "repeat": 1.0 / (config.repeat_memory_hours * per_hour),
    }
    for name, value in rates.items():
        getattr(step, f"rate_{name}").fill_(value)
    step.clip_sigmas = config.clip_sigmas
    step.evidence_clip = config.evidence_clip
    step.onset_level = config.onset_level
    step.onset_periods = config.onset_periods
    step.record_factor = config.record_factor
    step.rearm_periods = config.rearm_periods
    step.gate_level = config.gate_level
    step.gate_pace = config.gate_pace
    step.relearn_periods = config.relearn_hours * per_hour
    step.profile_prior = config.profile_prior_minutes * 60.0 / period_s


def _collect_residuals(step: DetectorStep, inputs: StepInputs, rows: int, warmup: int) -> tuple[torch.Tensor, ...]:
    """Network inputs, residuals, masks and last period's missing values of warmed-up cell-periods with a
    record in the first `rows` periods."""
    count, run = step.layout.index("count"), step.layout.index("run")
    k = step.n_measurements

    def take(stepped: Stepped) -> tuple[np.ndarray, ...]:
        state, present = stepped.feeds["state"], stepped.feeds["mask"] > 0.5
        keep = (state[:, count] >= warmup) & present.any(axis=1)
        residual = stepped.outputs["residual"][keep].astype(np.float32)
        return stepped.outputs["features"][keep], residual, present[keep], state[keep, run : run + k] < 0

    kept = run_pass(step, inputs, rows, ("features", "residual"), False, "state recursion", take)
    return tuple(torch.from_numpy(np.concatenate(part).astype(np.float32)) for part in zip(*kept, strict=True))


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to count while the block runs (the networks' batches are large)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_network(step: DetectorStep, data: tuple[torch.Tensor, ...], config: DetectorConfig) -> list[float]:
    """Student-t likelihood of the residuals under the network's mean and spread; returns epoch losses.

    The learning rate follows a cosine down to a twentieth, and the network kept is the exponential average
    of its weights over the last few hundred steps, not the last step's: over 4 simulator seeds x 3 eval
    seeds the mean VUS-PR went from 0.554 to 0.583 (README, Detection quality)."""
    features, residuals, masks, _ = data
    step.net.feature_mean.copy_(features.mean(dim=0))
    step.net.feature_std.copy_(features.std(dim=0).clamp(min=1e-3))
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(step.net.parameters(), lr=config.learning_rate)
    steps = config.epochs * -(-len(features) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=config.learning_rate / 20)
    ema = get_ema_multi_avg_fn(WEIGHT_EMA_DECAY)  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    averaged = AveragedModel(step.net, multi_avg_fn=ema)
    nu = config.student_t_dof
    losses = []
    for _ in progress(range(config.epochs), "network", "epoch", config.epochs):
        order = torch.randperm(len(features), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            mean, log_spread = step.net(features[batch])
            u = (torch.clamp(residuals[batch], -20, 20) - mean) / torch.exp(log_spread)
            nll = log_spread + 0.5 * (nu + 1) * torch.log1p(u**2 / nu)
            loss = (nll * masks[batch]).sum() / masks[batch].sum().clamp(min=1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            averaged.update_parameters(step.net)
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(order))
    with torch.no_grad():
        for own, mean in zip(step.net.parameters(), averaged.module.parameters(), strict=True):
            own.copy_(mean)
    return losses


def _fit_missing(step: DetectorStep, data: tuple[torch.Tensor, ...], config: DetectorConfig) -> None:
    """Cross-entropy of which measurements have no value, given the context and last period's missing
    values (after the residual network, whose feature scaling it shares). It starts from each
    measurement's share of missing values and takes a fixed number of steps, however little data."""
    features, _, masks, was_missing = data
    missing = 1.0 - masks
    share = missing.mean(dim=0).clamp(1e-4, 1 - 1e-4)
    output = step.missing_net.layers[-1]
    assert isinstance(output, nn.Linear)
    with torch.no_grad():
        output.bias.copy_(torch.log(share / (1 - share)))
    generator = torch.Generator().manual_seed(config.seed + 1)
    optimiser = torch.optim.Adam(step.missing_net.parameters(), lr=config.learning_rate)
    loss_of = nn.BCEWithLogitsLoss()
    for _ in progress(range(MISSING_STEPS), "missing-value network", "step"):
        batch = torch.randint(len(features), (config.batch_size,), generator=generator)
        loss = loss_of(step.missing_logits(features[batch], was_missing[batch]), missing[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def _precision(step: DetectorStep, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Robust precision matrix of the standardised errors: rows with an extreme error are left out.
    Relations are learnt among the measurements present in most records, from the records complete in
    them; a mostly empty measurement relates to none (its own spread only), or its rare complete records
    would be all there is to learn from (none at all: a measurement that is empty at night, trained at
    night)."""
    features, residuals, masks, _ = data
    with torch.no_grad():
        mean, log_spread = step.net(features)
        u = ((residuals - mean) / torch.exp(log_spread)).numpy().astype(np.float64)
    present = masks.numpy() > 0
    calm = np.abs(np.where(present, u, 0.0)) < 5
    k = u.shape[1]
    related = present.mean(axis=0) >= 1.0 - MOSTLY_EMPTY
    covariance = np.eye(k)
    for i in np.flatnonzero(~related):  # its own spread, from the records that have it
        own = u[present[:, i] & calm[:, i], i]
        covariance[i, i] = float(np.mean(own**2)) if own.size > 1 else 1.0
    complete = present[:, related].all(axis=1) & calm.all(axis=1)
    if complete.sum() > related.sum():
        covariance[np.ix_(related, related)] = np.atleast_2d(np.cov(u[complete][:, related], rowvar=False))
    covariance += SHRINKAGE * np.eye(k)
    return torch.from_numpy(np.linalg.inv(covariance).astype(np.float32))


def _fit_context(step: DetectorStep, inputs: StepInputs, rows: int, warmup: int) -> None:
    """Set the gain of the node mates' shared error per measurement: the least-squares slope, through 0, of
    a cell's error on its mates' mean error, over the warmed-up cell-periods where both lie within
    CONTEXT_CORE, between 0 and MAX_CONTEXT_GAIN. Never below 0: a cell whose load falls as its mates'
    rises (its users moved to them: a sleeping cell) is an anomaly to show, not a relation to explain it
    away with. A measurement never seen with mates keeps 0."""
    count = step.layout.index("count")

    def take(stepped: Stepped) -> tuple[np.ndarray, np.ndarray] | None:
        keep = stepped.feeds["state"][:, count] >= warmup
        return (stepped.outputs["u"][keep], stepped.outputs["mates"][keep]) if keep.any() else None

    kept = run_pass(step, inputs, rows, ("u", "mates"), True, "network context", take)
    if not kept:
        return
    u, mates = (np.concatenate(part).astype(np.float64) for part in zip(*kept, strict=True))
    core = (np.abs(u) < CONTEXT_CORE) & (np.abs(mates) < CONTEXT_CORE) & (mates != 0.0)
    power = np.where(core, mates**2, 0.0).sum(axis=0)
    slope = np.where(core, u * mates, 0.0).sum(axis=0) / np.maximum(power, 1e-12)
    gain = np.clip(np.where(power > 0.0, slope, 0.0), 0.0, MAX_CONTEXT_GAIN)
    step.context_gain.copy_(torch.from_numpy(gain.astype(np.float32)))


def _calibrate(step: DetectorStep, inputs: StepInputs, rows: int, warmup: int) -> None:
    """Set each evidence's scale per measurement at its normal 99.9 % level, estimated from the bulk of
    the training values. Cell-periods with an extreme error (surely anomalous: the training data is
    unlabelled) are left out."""
    count = step.layout.index("count")

    def take(stepped: Stepped) -> np.ndarray:
        u, z = stepped.outputs["u"], stepped.outputs["z"]
        extreme = np.maximum(np.abs(u), np.abs(z)).max(axis=1) >= EXTREME_Z
        keep = (stepped.feeds["state"][:, count] >= warmup) & ~extreme
        present = stepped.feeds["mask"][keep, None, :] > 0.5
        return np.where(present, stepped.outputs["evidence"][keep], np.nan)

    # [cell-periods, len(CALIBRATED), K]
    evidence = np.concatenate(run_pass(step, inputs, rows, ("u", "z", "evidence"), True, "calibration", take))
    for i, name in enumerate(CALIBRATED):
        values = evidence[:, i]  # [cell-periods, K]
        if name == "stuck":
            level = np.full(values.shape[1], STUCK_LEVEL)
        else:  # mostly the bulk, extrapolated: unlabelled anomalies (a few percent) inflate high quantiles
            with warnings.catch_warnings():  # a measurement without one calibration value: NaN, the default
                warnings.simplefilter("ignore", RuntimeWarning)
                level = np.maximum(
                    TAIL_RATIO * np.nanquantile(values, 0.9, axis=0), Q99_RATIO * np.nanquantile(values, 0.99, axis=0)
                )
        level = np.maximum(np.nan_to_num(level, nan=1.0), MIN_LEVEL[name])
        getattr(step, f"q_{name}").copy_(torch.from_numpy(level.astype(np.float32)))


@dataclass(frozen=True)
class Thresholds:
    """Thresholds chosen on the calibration part, as the manifest stores them; `rule` says how (the
    quantiles they were extrapolated from and whether the floor bound)."""

    score: float
    deviation: dict[str, float]
    score_stats: dict[str, object]
    rule: dict[str, object]


def tail_threshold(values: np.ndarray, alarm_rate: float) -> tuple[float, bool]:
    """(threshold, whether the floor bound): the level normal values exceed at `alarm_rate`, extrapolated
    from the bulk (an exponential tail through the median and the 90 % quantile) rather than read off the
    top quantiles, which a few percent of unlabelled anomalies anywhere in the span would own. Never under
    THRESHOLD_FLOOR, the calibrated normal 99.9 % level of a single kind of evidence."""
    median, q90 = (float(q) for q in np.quantile(values, (0.5, 0.9)))
    slope = max(q90 - median, 0.0) / np.log(5.0)
    extrapolated = float(q90 + slope * np.log(0.1 / alarm_rate))
    return max(extrapolated, THRESHOLD_FLOOR), bool(extrapolated < THRESHOLD_FLOOR)


@dataclass(frozen=True)
class FittedStep:
    """A trained step, its thresholds and a note on each measurement it cannot model."""

    step: DetectorStep
    thresholds: Thresholds
    notes: list[dict[str, str]]


def fit_step(arrays: KpmArrays, period_s: float, config: DetectorConfig) -> FittedStep:
    """Train a detector step on arrays (every cell, every period given) and choose its thresholds."""
    arrays = align(arrays)
    torch.manual_seed(config.seed)
    torch.set_num_threads(1)  # the recursion steps small batches: waking more threads costs more than it gives
    k = len(arrays.measurements)
    n_periods = len(arrays.times_ms)
    fit_rows = int(n_periods * (1 - CALIBRATION_SHARE))
    if fit_rows <= config.warmup_periods * 2:
        needed = 2 * config.warmup_periods / (1 - CALIBRATION_SHARE)
        raise ValueError(f"{n_periods} periods are too few to train: need more than {needed:.0f}")
    step = DetectorStep(k, config.hidden, config.missing_hidden)
    codes, floor, prior = _transforms(arrays.values[:fit_rows])
    step.transform.copy_(torch.from_numpy(codes))
    step.floor.copy_(torch.from_numpy(floor))
    step.variance_prior.copy_(torch.from_numpy(prior))
    count_floor = np.where(codes == 2, np.log(config.count_min_spread), -LOG_SPREAD_LIMIT).astype(np.float32)
    step.net.min_log_spread.copy_(torch.from_numpy(count_floor))
    _set_rates(step, config, period_s)
    modelled, notes = measurement_notes(arrays, fit_rows)
    for note in notes:
        log.warning("measurement_not_fully_modelled", **note)
    step.modelled.copy_(torch.from_numpy(modelled))
    feature_weight = np.concatenate([np.ones(2), modelled, modelled, np.ones(1)]).astype(np.float32)
    step.net.feature_weight.copy_(torch.from_numpy(feature_weight))  # the features of context()
    inputs = step_inputs(arrays)
    step.q_missing.fill_(MISSING_LEVEL)

    data = _collect_residuals(step, inputs, fit_rows, config.warmup_periods)
    if len(data[0]) > MAX_SAMPLES:
        pick = torch.randperm(len(data[0]), generator=torch.Generator().manual_seed(config.seed))[:MAX_SAMPLES]
        data = tuple(d[pick] for d in data)
    with _threads(config.threads):
        _fit_network(step, data, config)
        _fit_missing(step, data, config)
    step.precision.copy_(_precision(step, data))
    _fit_context(step, inputs, fit_rows, config.warmup_periods)
    _calibrate(step, inputs, fit_rows, config.warmup_periods)
    step.eval()
    thresholds = _thresholds(step, inputs, fit_rows, arrays, config)
    # Capped scores below the threshold do not change which scores exceed it: the threshold stands.
    step.sustain_level = config.sustain_fraction * thresholds.score
    return FittedStep(step, thresholds, notes)


def _thresholds(
    step: DetectorStep, inputs: StepInputs, fit_rows: int, arrays: KpmArrays, config: DetectorConfig
) -> Thresholds:
    count = step.layout.index("count")

    def take(stepped: Stepped) -> tuple[np.ndarray, np.ndarray] | None:
        if stepped.row < fit_rows:
            return None
        warm = (stepped.feeds["state"][:, count] >= config.warmup_periods) & arrays.reported[stepped.row, stepped.cells]
        return stepped.outputs["score"][warm], stepped.outputs["deviation"][warm]

    kept = run_pass(step, inputs, inputs.x.shape[0], ("score", "deviation"), True, "thresholds", take)
    scores, deviations = zip(*kept, strict=True)
    score = np.concatenate(scores)
    deviation = np.concatenate(deviations)
    quantiles = {f"{q:g}": float(np.quantile(score, q)) for q in (0.5, 0.9, 0.95, 0.99, 0.995, 0.999)}
    score_threshold, floored = tail_threshold(score, config.alarm_rate)
    per_measurement = {m: tail_threshold(deviation[:, i], config.alarm_rate) for i, m in enumerate(arrays.measurements)}
    return Thresholds(
        score=score_threshold,
        deviation={m: value for m, (value, _) in per_measurement.items()},
        score_stats={"mean": float(score.mean()), "std": float(score.std()), "quantiles": quantiles},
        rule={
            "method": "exponential tail through the median and 90 % quantile of the calibration scores",
            "alarm_rate": config.alarm_rate,
            "floor": THRESHOLD_FLOOR,
            "floor_binds": floored,
            "floor_binds_for": [m for m, (_, bound) in per_measurement.items() if bound],
            "calibration_share_alarming": float(np.mean(score >= score_threshold)),
        },
    )
