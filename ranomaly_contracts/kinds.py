"""Anomaly kinds: the words the simulator's labels, the root-cause classifier, the reports and the
remediation advice share (ARCHITECTURE.md, Datasets contract)."""

from __future__ import annotations

from enum import StrEnum


class AnomalyKind(StrEnum):
    """The kind of a labelled anomaly."""

    CONGESTION = "congestion"  # demand surge
    INTERFERENCE = "interference"  # SINR and throughput fall at normal load
    OUTAGE = "outage"  # sleeping cell: traffic near zero while neighbours absorb load
    HO_FAILURE = "ho_failure"  # handover failure storm
    TRANSPORT = "transport"  # delay and loss up, radio normal
    DEGRADATION = "degradation"  # slow drift over hours
    STUCK_COUNTER = "stuck_counter"  # a measurement frozen
    SILENT = "silent"  # records reported as no value


ANOMALY_KINDS: tuple[str, ...] = tuple(k.value for k in AnomalyKind)
OTHER_KIND = "other"
"""A labelled event of unknown cause (real data rarely says what an anomaly was): accepted in labels, never
simulated, classified or remediated as a kind."""
LABEL_KINDS: tuple[str, ...] = (*ANOMALY_KINDS, OTHER_KIND)
