"""Physically possible value ranges of TS 28.552 measurements, in the units E2 nodes report them.

One place for every consumer: the xApp masks a value outside its range as "no value" (counted) instead of
scoring it. Measurements not named here are not range-checked. Bounds are inclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

VALUE_RANGES: dict[str, tuple[float, float]] = {
    "RRU.PrbUsedDl": (0.0, math.inf),  # PRBs
    "RRU.PrbUsedUl": (0.0, math.inf),
    "RRU.PrbTotDl": (0.0, 100.0),  # % of the PRBs available
    "RRU.PrbTotUl": (0.0, 100.0),
    "DRB.UEThpDl": (0.0, math.inf),  # kbit/s
    "DRB.UEThpUl": (0.0, math.inf),
    "RRC.ConnMean": (0.0, math.inf),  # UEs
    "DRB.RlcSduDelayDl": (0.0, math.inf),  # 0.1 ms
    "DRB.PacketLossRateUl": (0.0, 1e6),  # parts per million
    "MM.HoExeInterReq": (0.0, math.inf),  # counts
    "MM.HoExeInterSucc": (0.0, math.inf),
    "L1M.DL-SS-SINR.SSB": (-23.0, 40.0),  # dB: the SS-SINR reporting range of TS 38.133
    "DRB.PdcpSduVolumeDL": (0.0, math.inf),  # Mbit
    "DRB.PdcpSduVolumeUL": (0.0, math.inf),
}


def value_bounds(measurements: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) float32 [K] for these measurements; -inf and inf where unchecked."""
    ranges = [VALUE_RANGES.get(name, (-math.inf, math.inf)) for name in measurements]
    low = np.array([lo for lo, _ in ranges], dtype=np.float32)
    high = np.array([hi for _, hi in ranges], dtype=np.float32)
    return low, high
