"""The words reports use and check: measurement names in plain language, and the lexicons of causes, levers
and figures that a model-written summary is looked up in.

The rApp does not import the simulator, so the TS 28.552 measurements are described here in an operator's
words (a measurement not listed keeps its own name). A cause is named by its anomaly kind word or one of its
synonyms; an action by its id, its title, or a word of the O-RAN lever it works through (`rapp.remediation`).
Patterns are matched case-insensitively on word boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from ranomaly_contracts.kinds import AnomalyKind
from rapp.remediation import GENERIC_ADVICE, REMEDIATION, Action, Control

# measurement -> (plain words, unit)
MEASUREMENT_WORDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "RRU.PrbUsedDl": ("downlink PRB usage", "PRB"),
        "RRU.PrbUsedUl": ("uplink PRB usage", "PRB"),
        "DRB.UEThpDl": ("downlink throughput per user", "kbit/s"),
        "DRB.UEThpUl": ("uplink throughput per user", "kbit/s"),
        "RRC.ConnMean": ("connected users", "UE"),
        "DRB.RlcSduDelayDl": ("downlink delay", "0.1 ms"),
        "DRB.PacketLossRateUl": ("uplink packet loss", "1E-6"),
        "MM.HoExeInterReq": ("handover attempts", "count"),
        "MM.HoExeInterSucc": ("successful handovers", "count"),
        "L1M.DL-SS-SINR.SSB": ("signal quality (SINR)", "dB"),
        "DRB.PdcpSduVolumeDL": ("downlink data volume", "Mbit"),
        "DRB.PdcpSduVolumeUL": ("uplink data volume", "Mbit"),
    }
)

# kind -> how a sentence names it ("the likely cause is ...")
CAUSE_WORDS: Mapping[str, str] = MappingProxyType(
    {
        AnomalyKind.CONGESTION: "congestion",
        AnomalyKind.INTERFERENCE: "interference",
        AnomalyKind.OUTAGE: "a cell outage",
        AnomalyKind.HO_FAILURE: "handover failures",
        AnomalyKind.TRANSPORT: "a transport fault",
        AnomalyKind.DEGRADATION: "a slow degradation",
        AnomalyKind.STUCK_COUNTER: "a stuck counter",
        AnomalyKind.SILENT: "a silent cell that stopped reporting values",
    }
)

# kind -> the words that name it: the kind itself and its natural synonyms
CAUSE_SYNONYMS: Mapping[str, str] = MappingProxyType(
    {
        AnomalyKind.CONGESTION: r"congest\w*|overload\w*|saturat\w*|surg(e|es|ed|ing)|(demand|traffic|load) spikes?",
        AnomalyKind.INTERFERENCE: r"interfer\w*|jamm\w*",
        AnomalyKind.OUTAGE: r"outages?|sleeping cells?|cell (is |was |went )?(down|dead)|off-?line|blackouts?",
        AnomalyKind.HO_FAILURE: r"ho_failure|handovers? fail\w*|fail\w* handovers?|handover failures?"
        r"|ping-?pong\w*|mobility failures?",
        AnomalyKind.TRANSPORT: r"transport|backhaul|fronthaul|midhaul",
        AnomalyKind.DEGRADATION: r"degradation|(slow|gradual)(ly)? drift\w*|drift\w* (slowly|down)|ageing|aging",
        AnomalyKind.STUCK_COUNTER: r"stuck(_counter)?|frozen|freez\w*",
        AnomalyKind.SILENT: r"silent|silence|no values?|missing (values|data|records|reports)"
        r"|(stopped|lost) reporting|reporting (stopped|lost)",
    }
)

# control -> the words that name an action working through it
LEVER_WORDS: Mapping[Control, str] = MappingProxyType(
    {
        Control.TRAFFIC_STEERING: r"steer\w*|offload\w*|load balancing|(move|moving|shift|shifting) (users|traffic)",
        Control.HANDOVER_PARAMETERS: r"handover parameters?|time-to-trigger|hysteresis|neighbou?r relations?"
        r"|cell individual offsets?",
        Control.PRB_QUOTA: r"quotas?|prb caps?|slice quotas?",
        Control.INTERFERENCE_MITIGATION: r"tilt|transmit power|interference coordination",
        Control.TRANSPORT_CHECK: r"backhaul|fronthaul|midhaul|transport links?|xn links?",
        Control.CELL_RECOVERY: r"lock and unlock\w*|unlock\w*|restart\w* the cell|reboot\w*|reset\w* the cell"
        r"|operational state",
        Control.E2_REPORTING_RESET: r"subscriptions?|renew\w*|counter reset|reset\w* the counter|e2 connection",
        Control.FIELD_ESCALATION: r"field (operations|teams?|engineers?|visits?)|site visits?|dispatch\w*|tickets?"
        r"|escalat\w*|spectrum scans?|capacity planning|network planning|hardware inspection|technicians?",
    }
)

# spelled-out figures: a summary must not carry a number in words either
NUMBER_WORDS = (
    r"zero|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?"
    r"|millions?|billions?|dozens?|percent|per cent|twice|double|doubled|triple|tripled|halved"
)


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)


CAUSE_PATTERNS: Mapping[str, re.Pattern[str]] = MappingProxyType(
    {str(kind): _words(pattern) for kind, pattern in CAUSE_SYNONYMS.items()}
)
LEVER_PATTERNS: Mapping[str, re.Pattern[str]] = MappingProxyType(
    {str(control): _words(pattern) for control, pattern in LEVER_WORDS.items()}
)
# what a summary may not say of an ongoing incident, and of a closed one
STATE_PATTERNS: Mapping[bool, re.Pattern[str]] = MappingProxyType(
    {
        True: _words(r"ended|resolved|recovered|closed|is over|was over|reopened|no longer"),
        False: _words(r"still open|ongoing|continues|continuing|remains open|is open|reopened"),
    }
)
NUMBER_PATTERN = _words(NUMBER_WORDS)
EVERY_ACTION: tuple[Action, ...] = (*(a for actions in REMEDIATION.values() for a in actions), *GENERIC_ADVICE)
ACTION_PATTERNS: Mapping[str, re.Pattern[str]] = MappingProxyType(
    {a.id: re.compile(rf"\b(?:{re.escape(a.id)}|{re.escape(a.title)})\b", re.IGNORECASE) for a in EVERY_ACTION}
)


def measurement_words(name: str) -> str:
    """A measurement in plain words (its own name when it is not a TS 28.552 measurement listed here)."""
    return MEASUREMENT_WORDS.get(name, (name, ""))[0]


def measurement_unit(name: str) -> str:
    """A listed measurement's unit, else ""."""
    return MEASUREMENT_WORDS.get(name, (name, ""))[1]
