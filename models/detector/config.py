"""Settings of the streaming detector and of its training."""

from __future__ import annotations

from dataclasses import dataclass

TIME_FEATURES = ("tod_sin", "tod_cos", "weekend", "tod")


@dataclass(frozen=True)
class DetectorConfig:
    """Hyperparameters. Memories are in days or periods as named; rates follow from the period."""

    profile_memory_days: float = 3.0  # how long a level-profile bin remembers
    variance_memory_days: float = 3.0
    profile_prior_minutes: float = 30.0  # how much observation a new profile bin's first level counts as
    recent_periods: float = 5.0  # memory of the fast baseline used before a bin is known
    offset_hours: float = 3.0  # memory of the drift of the level away from its profile
    evidence_short_periods: float = 3.0  # memories of the error EMAs (sustained shifts)
    evidence_long_periods: float = 20.0
    repeat_memory_hours: float = 3.0  # how often values repeat exactly depends on the hour: remember hours
    clip_sigmas: float = 3.0  # residuals beyond this many scales update the state only up to it
    evidence_clip: float = 5.0  # errors beyond this many spreads add no more to the averages
    warmup_periods: int = 30
    onset_level: float = 1.5  # a raw score from this level up starts or continues an alarm run
    onset_periods: int = 15  # periods of a run scored in full; later ones are capped ...
    record_factor: float = 1.25  # ... unless they beat the run's peak by this factor
    sustain_fraction: float = 0.98  # ... and otherwise capped at this fraction of the score threshold
    rearm_periods: float = 30.0  # an alarm run stays open through this many calm periods (re-alarms are capped)
    gate_level: float = 4.0  # the slow memories (drift, z bias) follow a cell this anomalous ...
    gate_pace: float = 0.1  # ... at this fraction of their pace
    relearn_hours: float = 12.0  # an alarm run this long is a new normal: the state follows it unclipped
    count_min_spread: float = 0.5  # the network's smallest spread of a small count, in residual scales
    hidden: int = 64
    missing_hidden: int = 16  # the network that gives the chance of a missing value
    epochs: int = 6
    batch_size: int = 2048
    learning_rate: float = 2e-3
    student_t_dof: float = 5.0
    # the share of normal cell-periods the score threshold is extrapolated to alarm on: under the strictest
    # false-positive target (0.2 % of normal cell-periods) and about 5 false-alarm runs per 1,000 cell-hours
    alarm_rate: float = 0.001
    seed: int = 0
    threads: int = 2  # torch threads fitting the networks; the state recursion runs on one
