"""Remediation advice: for each root-cause kind, a ranked list of actions an operator can take.

Advice only: nothing here is executed automatically. Each action names the O-RAN control it maps to (an A1
policy, an E2SM-RC control, an O1 configuration change, or a ticket) so an operator, or a later closed-loop
xApp under their policy, knows where the lever is. The rationale of each action rests on the kind's
signature in the KPMs, as the simulator injects it (`e2sim.anomalies`, `e2sim.kpm`).

Confidences are expert priors in [0, 1] (how often the action addresses an incident of that kind), not
calibrated probabilities; actions are ranked by them, highest first. An incident whose kind is unknown (not
classified yet, or a word outside `ranomaly_contracts.kinds`) gets a generic escalation list, flagged by
`Advice.known` being False. Action ids are stable words the reports and their checks look up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from ranomaly_contracts.kinds import AnomalyKind


class Control(StrEnum):
    """The O-RAN control an action works through."""

    TRAFFIC_STEERING = "traffic_steering"
    HANDOVER_PARAMETERS = "handover_parameters"
    PRB_QUOTA = "prb_quota"
    INTERFERENCE_MITIGATION = "interference_mitigation"
    TRANSPORT_CHECK = "transport_check"
    CELL_RECOVERY = "cell_recovery"
    E2_REPORTING_RESET = "e2_reporting_reset"
    FIELD_ESCALATION = "field_escalation"


CONTROL_MAPPING: Mapping[Control, str] = MappingProxyType(
    {
        Control.TRAFFIC_STEERING: "A1 traffic steering preference policy; cell individual offsets "
        "(NRCellRelation.cellIndividualOffset) through O1 or E2SM-RC connected-mode mobility control",
        Control.HANDOVER_PARAMETERS: "handover parameters (time-to-trigger, hysteresis, cell individual offsets) and "
        "neighbour relations through O1 CM or E2SM-RC connected-mode mobility control",
        Control.PRB_QUOTA: "PRB caps and slice quotas: E2SM-RC radio resource allocation control (slice-level PRB "
        "quota) or the RRM policy ratio through O1",
        Control.INTERFERENCE_MITIGATION: "interference mitigation: transmit power, antenna tilt and inter-cell "
        "interference coordination through O1 CM",
        Control.TRANSPORT_CHECK: "transport check: fronthaul, midhaul and backhaul links, their QoS queues and routes "
        "(transport network management, outside the RIC)",
        Control.CELL_RECOVERY: "cell recovery: the cell's operational state and alarms through O1 FM, an "
        "administrative lock and unlock through O1 CM",
        Control.E2_REPORTING_RESET: "counter and reporting reset on the E2 node: renew the E2SM-KPM subscription "
        "(RIC subscription delete and request) or its O1 performance management job",
        Control.FIELD_ESCALATION: "escalation to field operations: a trouble ticket for a site visit, hardware, "
        "spectrum scan or capacity planning",
    }
)


@dataclass(frozen=True, slots=True)
class Action:
    """One remediation action: what to do, through which control, how likely it helps, and why."""

    id: str
    title: str
    control: Control
    confidence: float  # expert prior in [0, 1]
    rationale: str


@dataclass(frozen=True, slots=True)
class Advice:
    """The actions advised for one incident, best first; `known` is False for the generic escalation list."""

    kind: str | None
    known: bool
    actions: tuple[Action, ...]


_A = Action
_C = Control
REMEDIATION: Mapping[str, tuple[Action, ...]] = MappingProxyType(
    {
        AnomalyKind.CONGESTION: (
            _A("steer_traffic_to_neighbours", "Steer traffic to neighbours with spare capacity", _C.TRAFFIC_STEERING,
               0.8, "A demand surge: RRC-connected UEs, PRB use and data volume rise together while throughput per "
                    "UE falls and delay grows; neighbours with free PRBs can take part of the load."),
            _A("cap_prb_per_slice", "Protect priority slices with slice-level PRB quotas", _C.PRB_QUOTA, 0.6,
               "PRB use is near saturation, so every slice loses throughput; quotas keep priority services whole "
               "while the surge lasts."),
            _A("plan_capacity", "Ask network planning for capacity if surges recur", _C.FIELD_ESCALATION, 0.3,
               "A cell that saturates again and again at busy hours needs a carrier or a sector split, not tuning."),
        ),
        AnomalyKind.INTERFERENCE: (
            _A("mitigate_interference", "Mitigate interference: review power, tilt and interference coordination",
               _C.INTERFERENCE_MITIGATION, 0.7,
               "SINR and throughput fall while the load (connected UEs, PRB demand) stays normal: a radio-quality "
               "problem, not a demand one; packet loss and radio handover failures follow SINR."),
            _A("steer_edge_users", "Steer cell-edge users to a cleaner neighbour or layer", _C.TRAFFIC_STEERING, 0.5,
               "Users at the edge suffer most from the lost SINR; moving them restores their throughput meanwhile."),
            _A("spectrum_scan", "Send field operations for a spectrum scan", _C.FIELD_ESCALATION, 0.4,
               "An external interferer does not go away by tuning; a scan on site locates it."),
        ),
        AnomalyKind.OUTAGE: (
            _A("recover_cell", "Check the cell's state and alarms, lock and unlock it", _C.CELL_RECOVERY, 0.8,
               "A sleeping cell: traffic, connected UEs and throughput drop near zero while the node's other cells "
               "absorb its users, and the cell raises no alarm of its own."),
            _A("dispatch_field_team", "Escalate to field operations if it stays down", _C.FIELD_ESCALATION, 0.55,
               "A cell that does not come back after a restart has a hardware, power or radio unit fault on site."),
            _A("steer_to_covering_neighbours", "Raise offsets towards the neighbours covering its area",
               _C.TRAFFIC_STEERING, 0.35,
               "Its neighbours already carry most of its users; offsets keep the rest served until it returns."),
        ),
        AnomalyKind.HO_FAILURE: (
            _A("tune_handover_parameters", "Review time-to-trigger, hysteresis and offsets towards failing neighbours",
               _C.HANDOVER_PARAMETERS, 0.8,
               "A handover failure storm: inter-gNB handover requests rise with re-attempts (ping-pong) while "
               "successful executions fall, and UL packet loss grows around them."),
            _A("audit_neighbour_relations", "Audit the neighbour relations (missing neighbours, PCI confusion)",
               _C.HANDOVER_PARAMETERS, 0.5,
               "Failures concentrated on one cell at normal SINR point to wrong or missing neighbour relations."),
            _A("check_xn_transport", "Check the transport of the Xn links to the neighbouring gNBs",
               _C.TRANSPORT_CHECK, 0.3, "Inter-gNB handovers are prepared over Xn; a faulty link fails them too."),
        ),
        AnomalyKind.TRANSPORT: (
            _A("check_backhaul", "Check the node's backhaul and fronthaul links", _C.TRANSPORT_CHECK, 0.85,
               "RLC delay and UL packet loss rise and throughput falls while SINR and PRB use stay normal: the "
               "bottleneck is behind the radio, often for every cell of the node at once."),
            _A("escalate_transport_fault", "Escalate a link or equipment fault to field operations",
               _C.FIELD_ESCALATION, 0.45,
               "A delay and loss that persist after rerouting point to a faulty link, port or transport unit on site."),
            _A("steer_delay_sensitive_traffic", "Steer delay-sensitive traffic to cells on another transport path",
               _C.TRAFFIC_STEERING, 0.25,
               "Cells behind a healthy link can carry the users most hurt by the delay until the link is fixed."),
        ),
        AnomalyKind.DEGRADATION: (
            _A("inspect_radio_hardware", "Escalate a radio hardware inspection (radio unit, antenna, feeder)",
               _C.FIELD_ESCALATION, 0.6,
               "SINR and capacity drift down slowly over hours at a steady load: ageing or failing hardware "
               "rather than a sudden event."),
            _A("rule_out_interference", "Rule out a growing interferer", _C.INTERFERENCE_MITIGATION, 0.45,
               "A slowly rising interferer shows the same SINR drift at first; a scan or neighbour comparison "
               "separates the two."),
            _A("offload_degraded_cell", "Offload part of the cell's traffic until it is repaired",
               _C.TRAFFIC_STEERING, 0.3,
               "Its shrinking capacity lowers every user's throughput; neighbours can carry part of its load."),
        ),
        AnomalyKind.STUCK_COUNTER: (
            _A("renew_kpm_reporting", "Reset the counter: renew the KPM subscription on the E2 node",
               _C.E2_REPORTING_RESET, 0.75,
               "One measurement repeats exactly, period after period, while the cell's other measurements move: "
               "a reporting fault, not a radio one."),
            _A("ticket_node_software", "Open a ticket on the node's performance management software",
               _C.FIELD_ESCALATION, 0.4,
               "A counter that freezes again after a renewal is a fault in the node's software; the vendor fixes it."),
        ),
        AnomalyKind.SILENT: (
            _A("restore_kpm_reporting", "Check the E2 connection and renew the KPM subscription",
               _C.E2_REPORTING_RESET, 0.6,
               "The node reports the cell's records with no value: the reporting is lost while the cell may be "
               "serving normally."),
            _A("confirm_cell_serving", "Confirm the cell is serving (alarms, operational state)",
               _C.CELL_RECOVERY, 0.4, "Missing values can hide an outage; the cell's own state tells them apart."),
            _A("escalate_reporting_fault", "Escalate to field operations if reporting does not return",
               _C.FIELD_ESCALATION, 0.25,
               "A node that stays silent after a renewal has a fault on site or in its O&M link."),
        ),
    }
)  # fmt: skip

GENERIC_ADVICE: tuple[Action, ...] = (
    _A("review_attributed_measurements", "Review the measurements the incident is attributed to",
       _C.FIELD_ESCALATION, 0.5,
       "The root cause is unknown: the attribution shows which measurements drive the incident, the first clue."),
    _A("escalate_to_operations", "Escalate to field operations with the incident's attribution",
       _C.FIELD_ESCALATION, 0.3, "Without a known cause no automatic lever is safe; a person decides."),
)  # fmt: skip


def advice(kind: str) -> list[Action]:
    """The ranked actions of a known kind; KeyError naming the known kinds for any other word."""
    try:
        return list(REMEDIATION[kind])
    except KeyError:
        raise KeyError(f"unknown anomaly kind {kind!r}; known kinds: {', '.join(REMEDIATION)}") from None


def advise(kind: str | None) -> Advice:
    """The advice for an incident of this kind; the generic escalation list when the kind is None or unknown."""
    if kind is not None and kind in REMEDIATION:
        return Advice(kind, True, REMEDIATION[kind])
    return Advice(kind, False, GENERIC_ADVICE)
