"""One period of the streaming detector for a batch of cells: the graph exported to ONNX.

For every cell and measurement the state holds a robust, seasonal picture of normal: a level profile
over the hours of weekdays and of weekends, a drift offset tracked over hours, a residual-scale
profile and short memories. A period is scored before it updates the state (causal):

1. transform (log1p for wide non-negative ranges, Anscombe for small counts) and take the baseline
   for this time of day: interpolated profile bins plus the drift offset (a fast recent level while
   no bin is known yet);
2. standardise the residual to the baseline by the cell's own scale for this time of day;
3. a small network, shared by all cells, predicts the residual's mean and spread from the cell's
   level, scale and the time of day (learned normal behaviour), giving a standardised error u; the
   spread of a small count never falls under a floor (counts are discrete: one handover more at night
   is not an error of eight spreads); network context: the part of u that the other cells of the same
   node share in the same period (their mean u, within +-CONTEXT_LIMIT, times a gain per measurement
   learnt from training) is taken out, so what moves a whole site normally (an event nearby, a shared
   transport) is not a cell's anomaly, while a node-wide anomaly, far beyond the limit, still is;
4. conditional z-scores: each measurement's error given all the others, through a learned precision
   matrix (cross-measurement consistency, cheap and exact for a Gaussian). u sees shifts that move
   measurements together (a demand surge), z sees broken relations (handovers failing at normal load);
5. evidence per measurement, each calibrated on training data to about 1 at the normal 99.9 % level:
   short and long averages of u and of z (one-period spikes are the heaviest part of normal noise; a
   real anomaly lasts), a long average of the residual to the level profile alone (a slow ramp, such as
   a degradation, that the drift offset follows still stands out against the profile), runs of exactly
   repeated values (stuck counters; a small count's chance to repeat follows from its value, so a
   night of zero handovers is no run) and missing values, scored by how surprising they are: a small
   network shared by all cells gives the chance that each measurement has no value from the cell's
   context and whether it had none the period before (a ratio with no attempts at night, a dropped
   value), and a run of missing values adds up its surprise (a silent cell is an anomaly, never a gap);
   the deviation of a measurement is its strongest evidence, its statistical part counting only as often
   as the value changes where it repeats exactly more often than chance (a quantised or near-constant
   measurement in this cell has no smooth spread to judge a change by);
6. the raw score is the strongest deviation, statistical evidence counting only as far as the previous
   period's confirms it (one-period spikes, mostly of small counts at night, are most of the normal
   tail), missing values and stuck runs at once; the score is the raw score in full for the first
   periods of an alarm run and at each clearly new peak of it, capped just under the alarm threshold
   otherwise: one long anomaly raises a few alarms rather than hundreds, yet keeps ranking above
   normal noise, and its deviations stay high for as long as it lasts. A run stays open through a few
   calm periods, so an incident that flickers, or whose evidence fades slowly after it ends, is one run;
   a cell that falls silent inside a run is a new incident, and its first silent periods count in full;
7. update the state with residuals clipped to a few scales; the slow memories (drift offset, z bias)
   follow a cell that looks anomalous only at a fraction of their pace, so anomalies barely move
   what is normal. A profile bin seen for the first time (the first Saturday morning, say) starts
   from the fast recent level and counts it as half an hour of observation, so the day's own values
   refine it at a bounded pace rather than replace it: an anomaly on that day is not simply learnt.
   While the cell is in an alarm run, the new bin starts from the profile the cell already has (its
   neighbouring bins, or the weekday's on a first weekend): the recent level is then the anomaly.
"""

from __future__ import annotations

import torch
from torch import nn

from models.detector.layout import PROFILE_BINS, SCALE_BINS, StateLayout

