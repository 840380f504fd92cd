"""Demand over time: daily and weekly rhythm per area type, per-cell shape and slow random variation.

The load is a pure function of time, so any period of any cell can be computed on its own: the
simulator needs no state to stream, replay or export the same numbers.
"""

from __future__ import annotations

import numpy as np

from e2sim.topology import CellType, Floats, Topology

# Hourly load relative to the busy hour, from 00:00 to 23:00 local time; [weekday, weekend].
# fmt: off
_PROFILES: dict[CellType, tuple[list[float], list[float]]] = {
    CellType.DENSE_URBAN: (  # business district: office hours, empty at night, quiet weekends
        [.12, .08, .06, .05, .05, .07, .15, .35, .65, .85, .92, .95, 1.0, .97, .93, .92, .90, .88, .75, .55, .45, .38,
         .28, .18],
        [.14, .10, .07, .06, .05, .06, .09, .14, .22, .32, .40, .46, .50, .50, .48, .46, .45, .44, .42, .40, .36, .30,
         .24, .18],
    ),
    CellType.URBAN: (  # mixed use: lunch and evening peaks
        [.20, .13, .09, .07, .06, .08, .15, .30, .50, .62, .70, .76, .82, .80, .76, .76, .80, .86, .90, .95, 1.0, .95,
         .75, .45],
        [.28, .20, .13, .09, .07, .07, .10, .18, .32, .48, .62, .72, .78, .78, .76, .76, .78, .82, .88, .93, .96, .90,
         .72, .48],
    ),
    CellType.SUBURBAN: (  # residential: quiet days, strong evenings
        [.25, .15, .10, .07, .06, .08, .20, .35, .35, .30, .32, .35, .40, .40, .40, .45, .55, .70, .82, .92, 1.0, .98,
         .80, .50],
        [.32, .22, .14, .09, .07, .07, .11, .22, .38, .52, .60, .64, .66, .66, .64, .64, .68, .76, .86, .95, 1.0, .96,
         .80, .55],
    ),
    CellType.RURAL: (  # flat, travel-driven
        [.22, .15, .12, .10, .10, .14, .30, .55, .70, .72, .74, .76, .80, .78, .76, .78, .85, .92, .95, .98, 1.0, .90,
         .65, .38],
        [.26, .18, .13, .10, .10, .11, .18, .32, .50, .65, .74, .80, .82, .82, .80, .80, .82, .86, .90, .94, .95, .85,
         .62, .38],
    ),
    CellType.HOTSPOT: (  # transport hub: sharp commuting peaks
        [.05, .03, .02, .02, .03, .10, .35, .85, 1.0, .70, .45, .45, .55, .50, .45, .50, .70, .95, 1.0, .65, .45, .35,
         .20, .10],
        [.06, .04, .03, .02, .02, .04, .10, .20, .32, .42, .50, .55, .58, .58, .56, .55, .55, .52, .48, .42, .35, .28,
         .18, .10],
    ),
}
# fmt: on

# [type, weekend, hour 0..24] with hour 24 repeating hour 0, for interpolation.
PROFILE_TABLE: Floats = np.array(
    [[[*day, day[0]] for day in _PROFILES[t]] for t in sorted(_PROFILES)], dtype=np.float64
)

SECONDS_PER_DAY = 86400.0


def _profile(types: np.ndarray, local_s: Floats) -> Floats:
    """Interpolated profile value of each cell type at each local time (seconds since the epoch)."""
    day = np.floor(local_s / SECONDS_PER_DAY)
    weekend = ((day + 3) % 7 >= 5).astype(np.int64)  # 1970-01-01 was a Thursday; Saturday=5, Sunday=6
    hour = (local_s - day * SECONDS_PER_DAY) / 3600.0
    low = np.floor(hour).astype(np.int64)
    frac = hour - low
    flat = (types * 2 + weekend) * PROFILE_TABLE.shape[-1] + low
    values = PROFILE_TABLE.reshape(-1)
    return values[flat] * (1 - frac) + values[flat + 1] * frac


def relative_load(topology: Topology, times_s: Floats, utc_offset_h: float) -> Floats:
    """Noise-free load of every cell relative to its busy hour, shape [T, N]."""
    local = times_s[:, None] + (utc_offset_h + topology.profile_shift_h[None, :]) * 3600.0
    shape = (len(times_s), topology.n_cells)
    own = _profile(np.broadcast_to(topology.cell_type, shape), local)
    other = _profile(np.broadcast_to(topology.profile_blend_type, shape), local)
    blend = topology.profile_blend[None, :]
    daily = own * (1 - blend) + other * blend
    phase = 2 * np.pi * times_s[:, None, None] / topology.drift_period_s[None] + topology.drift_phase[None]
    drift = 1.0 + (topology.drift_amp[None] * np.sin(phase)).sum(axis=-1)
    floor = topology.night_floor[None, :]
    return (floor + (1 - floor) * daily) * drift
