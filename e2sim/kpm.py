"""The KPM model: from demand, radio conditions and anomaly magnitudes to the reported measurements.

Relations, all vectorised over [periods, cells]:
- connected UEs follow demand (with Poisson-like noise) and drive offered DL/UL traffic;
- SINR falls when the node's other cells are loaded (interference) and with injected interference;
- spectral efficiency from SINR times PRBs gives capacity; offered traffic over capacity is the PRB
  utilisation, so more UEs or worse SINR use more PRBs;
- per-UE throughput is what a processor-sharing cell leaves a user: capacity times (1 - utilisation);
- RLC delay grows as 1 / (1 - utilisation), UL loss with low SINR and a saturated UL;
- handover executions follow UEs and mobility; their success falls with poor SINR.
Noise comes from e2sim.noise: the value of a cell in a period depends only on the seed, the period and
the cell, never on which other periods or cells were computed.
"""

from __future__ import annotations

import numpy as np

from e2sim import catalogue as cat
from e2sim.anomalies import Effects
from e2sim.noise import Randomness, poisson_quantile
from e2sim.topology import Floats, Topology

_Z_DEMAND, _Z_SINR, _Z_UTIL_DL, _Z_THP_DL, _Z_UTIL_UL, _Z_THP_UL, _Z_DELAY, _Z_LOSS, _Z_VOL_DL, _Z_VOL_UL = range(10)
_Z_HO_REQ, _Z_HO_FAIL = 10, 11
_U_HO_REQ, _U_HO_FAIL = 0, 1


def _node_mean_of_others(values: Floats, node_starts: np.ndarray, cell_node: np.ndarray) -> Floats:
    """For each cell, the mean of values over the other cells of its node (0 for a lone cell)."""
    sums = np.add.reduceat(values, node_starts, axis=1)[:, cell_node]
    sizes = np.diff(np.append(node_starts, values.shape[1]))[cell_node]
    others = np.maximum(sizes - 1, 1)
    return (sums - values) / others


def compute_kpm(
    topology: Topology,
    load: Floats,
    period_s: float,
    effects: Effects,
    noise: Randomness,
) -> np.ndarray:
    """Measurements [T, N, K] (float32, catalogue order, NaN where no value) for relative loads [T, N]."""
    tp = topology
    draws = noise.draws()
    z, u = draws.normals, draws.uniforms
    node_starts = np.flatnonzero(np.diff(tp.cell_node, prepend=-1))

    ues_wanted = tp.peak_ues * load * (1.0 + effects.surge)
    ues_mean = ues_wanted * effects.outage_keep
    if effects.any_outage:  # the node's other cells absorb most users of a sleeping cell
        lost = ues_wanted - ues_mean  # each other cell of the node takes an equal share of 70 %
        ues_mean = ues_mean + 0.7 * _node_mean_of_others(lost, node_starts, tp.cell_node)
    spread = 0.5 / np.sqrt(np.maximum(ues_mean, 1.0)) + 0.03
    ues = ues_mean * np.exp(spread * z[..., _Z_DEMAND] - 0.5 * spread**2)

    dl_offered = ues * tp.dl_mbps_per_ue * (0.75 + 0.25 * load)
    ul_offered = dl_offered * tp.ul_ratio

    neighbour_load = _node_mean_of_others(load, node_starts, tp.cell_node)
    sinr = tp.sinr_db - tp.interference_coupling_db * neighbour_load - effects.sinr_drop_db
    sinr = sinr + 0.4 * z[..., _Z_SINR]
    se_dl = np.clip(0.75 * np.log2(1.0 + 10.0 ** (sinr / 10.0)), 0.1, 5.5)
    se_ul = np.clip(0.6 * np.log2(1.0 + 10.0 ** ((sinr - 4.0) / 10.0)), 0.05, 3.5)
    ul_share = np.where(tp.dl_share < 1.0, 1.0 - tp.dl_share, 1.0)
    cap_dl = tp.n_prb_dl * tp.prb_mhz * tp.dl_share * se_dl * effects.capacity_factor
    cap_ul = tp.n_prb_ul * tp.prb_mhz * ul_share * se_ul * effects.capacity_factor

    util_dl = np.clip(dl_offered / cap_dl * np.exp(0.03 * z[..., _Z_UTIL_DL]), 0.0, 0.985)
    util_ul = np.clip(ul_offered / cap_ul * np.exp(0.03 * z[..., _Z_UTIL_UL]), 0.0, 0.985)
    reachable = np.clip(effects.outage_keep * 8.0, 0.0, 1.0)  # a sleeping cell serves almost nobody
    backhaul = 1.0 - 0.35 * effects.transport
    thp_dl = 1000.0 * cap_dl * ((1.0 - util_dl) ** 0.7 * 0.45 + 0.03) * backhaul * reachable
    thp_ul = 1000.0 * cap_ul * ((1.0 - util_ul) ** 0.7 * 0.45 + 0.03) * backhaul * reachable

    backhaul_ms = np.where(effects.transport > 0.0, 1.5 + 40.0 * effects.transport**2, 0.0)
    delay_ms = tp.delay_ms / (1.0 - util_dl) ** 0.9 + backhaul_ms
    loss = (
        tp.loss_ppm * np.exp(-(sinr - 8.0) / 5.0)
        + 3e5 * np.maximum(util_ul - 0.85, 0.0) ** 2
        + np.where(effects.transport > 0.0, 80.0 + 1.2e4 * effects.transport**3, 0.0)
        + 3e3 * effects.ho_fail**2
    )
    radio_failures = 0.03 * np.clip((6.0 - sinr) / 6.0, 0.0, 1.0)
    # a failure storm adds re-attempts (ping-pong) on top of the cell's mobility
    ho_expected = (ues * tp.handovers_per_ue_min * (1.0 + 1.5 * effects.ho_fail) + 4.0 * effects.ho_fail) * (
        period_s / 60.0
    )
    ho_success = np.clip(tp.ho_success * (1.0 - effects.ho_fail) - radio_failures, 0.0, 1.0)
    ho_req = poisson_quantile(u[..., _U_HO_REQ], z[..., _Z_HO_REQ], ho_expected)
    ho_fail = poisson_quantile(u[..., _U_HO_FAIL], z[..., _Z_HO_FAIL], ho_req * (1.0 - ho_success))
    ho_succ = ho_req - np.minimum(ho_fail, ho_req)

    out = np.empty((*load.shape, len(cat.MEASUREMENTS)))
    out[..., cat.PRB_DL] = util_dl * tp.n_prb_dl
    out[..., cat.PRB_UL] = util_ul * tp.n_prb_ul
    out[..., cat.THP_DL] = thp_dl * np.exp(0.06 * z[..., _Z_THP_DL])
    out[..., cat.THP_UL] = thp_ul * np.exp(0.08 * z[..., _Z_THP_UL])
    out[..., cat.CONN] = ues
    out[..., cat.DELAY_DL] = 10.0 * delay_ms * np.exp(0.08 * z[..., _Z_DELAY])
    out[..., cat.LOSS_UL] = np.minimum(loss * np.exp(0.25 * z[..., _Z_LOSS]), 1e6)
    out[..., cat.HO_REQ] = ho_req
    out[..., cat.HO_SUCC] = ho_succ
    out[..., cat.SINR] = sinr
    out[..., cat.VOL_DL] = util_dl * cap_dl * period_s * np.exp(0.02 * z[..., _Z_VOL_DL])
    out[..., cat.VOL_UL] = util_ul * cap_ul * period_s * np.exp(0.02 * z[..., _Z_VOL_UL])
    return cat.round_to_units(out).astype(np.float32)