EPS = 1e-6
LOG_SPREAD_LIMIT = 3.0  # the network's spreads stay within exp(+-3) residual scales
RATES = ("profile", "variance", "recent", "offset", "short", "long", "repeat")
AVERAGES = ("u_short", "u_long", "z_short", "z_long", "shift_long")
PAIRS = ("u_pair", "z_pair")
CALIBRATED = (*PAIRS, *AVERAGES, "stuck")
MISSING_LOGIT_LIMIT = 9.21  # no value is ever certain or impossible: its chance stays within 1e-4 of 0 and 1
FEATURE_LIMIT = 8.0  # standardised features beyond it tell the networks nothing more
RELEARN_WIDTH = 1e4  # how much wider the clipping of a relearning cell's residuals is
MISSING_RUN_LIMIT = 100.0  # surprise of a run of missing values adds up to this (deviation 10) and no further
CONTEXT_LIMIT = 2.0  # the node's shared error counts up to this many spreads: it explains noise, never an anomaly


def _bin_centres(n_bins: int) -> torch.Tensor:
    """Bin centres as fractions of the day, in float64 (see context)."""
    return torch.arange(n_bins, dtype=torch.float64) / n_bins


def mates_mean(values: torch.Tensor, usable: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Per row and column, the mean of the usable values of the other rows of its group [B, K] (0 where
    there is none). `group` [B] numbers the groups of a batch from 0 (float: every input is float32)."""
    index = group.long()[:, None].expand_as(values)
    weight = usable.to(values.dtype)
    sums = torch.zeros_like(values).scatter_add(0, index, values * weight)
    counts = torch.zeros_like(values).scatter_add(0, index, weight)
    others = counts.gather(0, index) - weight
    mean = (sums.gather(0, index) - values * weight) / torch.clamp(others, min=1.0)
    return torch.where(others > 0.5, mean, torch.zeros_like(values))


class ResidualNet(nn.Module):
    """Predicts mean and log-spread of the standardised residuals from a cell's context."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    feature_weight: torch.Tensor
    min_log_spread: torch.Tensor

    def __init__(self, n_inputs: int, n_measurements: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * n_measurements),
        )
        self.n_measurements = n_measurements
        self.register_buffer("feature_mean", torch.zeros(n_inputs))  # set by training
        self.register_buffer("feature_std", torch.ones(n_inputs))
        # 0 for the features of a measurement training found constant: whatever it does later says nothing
        self.register_buffer("feature_weight", torch.ones(n_inputs))
        # the smallest log-spread per measurement, raised by training for small counts (module docstring, 3)
        self.register_buffer("min_log_spread", torch.full((n_measurements,), -LOG_SPREAD_LIMIT))

    def normalised(self, features: torch.Tensor) -> torch.Tensor:
        """Standardised features, within +-FEATURE_LIMIT (a cell unlike any in training gets no wild
        extrapolation), those of unmodelled measurements 0."""
        standard = (features - self.feature_mean) / self.feature_std
        return torch.clamp(standard, -FEATURE_LIMIT, FEATURE_LIMIT) * self.feature_weight

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-spread), each [B, K]."""
        out = self.layers(self.normalised(features))
        log_spread = torch.clamp(out[:, self.n_measurements :], max=LOG_SPREAD_LIMIT)
        return out[:, : self.n_measurements], torch.maximum(log_spread, self.min_log_spread)


class MissingNet(nn.Module):
    """The chance that each measurement has no value, from a cell's context (the residual network's
    features) and which measurements had none the period before."""

    def __init__(self, n_features: int, n_measurements: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features + n_measurements, hidden), nn.ReLU(), nn.Linear(hidden, n_measurements)
        )

    def forward(self, normalised_features: torch.Tensor, was_missing: torch.Tensor) -> torch.Tensor:
        """Logits of "no value" [B, K]."""
        return self.layers(torch.cat([normalised_features, was_missing], dim=1))


class DetectorStep(nn.Module):
    """x, mask, time, state -> score, deviation, state_out (the Models contract of ARCHITECTURE.md).

    time holds the features tod_sin, tod_cos, weekend and tod (the day fraction), in this order.
    """

    # buffers (registered in __init__, set by training)
    profile_centres: torch.Tensor
    scale_centres: torch.Tensor
    transform: torch.Tensor
    floor: torch.Tensor
    variance_prior: torch.Tensor
    q_missing: torch.Tensor
    modelled: torch.Tensor
    precision: torch.Tensor
    q_u_pair: torch.Tensor
    q_z_pair: torch.Tensor
    q_u_short: torch.Tensor
    q_u_long: torch.Tensor
    q_z_short: torch.Tensor
    q_z_long: torch.Tensor
    q_stuck: torch.Tensor
    rate_profile: torch.Tensor
    rate_variance: torch.Tensor
    rate_recent: torch.Tensor
    rate_offset: torch.Tensor
    rate_short: torch.Tensor
    rate_long: torch.Tensor
    rate_repeat: torch.Tensor
    context_gain: torch.Tensor

    def __init__(self, n_measurements: int, hidden: int, missing_hidden: int = 16) -> None:
        super().__init__()
        k = n_measurements
        self.layout = StateLayout(k)
        self.n_measurements = k
        # The network sees the time of day but not the weekend flag: the profiles handle weekends,
        # and a network trained on weekdays only must not extrapolate on a Saturday.
        self.net = ResidualNet(2 + 2 * k + 1, k, hidden)
        self.missing_net = MissingNet(2 + 2 * k + 1, k, missing_hidden)
        self.register_buffer("profile_centres", _bin_centres(PROFILE_BINS))
        self.register_buffer("scale_centres", _bin_centres(SCALE_BINS))
        # Set by training: transforms, scale floors and priors, memories, precision, calibration.
        for name in ("transform", "floor", "variance_prior"):
            self.register_buffer(name, torch.zeros(k))
        # 0 for a measurement training found constant: it has no statistical evidence
        self.register_buffer("modelled", torch.ones(k))
        for name in (*CALIBRATED, "missing"):
            self.register_buffer(f"q_{name}", torch.ones(k))
        for name in RATES:
            self.register_buffer(f"rate_{name}", torch.tensor(0.1))
        self.register_buffer("context_gain", torch.zeros(k))  # 0: the node's shared error is not used
        self.register_buffer("precision", torch.eye(k))
        self.clip_sigmas = 3.0  # residuals beyond it move the state no further
        self.evidence_clip = 5.0  # errors beyond it add no more to the averages
        self.onset_level = 1.5  # a raw score from here up starts or continues an alarm run
        self.onset_periods = 15  # periods of a run scored in full
        self.record_factor = 1.25  # later, a raw score this many times the run's peak is scored in full
        self.rearm_periods = 30.0  # a run stays open through this many calm periods (a re-alarm belongs to it)
        self.sustain_level = 1.0  # what the other later periods of a run are capped at (under the threshold)
        self.gate_level = 4.0  # the slow memories follow a cell whose raw score reaches it ...
        self.gate_pace = 0.1  # ... at this fraction of their pace
        self.relearn_periods = 1e9  # an alarm run this long is the cell's new normal: the state follows it
        self.profile_prior = 0.0  # periods of observation a new profile bin's first level counts as

    @staticmethod
    def _weights(day_fraction: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Linear interpolation weights [B, bins] of the two bins around each time of day; they sum to 1."""
        distance = torch.abs(day_fraction[:, None] - centres[None, :])
        distance = torch.minimum(distance, 1.0 - distance)
        w = torch.relu(1.0 - distance * centres.shape[0])
        return w / torch.clamp(w.sum(dim=1, keepdim=True), min=EPS)

    @staticmethod
    def _interpolate(
        weights: torch.Tensor, values: torch.Tensor, seen: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted mean over the bins already seen, and whether any was."""
        w = weights * (seen > 0).to(weights.dtype)
        total = w.sum(dim=1)
        mean = (w[:, :, None] * values).sum(dim=1) / torch.clamp(total, min=EPS)[:, None]
        return mean, total > EPS

    def transformed(self, x: torch.Tensor) -> torch.Tensor:
        """Per measurement: 0 identity, 1 log1p (multiplicative noise), 2 Anscombe 2*sqrt(x + 3/8)
        (Poisson-like small counts: unit variance at any level)."""
        positive = torch.relu(x)
        counts = 2.0 * torch.sqrt(positive + 0.375)
        code = self.transform.to(x.dtype)
        return torch.where(self._counts(), counts, torch.where(code > 0.5, torch.log1p(positive), x))

    def _counts(self) -> torch.Tensor:
        """Which measurements are small counts (transform code 2, Anscombe), [K]."""
        return self.transform > 1.5

    def context(
        self, x: torch.Tensor, mask: torch.Tensor, time: torch.Tensor, s: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """What the period's score needs before the network: transformed values, baseline, scale,
        standardised residual and the network's input features."""
        present = mask > 0.5
        # The baseline, scale and residual are computed in float64: a residual is a small difference of
        # large numbers (log throughput is about 11), so one float32 ulp in the transform or in the bin
        # weights would move it by 1e-5 scales, and ONNX Runtime and torch would disagree by that much.
        y64 = self.transformed(x.double())
        weekend = time[:, 2] > 0.5
        day_fraction = time[:, 3].double()
        w_profile = self._weights(day_fraction, self.profile_centres)
        w_scale = self._weights(day_fraction, self.scale_centres)
        level_wd, has_wd = self._interpolate(w_profile, s["level_weekday"].double(), s["seen_weekday"])
        level_we, has_we = self._interpolate(w_profile, s["level_weekend"].double(), s["seen_weekend"])
        use_we = weekend & has_we
        from_profile = use_we | has_wd
        profile = torch.where(use_we[:, None], level_we, level_wd)
        baseline = torch.where(from_profile[:, None], profile + s["offset"].double(), s["recent"].double())
        variance, has_var = self._interpolate(w_scale, s["variance"].double(), s["seen_variance"])
        prior = self.variance_prior.double().expand_as(variance)
        scale = torch.sqrt(torch.where(has_var[:, None], variance, prior) + self.floor.double() ** 2)
        residual = torch.where(present, (y64 - baseline) / scale, torch.zeros_like(y64))
        profile_residual = torch.where(present & from_profile[:, None], (y64 - profile) / scale, torch.zeros_like(y64))
        y = y64.float()
        features = torch.cat(
            [time[:, :2], baseline.float(), torch.log(scale).float(), from_profile.to(y.dtype)[:, None]], dim=1
        )
        return {
            "present": present,
            "y": y,
            "weekend": weekend,
            "w_profile": w_profile.float(),
            "w_scale": w_scale.float(),
            "profile": profile.float(),
            "from_profile": from_profile,
            "baseline": baseline.float(),
            "scale": scale.float(),
            "residual": residual,
            "profile_residual": profile_residual.float(),
            "features": features,
        }

    def errors(
        self, residual: torch.Tensor, present: torch.Tensor, features: torch.Tensor, group: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standardised errors u, less the node's shared part, and conditional z-scores (each measurement
        given the others), 0 where no value; and the node mates' mean error (before the shared part is
        taken out) that training fits the gain on."""
        mean, log_spread = self.net(features)
        # float64 here too: the precision matrix weighs errors by up to ~20, so float32 rounding would
        # differ between runtimes by more than 1e-5 in z
        usable = present & (self.modelled > 0.5)
        u64 = (residual.double() - mean.double()) / torch.exp(log_spread.double())
        u64 = torch.where(usable, u64, torch.zeros_like(u64))
        mates = mates_mean(u64, usable, group)
        shared = self.context_gain.double() * torch.clamp(mates, -CONTEXT_LIMIT, CONTEXT_LIMIT)
        u64 = torch.where(usable, u64 - shared, u64)
        z64 = (u64 @ self.precision.double()) / torch.sqrt(torch.diagonal(self.precision).double())
        return u64.float(), z64.float(), mates.float()

    def evidence(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        z: torch.Tensor,
        present: torch.Tensor,
        s: dict[str, torch.Tensor],
        profile_residual: torch.Tensor,
        features: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Raw evidence of this period (uncalibrated): errors held two periods in a row (the smaller of
        this and the last |u| or |z|: a real anomaly lasts, while one-period spikes are the heaviest part
        of normal noise), averages of u and z (sustained small shifts), the average of the standardised
        residual to the profile alone (shifts slow enough for the drift offset to follow), stuck runs and
        missing runs.

        `run` holds both kinds of run: from 0 up, the periods a value has stayed exactly the same; below
        0, minus the surprise (negative log-likelihood) of the values missing in a row so far."""
        u_clipped = torch.clamp(u, -self.evidence_clip, self.evidence_clip)
        z_clipped = torch.clamp(z, -self.evidence_clip, self.evidence_clip)
        shift_clipped = torch.clamp(profile_residual, -self.evidence_clip, self.evidence_clip)
        averages = {}
        for name, value in (
            ("u_short", u_clipped),
            ("u_long", u_clipped),
            ("z_short", z_clipped),
            ("z_long", z_clipped),
            ("shift_long", shift_clipped),
        ):
            rate = self.rate_short if name.endswith("short") else self.rate_long
            averages[name] = torch.where(present, s[name] + rate * (value - s[name]), s[name])
        same = present & (x == s["last"]) & (s["count"] > 0)
        was_missing = s["run"] < 0
        surprise = self.missing_surprise(features, was_missing)
        missing_run = torch.clamp(
            torch.where(was_missing, s["run"], torch.zeros_like(x)) - surprise, min=-MISSING_RUN_LIMIT
        )
        run = torch.where(same, torch.relu(s["run"]) + 1.0, torch.where(present, torch.zeros_like(x), missing_run))
        repeat_step = torch.maximum(self.rate_repeat, 1.0 / (s["count"] + 1.0))
        repeat_rate = torch.where(
            present, s["repeat_rate"] + repeat_step * (same.to(x.dtype) - s["repeat_rate"]), s["repeat_rate"]
        )
        chance = self._count_repeat(x)
        both = present & (s["count"] > 0)
        pairs = {
            "u_pair": torch.where(both, torch.minimum(torch.abs(u), torch.abs(s["u_last"])), torch.zeros_like(u)),
            "z_pair": torch.where(both, torch.minimum(torch.abs(z), torch.abs(s["z_last"])), torch.zeros_like(z)),
        }
        return {
            **averages,
            **pairs,
            "u": u,
            "z": z,
            "run": run,
            "repeat_rate": repeat_rate,
            "stuck": torch.relu(run) * -torch.log(torch.clamp(torch.maximum(repeat_rate, chance), min=1e-3, max=1.0)),
            "missing": torch.relu(-run),
            "settled": torch.relu(repeat_rate - chance),
        }

    def missing_logits(self, features: torch.Tensor, was_missing: torch.Tensor) -> torch.Tensor:
        """Logits of the chance that each measurement has no value this period [B, K]."""
        logits = self.missing_net(self.net.normalised(features), was_missing.to(features.dtype))
        return torch.clamp(logits, -MISSING_LOGIT_LIMIT, MISSING_LOGIT_LIMIT)

    def missing_surprise(self, features: torch.Tensor, was_missing: torch.Tensor) -> torch.Tensor:
        """-log of the chance that each measurement has no value this period [B, K] (float64 inside: it
        adds up over a run)."""
        return nn.functional.softplus(-self.missing_logits(features, was_missing).double()).float()

    def _count_repeat(self, x: torch.Tensor) -> torch.Tensor:
        """How often a small count repeats exactly by chance at its value (Poisson: about 1/sqrt(1 + 4 pi
        count)); 0 for the other measurements, whose repeat rate is learnt alone."""
        chance = torch.rsqrt(1.0 + 4.0 * torch.pi * torch.relu(x))
        return torch.where(self._counts(), chance, torch.zeros_like(x))

    def deviation(self, evidence: dict[str, torch.Tensor], present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated deviations per measurement [B, K], about 1 at the normal 99.9 % level: the
        statistical evidence (errors held two periods, averages) and the specific evidence (stuck runs,
        missing values)."""
        statistical = torch.zeros_like(evidence["stuck"])
        for name in PAIRS:
            statistical = torch.maximum(statistical, evidence[name] / getattr(self, f"q_{name}"))
        for name in AVERAGES:
            statistical = torch.maximum(statistical, torch.abs(evidence[name]) / getattr(self, f"q_{name}"))
        # A value that repeats exactly most of the time beyond chance (a quantised or near-constant
        # measurement in this cell) has no smooth spread to judge a change by: its statistical evidence
        # counts only as often as its value changes.
        statistical = statistical * (1.0 - evidence["settled"])
        stuck = evidence["stuck"] * self.modelled / self.q_stuck
        specific = torch.where(present, stuck, evidence["missing"] / self.q_missing)
        statistical = torch.where(present & (self.modelled > 0.5), statistical, torch.zeros_like(statistical))
        return statistical, specific

    def score(
        self, statistical: torch.Tensor, specific: torch.Tensor, s: dict[str, torch.Tensor], present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(score, raw, strongest statistical deviation). raw is the strongest deviation, statistical
        evidence counting only as far as the previous period confirms it (one-period noise spikes are most
        of the normal tail; specific evidence, missing values and stuck runs, counts at once). The score
        keeps raw in full for the first periods of an alarm run and whenever it beats the run's peak by a
        clear margin (evidence that keeps growing, as a stuck counter's or a slow drift's, is scored as it
        matures); otherwise it is capped at the sustain level, just under the alarm threshold: a lasting
        anomaly keeps ranking above normal noise without raising alarm after alarm. A cell that falls
        silent is a new incident even inside an open run: its first periods without values count in full."""
        strongest = statistical.max(dim=1).values
        confirmed = torch.minimum(strongest, s["statistical_last"][:, 0])
        raw = torch.maximum(confirmed, specific.max(dim=1).values)
        in_full = self._in_full(raw, s, present)
        return torch.where(in_full, raw, torch.clamp(raw, max=self.sustain_level)), raw, strongest

    def _in_full(self, raw: torch.Tensor, s: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Whether a raw score counts in full: early in its alarm run, early in a silence, or a new peak by
        a clear margin over the last one that counted."""
        early = s["alarm_run"][:, 0] < self.onset_periods
        newly_silent = ~present.any(dim=1) & (s["silent_run"][:, 0] < self.onset_periods)
        return early | newly_silent | (raw > self.record_factor * s["run_peak"][:, 0])

    def update(
        self,
        x: torch.Tensor,
        c: dict[str, torch.Tensor],
        evidence: dict[str, torch.Tensor],
        raw: torch.Tensor,
        s: dict[str, torch.Tensor],
        z: torch.Tensor | None = None,
        strongest: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The state after this period, updated robustly (residuals clipped to a few scales); `strongest`
        is the period's strongest statistical deviation, which the next period's confirms."""
        present, y, scale = c["present"], c["y"], c["scale"]
        gate = present.to(y.dtype)[:, None, :]
        any_present = present.any(dim=1)
        # a cell in alarm for longer than relearn_periods has a new normal (a level no normal spread
        # reaches, such as a near-constant measurement at another value): its state follows unclipped
        stale = (s["alarm_run"] >= self.relearn_periods).to(y.dtype)
        width = self.clip_sigmas * scale * (1.0 + stale * RELEARN_WIDTH)
        recent_rate = torch.maximum(self.rate_recent, 1.0 / (s["count"] + 1.0))
        recent = torch.where(present, s["recent"] + recent_rate * (y - s["recent"]), s["recent"])
        target = (y - s["offset"])[:, None, :]  # what the profile bins learn
        # the level a profile bin seen for the first time starts from: the recent level, unless that is
        # an anomaly in progress (module docstring, 7)
        calm = ((raw < self.onset_level)[:, None] & (s["alarm_run"] <= 0)) | ~c["from_profile"][:, None]
        start = torch.where(calm, recent - s["offset"], c["profile"])[:, None, :]
        new = dict(s)
        for day, active in (("weekday", ~c["weekend"]), ("weekend", c["weekend"])):
            w = c["w_profile"] * (active & any_present).to(y.dtype)[:, None]
            level, seen = s[f"level_{day}"], s[f"seen_{day}"]
            rate = w * torch.maximum(self.rate_profile, 1.0 / (1.0 + self.profile_prior + seen))
            step = torch.clamp(target - level, min=-width[:, None, :], max=width[:, None, :])
            first = (seen <= 0) & (w > 0)
            updated = level + rate[:, :, None] * step * gate
            new[f"level_{day}"] = torch.where(first[:, :, None], start.expand_as(level), updated)
            new[f"seen_{day}"] = seen + w
        w = c["w_scale"] * any_present.to(y.dtype)[:, None]
        variance, seen = s["variance"], s["seen_variance"]
        squared = torch.minimum((y - c["baseline"]) ** 2, width**2)
        rate = w * torch.maximum(self.rate_variance, 1.0 / (1.0 + seen))
        first = (seen <= 0) & (w > 0)
        updated = variance + rate[:, :, None] * (squared[:, None, :] - variance) * gate
        new["variance"] = torch.where(first[:, :, None], self.variance_prior.expand_as(variance), updated)
        new["seen_variance"] = seen + w
        pace = self.rate_offset * torch.maximum(torch.where(raw < self.gate_level, 1.0, self.gate_pace)[:, None], stale)
        follow = present & c["from_profile"][:, None]
        drift = torch.clamp(y - c["profile"] - s["offset"], min=-width, max=width)
        new["offset"] = torch.where(follow, s["offset"] + pace * drift, s["offset"])
        if z is not None:
            bias_step = torch.clamp(z - s["z_bias"], -self.clip_sigmas, self.clip_sigmas)
            new["z_bias"] = torch.where(present, s["z_bias"] + pace * bias_step, s["z_bias"])
        for name in AVERAGES:
            new[name] = evidence[name]
        new["u_last"] = torch.where(present, evidence["u"], s["u_last"])
        new["z_last"] = torch.where(present, evidence["z"], s["z_last"])
        new["run"], new["repeat_rate"] = evidence["run"], evidence["repeat_rate"]
        new["recent"] = recent
        new["last"] = torch.where(present, x, s["last"])
        new["count"] = s["count"] + any_present.to(y.dtype)[:, None]
        new["silent_run"] = torch.where(any_present[:, None], torch.zeros_like(s["silent_run"]), s["silent_run"] + 1.0)
        high = (raw >= self.onset_level)[:, None]
        new["calm"] = torch.where(high, torch.zeros_like(s["calm"]), s["calm"] + 1.0)
        opened = high | ((s["alarm_run"] > 0) & (new["calm"] < self.rearm_periods))
        new["alarm_run"] = torch.where(opened, s["alarm_run"] + 1.0, torch.zeros_like(s["alarm_run"]))
        counted = self._in_full(raw, s, present)[:, None] & high
        peak = torch.where(counted, torch.maximum(s["run_peak"], raw[:, None]), s["run_peak"])
        new["run_peak"] = torch.where(opened, peak, torch.zeros_like(s["run_peak"]))
        new["statistical_last"] = torch.zeros_like(s["statistical_last"]) if strongest is None else strongest[:, None]
        return new

    def period(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        time: torch.Tensor,
        state: torch.Tensor,
        group: torch.Tensor,
        network: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Everything one period computes for a batch of cells: the context, the errors u and z, the node
        mates' mean error ("mates"), the magnitude of each calibrated kind of evidence ("evidence" [B,
        len(CALIBRATED), K]), the score and deviation, and the state after the period ("state_out").
        Without the network (in training, before it is fitted) the errors are zeros and nothing is scored.
        Rows with the same `group` are cells of one node in one period."""
        s = self.layout.unpack(state)
        c = self.context(x, mask, time, s)
        if network:
            u, z, mates = self.errors(c["residual"], c["present"], c["features"], group)
        else:
            u = z = mates = torch.zeros_like(x)
        evidence = self.evidence(x, u, z - s["z_bias"], c["present"], s, c["profile_residual"], c["features"])
        stacked = torch.stack([torch.abs(evidence[n]) for n in CALIBRATED], dim=1)
        out = {**c, "u": u, "z": z, "mates": mates, "evidence": stacked}
        if not network:
            after = self.update(x, c, evidence, torch.zeros_like(x[:, 0]), s)
            return {**out, "state_out": self.layout.pack(after)}
        statistical, specific = self.deviation(evidence, c["present"])
        score, raw, strongest = self.score(statistical, specific, s, c["present"])
        after = self.update(x, c, evidence, raw, s, z, strongest)
        deviation = torch.maximum(statistical, specific)
        return {**out, "score": score, "deviation": deviation, "state_out": self.layout.pack(after)}

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, time: torch.Tensor, state: torch.Tensor, group: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score one period of a batch of cells and return the updated state."""
        out = self.period(x, mask, time, state, group)
        return out["score"], out["deviation"], out["state_out"]
