"""The simulator's randomness: per-period keyed draws, the same for a cell whatever the others do.

Every period draws its numbers from its own generator, keyed by (seed, period length, period index),
and every cell consumes a fixed count of them. So a value depends only on the seed, the period and the
cell: blocks can be computed in any order or size, and an anomaly in one cell never moves another
cell's noise.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from e2sim.topology import Floats

N_NORMALS = 12  # normal draws per cell and period
N_UNIFORMS = 2  # uniform draws per cell and period
_SMALL_RATE = 25.0  # below it counts are drawn exactly; above, from the normal approximation
_MAX_SMALL_COUNT = 80


class Draws(NamedTuple):
    """Random numbers of a block: normals [T, N, N_NORMALS] and uniforms [T, N, N_UNIFORMS]."""

    normals: Floats
    uniforms: Floats


class Randomness(Protocol):
    """Where the KPM model's noise comes from."""

    def draws(self) -> Draws:
        """The block's random numbers."""
        ...


class PeriodRandomness:
    """Noise of a block of periods, each period from its own Philox generator."""

    def __init__(self, seed: int, period_ms: int, periods: np.ndarray, n_cells: int) -> None:
        words = np.random.SeedSequence([seed, 0x4B504D, period_ms]).generate_state(2, np.uint64)
        self._key = int(words[0]) << 64 | int(words[1])
        self._periods = periods
        self._n_cells = n_cells

    def draws(self) -> Draws:
        """Draw every period's numbers."""
        count = len(self._periods)
        normals = np.empty((count, self._n_cells, N_NORMALS))
        uniforms = np.empty((count, self._n_cells, N_UNIFORMS))
        for row, period in enumerate(self._periods):
            generator = np.random.Generator(np.random.Philox(key=self._key, counter=[0, 0, 0, int(period)]))
            generator.standard_normal(out=normals[row])
            generator.random(out=uniforms[row])
        return Draws(normals, uniforms)


class NoRandomness:
    """The noise-free middle of every distribution: normals 0 and uniforms 0.5."""

    def __init__(self, n_periods: int, n_cells: int) -> None:
        self._shape = (n_periods, n_cells)

    def draws(self) -> Draws:
        """Zeros and halves."""
        return Draws(np.zeros((*self._shape, N_NORMALS)), np.full((*self._shape, N_UNIFORMS), 0.5))


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
