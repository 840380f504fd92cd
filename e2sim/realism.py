"""How the simulated network reports outside labelled events: routine missing values, coarse resolution, late cells.

Real networks report "no value" routinely, and not only when something is wrong:
- a cell with no UE connected in a period has no per-UE throughput, no SDU delay, no UL loss ratio and no
  SINR (their denominators are zero), and counts zero PRBs, volume and handovers; with a few UEs, no UL
  burst may last long enough to give a UL throughput sample (TS 28.552 leaves out each burst's last slot);
- single values and whole records are lost on the way (a whole lost record: every value of the cell
  empty for one period, unlike a silent cell, which reports nothing for a run of periods);
- some vendors report with coarse resolution, so a measurement sits on a few levels or at one value most of
  the time (SINR in whole dB, the UL loss ratio in 0.1 % steps, the delay in whole ms);
- cells are switched on while the network runs (no row before they appear).

Every knob lives in `Realism`; the defaults are the default export's and the live stream's. Randomness is
drawn per period from the period's own generator (e2sim.noise), so every value stays a pure function of
the seed and the period, and labelled events (which the realism leaves alone) never move it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e2sim import catalogue as cat
from e2sim.noise import Draws
from e2sim.topology import Floats, Topology

# Measurements that are ratios over what a connected UE does: undefined (empty) without any UE.
PER_UE = (cat.THP_DL, cat.THP_UL, cat.DELAY_DL, cat.LOSS_UL, cat.SINR)
# Measurements that count what UEs do: zero without any UE.
COUNTED = (cat.PRB_DL, cat.PRB_UL, cat.CONN, cat.HO_REQ, cat.HO_SUCC, cat.VOL_DL, cat.VOL_UL)
# Coarse vendors' reporting steps, in catalogue units.
COARSE_STEPS = {cat.SINR: 1.0, cat.LOSS_UL: 1000.0, cat.DELAY_DL: 10.0}


@dataclass(frozen=True)
class Realism:
    """The knobs of routine reporting (0 turns one off); `Realism.off()` gives the clean simulator (every
    value reported, full resolution, every cell from the start)."""

    value_drop: float = 0.012  # chance that a single value is lost
    record_drop: float = 0.0015  # chance that a cell's whole record (every value) is lost for a period
    ue_session_min: float = 2.0  # mean UE session: P(no UE in a period) = exp(-ConnMean (1 + period / session))
    ul_bursts_per_ue_min: float = 0.5  # UL bursts long enough for a throughput sample, per UE and minute
    coarse_node_share: float = 0.3  # nodes whose vendor reports SINR, UL loss and delay with coarse steps
    late_cell_share: float = 0.05  # cells (rounded down) switched on part-way
    late_cell_days: tuple[float, float] = (0.5, 4.0)  # when, in days after the default start (uniform)

    @classmethod
    def off(cls) -> Realism:
        """No routine missing value, full resolution, every cell from the start."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Deployment:
    """What the realism fixes per cell for the world's lifetime."""

    coarse: np.ndarray  # bool [N]: the cell's node reports with coarse resolution
    appears_s: Floats  # [N]: when the cell is switched on, seconds since the epoch (-inf: from the start)

    def appeared(self, times_s: Floats) -> np.ndarray:
        """Bool [T, N]: whether each cell reports at each period start."""
        return times_s[:, None] >= self.appears_s[None, :]


def deploy(topology: Topology, seed: int, realism: Realism, epoch_s: float) -> Deployment:
    """Coarse nodes and late cells of a network, deterministic for the seed; late cells count their days
    from epoch_s (a fixed time, so that every stream start sees the same cells)."""
    rng = np.random.default_rng([seed, 0x5EA1])
    coarse_nodes = rng.uniform(size=len(topology.node_ids)) < realism.coarse_node_share
    appears = np.full(topology.n_cells, -np.inf)
    late = rng.permutation(topology.n_cells)[: int(realism.late_cell_share * topology.n_cells)]
    low, high = realism.late_cell_days
    appears[late] = epoch_s + np.floor(rng.uniform(low, high, late.size) * 86_400.0)
    return Deployment(coarse=coarse_nodes[topology.cell_node], appears_s=appears)


def coarsen(values: np.ndarray, coarse: np.ndarray) -> None:
    """Round the coarse cells' measurements [T, N, K] in place to their vendor's steps."""
    if not coarse.any():
        return
    for m, step in COARSE_STEPS.items():
        values[:, coarse, m] = np.rint(values[:, coarse, m] / step) * step


def report(values: np.ndarray, draws: Draws, routine: np.ndarray, period_s: float, realism: Realism) -> None:
    """Apply idle cells and lost values and records in place to values [T, N, K], where routine [T, N] is
    true (outside labelled events, cells that report)."""
    n_periods, n_cells, k = values.shape
    conn = values[..., cat.CONN].astype(np.float64)
    if realism.ul_bursts_per_ue_min > 0.0:  # one draw for both: a period without UE has no UL burst either
        no_burst = routine & (draws.idle < np.exp(-conn * realism.ul_bursts_per_ue_min * period_s / 60.0))
        values[..., cat.THP_UL][no_burst] = np.nan
    if realism.ue_session_min > 0.0:
        idle = routine & (draws.idle < np.exp(-conn * (1.0 + period_s / 60.0 / realism.ue_session_min)))
        if idle.any():
            values[idle[..., None] & _mask(PER_UE, k)] = np.nan
            values[idle[..., None] & _mask(COUNTED, k)] = 0.0
    flat = values.reshape(n_periods * n_cells, k)
    records = draws.lost_records[routine.reshape(-1)[draws.lost_records]]
    flat[records] = np.nan
    cells = draws.lost_values // k
    lost = draws.lost_values[routine.reshape(-1)[cells]]
    flat.reshape(-1)[lost] = np.nan


def _mask(measurements: tuple[int, ...], k: int) -> np.ndarray:
    mask = np.zeros(k, dtype=bool)
    mask[list(measurements)] = True
    return mask
