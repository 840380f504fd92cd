"""The measurements the simulated E2 nodes report: 3GPP TS 28.552 names, units and value types.

This is what the simulator's E2SM-KPM RAN function definition advertises. Units are the standard's:
PRB counts, kbit/s, 0.1 ms, 1E-6 (parts per million), Mbit. TS 28.552 defines SS-SINR as a
distribution per SSB; the simulator reports the distribution's mean in dB under the name the O-RAN SC
E2 simulator uses for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Measurement:
    """One measurement type of the catalogue."""

    name: str
    unit: str
    integer: bool
    description: str
    decimals: int = 0  # digits kept after the decimal point for real-valued measurements


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement("RRU.PrbUsedDl", "PRB", True, "Mean number of DL PRBs used for data traffic"),
    Measurement("RRU.PrbUsedUl", "PRB", True, "Mean number of UL PRBs used for data traffic"),
    Measurement("DRB.UEThpDl", "kbit/s", True, "Average DL UE throughput"),
    Measurement("DRB.UEThpUl", "kbit/s", True, "Average UL UE throughput"),
    Measurement("RRC.ConnMean", "UE", True, "Mean number of RRC-connected UEs"),
    Measurement("DRB.RlcSduDelayDl", "0.1 ms", True, "Average DL delay of RLC SDUs in the gNB-DU"),
    Measurement("DRB.PacketLossRateUl", "1E-6", True, "UL packet loss rate, parts per million"),
    Measurement("MM.HoExeInterReq", "count", True, "Requested inter-gNB handover executions"),
    Measurement("MM.HoExeInterSucc", "count", True, "Successful inter-gNB handover executions"),
    Measurement("L1M.DL-SS-SINR.SSB", "dB", False, "Mean DL SS-SINR reported by UEs", decimals=1),
    Measurement("DRB.PdcpSduVolumeDL", "Mbit", False, "DL PDCP SDU data volume", decimals=3),
    Measurement("DRB.PdcpSduVolumeUL", "Mbit", False, "UL PDCP SDU data volume", decimals=3),
)

MEASUREMENT_NAMES: tuple[str, ...] = tuple(m.name for m in MEASUREMENTS)
MEASUREMENT_INDEX: dict[str, int] = {m.name: i for i, m in enumerate(MEASUREMENTS)}
UNITS: dict[str, str] = {m.name: m.unit for m in MEASUREMENTS}

# Positions in MEASUREMENTS, for the KPM model's array columns.
PRB_DL, PRB_UL, THP_DL, THP_UL, CONN, DELAY_DL, LOSS_UL, HO_REQ, HO_SUCC, SINR, VOL_DL, VOL_UL = range(12)

_SCALE = np.array([10.0**m.decimals for m in MEASUREMENTS])


def round_to_units(values: np.ndarray) -> np.ndarray:
    """Round float64 measurements [..., K] in place to the precision their units are reported in."""
    np.multiply(values, _SCALE, out=values)
    np.rint(values, out=values)
    np.divide(values, _SCALE, out=values)
    return values
