"""The simulator's randomness: per-period keyed draws, the same for a cell whatever the others do.

Every period draws its numbers from its own generator, keyed by (seed, period length, period index),
and every cell consumes a fixed count of them. So a value depends only on the seed, the period and the
cell: blocks can be computed in any order or size, and an anomaly in one cell never moves another
cell's noise.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from e2sim.catalogue import MEASUREMENTS
from e2sim.topology import Floats, Ints

N_NORMALS = 12  # normal draws per cell and period
N_UNIFORMS = 2  # uniform draws per cell and period
_SMALL_RATE = 25.0  # below it counts are drawn exactly; above, from the normal approximation
_MAX_SMALL_COUNT = 80


class Draws(NamedTuple):
    """Random numbers of a block: normals [T, N, N_NORMALS] and uniforms [T, N, N_UNIFORMS] for the KPM
    model, then what e2sim.realism reports with: uniforms [T, N] for idle cells, flat indices of lost
    records into [T, N] and of lost values into [T, N, K]."""

    normals: Floats
    uniforms: Floats
    idle: Floats
    lost_records: Ints
    lost_values: Ints


class Randomness(Protocol):
    """Where the KPM model's noise comes from."""

    def draws(self) -> Draws:
        """The block's random numbers."""
        ...


class PeriodRandomness:
    """Noise of a block of periods, each period from its own Philox generator; drawn once, then kept.

    After the KPM model's numbers, each period draws which records (chance record_drop) and which values
    (chance value_drop) are lost, so the KPM noise is the same whatever the losses."""

    def __init__(
        self, seed: int, period_ms: int, periods: np.ndarray, n_cells: int, losses: tuple[float, float] = (0.0, 0.0)
    ) -> None:
        words = np.random.SeedSequence([seed, 0x4B504D, period_ms]).generate_state(2, np.uint64)
        self._key = int(words[0]) << 64 | int(words[1])
        self._periods = periods
        self._n_cells = n_cells
        self._value_drop, self._record_drop = losses
        self._draws: Draws | None = None

    def draws(self) -> Draws:
        """Every period's numbers."""
        if self._draws is None:
            self._draws = self._draw()
        return self._draws

    def _draw(self) -> Draws:
        count, n, k = len(self._periods), self._n_cells, len(MEASUREMENTS)
        normals = np.empty((count, n, N_NORMALS))
        uniforms = np.empty((count, n, N_UNIFORMS))
        idle = np.empty((count, n))
        records: list[Ints] = []
        values: list[Ints] = []
        losing = self._record_drop > 0.0 or self._value_drop > 0.0
        for row, period in enumerate(self._periods):
            generator = np.random.Generator(np.random.Philox(key=self._key, counter=[0, 0, 0, int(period)]))
            generator.standard_normal(out=normals[row])
            generator.random(out=uniforms[row])
            generator.random(out=idle[row])
            if losing:
                lost_records = generator.binomial(n, self._record_drop)
                lost_values = generator.binomial(n * k, self._value_drop)
                at = generator.integers(0, n * k, lost_records + lost_values)
                records.append(row * n + at[:lost_records] // k)
                values.append(row * n * k + at[lost_records:])
        return Draws(normals, uniforms, idle, _joined(records), _joined(values))


class NoRandomness:
    """The noise-free middle of every distribution: normals 0 and uniforms 0.5."""

    def __init__(self, n_periods: int, n_cells: int) -> None:
        self._shape = (n_periods, n_cells)

    def draws(self) -> Draws:
        """Zeros and halves; no cell idle, nothing lost."""
        nothing = np.zeros(0, dtype=np.int64)
        return Draws(
            np.zeros((*self._shape, N_NORMALS)), np.full((*self._shape, N_UNIFORMS), 0.5), np.ones(self._shape),
            nothing, nothing,
        )  # fmt: skip


def _joined(parts: list[Ints]) -> Ints:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def poisson_quantile(u: Floats, z: Floats, rate: Floats) -> Floats:
    """Poisson counts from pre-drawn numbers: the u-quantile for small rates, the normal
    approximation (rate + sqrt(rate) z, rounded) for large ones."""
    counts = np.maximum(np.rint(rate + np.sqrt(rate) * z), 0.0)
    small = rate <= _SMALL_RATE
    if not small.any():
        return counts
    u_small, rate_small = u[small], rate[small]
    term = np.exp(-rate_small)
    cdf = term.copy()
    count = np.zeros_like(rate_small)
    for k in range(1, _MAX_SMALL_COUNT):
        below = cdf < u_small
        if k % 8 == 0 and not below.any():
            break
        count += below
        term *= rate_small / k
        cdf += term
    counts[small] = count
    return counts
