"""The per-cell state of the streaming detector: named segments of one float32 vector."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PROFILE_BINS = 24  # level profile bins over the day (one per hour), for weekdays and for weekends
SCALE_BINS = 8  # residual-scale profile bins over the day (three hours each)


@dataclass(frozen=True)
class StateLayout:
    """Where each part of a cell's state lives in its state vector, for K measurements."""

    n_measurements: int

    @property
    def segments(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(name, shape per cell) of every segment, in vector order."""
        k = self.n_measurements
        return (
            ("level_weekday", (PROFILE_BINS, k)),  # robust EMA of the transformed value per hour bin
            ("level_weekend", (PROFILE_BINS, k)),
            ("seen_weekday", (PROFILE_BINS,)),  # how much each bin has been updated
            ("seen_weekend", (PROFILE_BINS,)),
            ("variance", (SCALE_BINS, k)),  # EMA of the squared residual per scale bin
            ("seen_variance", (SCALE_BINS,)),
            ("recent", (k,)),  # fast EMA of the transformed value: the baseline before a bin is known
            ("offset", (k,)),  # slow drift of the level away from its profile, tracked over hours
            ("u_last", (k,)),  # last period's u and z, for evidence that needs two periods in a row
            ("z_last", (k,)),
            ("u_short", (k,)),  # EMAs of the standardised error u (evidence of sustained shifts)
            ("u_long", (k,)),
            ("z_bias", (k,)),  # the cell's own slow bias of the conditional z-score, tracked over hours
            ("z_short", (k,)),  # EMAs of the conditional z-score (sustained broken relations)
            ("z_long", (k,)),
            ("shift_long", (k,)),  # EMA of the residual to the profile alone, drift offset left out (slow ramps)
            ("last", (k,)),  # last reported value, raw units
            ("run", (k,)),  # periods the value has stayed exactly the same
            ("repeat_rate", (k,)),  # EMA of how often the value repeats exactly
            ("count", (1,)),  # periods with at least one value
            ("alarm_run", (1,)),  # periods since the cell's open alarm run began
            ("calm", (1,)),  # periods since the raw score was last high (the run closes after a few)
            ("silent_run", (1,)),  # periods in a row without any value
            ("run_peak", (1,)),  # the highest raw score of that run that counted in full
            ("statistical_last", (1,)),  # last period's strongest statistical deviation (confirmation)
        )

    @property
    def sizes(self) -> list[int]:
        """Floats of every segment."""
        return [math.prod(shape) for _, shape in self.segments]

    @property
    def size(self) -> int:
        """Floats per cell."""
        return sum(self.sizes)

    def index(self, name: str) -> int:
        """Position of a segment's first float in the state vector."""
        names = [n for n, _ in self.segments]
        return sum(self.sizes[: names.index(name)])

    def unpack(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a state batch [B, S] by segment, each [B, *shape]."""
        parts = torch.split(state, self.sizes, dim=1)
        return {name: part.reshape(-1, *shape) for (name, shape), part in zip(self.segments, parts, strict=True)}

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The state batch [B, S] from its segments."""
        return torch.cat([parts[name].reshape(parts[name].shape[0], -1) for name, _ in self.segments], dim=1)
