"""E2SM-KPM v2/v3 codec: event trigger, action definition, indication header and message (aligned PER).

The ASN.1 module is ``kpm.asn`` next to this file, compiled once with asn1tools on first use. ``version`` (2 or 3)
selects the indication header's TimeStamp: v3 sends a 64-bit NTP timestamp (seconds since 1900-01-01 and a
32-bit fraction), v2 the 32-bit NTP seconds alone. Both eras of NTP are read the RFC 4330 way (a seconds field
below 2^31 is in 2036-2104). Every other structure encodes the same in both versions.

Values: ``None`` or NaN is encoded as noValue; a finite integral value in 0..2^32-1 as an integer record; anything
else (fractions, negatives, larger values, infinities) as a real record. Decoded values are float64, NaN for
noValue.

Names: an indication's measInfoList names its measurements (measName). When it is absent, or any measurement is
given by measID, ``KpmReport.names`` is None and the values are in the order of the action definition's
measurements: the caller maps them. A measurement with several labels has one value per label: its name repeats.

Empty header strings are never encoded (left out like None): asn1c and pycrate pad after an empty string's length,
asn1tools does not, so an empty string followed by another one is read differently by different implementations.
A v2 TimeStamp holding Unix seconds instead of NTP seconds fails the collection start check.

Aggregation, per measurement name, NaN (noValue) ignored, NaN when every input is NaN:

* Over UEs (indication message format 3, one report per UE, aggregated to the cell): summed for
  RRU.PrbUsedDl/Ul (a UE's PRBs add up to the cell's), RRC.ConnMean (each UE counts itself), MM.HoExeInterReq/
  Succ (event counts) and DRB.PdcpSduVolumeDL/UL (data volumes); averaged for DRB.UEThpDl/Ul (the cell's average
  UE throughput), DRB.RlcSduDelayDl, DRB.PacketLossRateUl (rates and delays) and L1M.DL-SS-SINR.SSB.
* Over granularity periods (several measData items in one report): summed for the event counts and data volumes
  (MM.HoExeInter*, DRB.PdcpSduVolume*), averaged for everything else (PRB and UE means, throughput, delay, loss
  rate, SINR are per-period averages or gauges).
* Any other name, and every measurement of a report without names: averaged.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asn1tools  # type: ignore[import-untyped]
import numpy as np

VERSIONS = (2, 3)
MAX_UINT32 = 0xFFFF_FFFF
NTP_UNIX_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: no KPM report is older
FUTURE_SLACK_MS = 86_400_000  # collection starts more than a day ahead of the receiver's clock are garbage

SUMMED_OVER_UES = frozenset(
    {
        "RRU.PrbUsedDl",
        "RRU.PrbUsedUl",
        "RRC.ConnMean",
        "MM.HoExeInterReq",
        "MM.HoExeInterSucc",
        "DRB.PdcpSduVolumeDL",
        "DRB.PdcpSduVolumeUL",
    }
)
SUMMED_OVER_PERIODS = frozenset({"MM.HoExeInterReq", "MM.HoExeInterSucc", "DRB.PdcpSduVolumeDL", "DRB.PdcpSduVolumeUL"})

# The PrintableString alphabet (X.680 41.4): letters, digits, space and '()+,-./:=?
PRINTABLE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_PRINTABLE_RE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")

_ACTION = "E2SM-KPM-ActionDefinition"
_TRIGGER = "E2SM-KPM-EventTriggerDefinition"
_MESSAGE = "E2SM-KPM-IndicationMessage"
_HEADERS = {2: "E2SM-KPM-IndicationHeader-v2", 3: "E2SM-KPM-IndicationHeader"}
_HEADER_STRINGS = (  # (ASN.1 field, root upper size bound)
    ("fileFormatversion", 15),
    ("senderName", 400),
    ("senderType", 8),
    ("vendorName", 32),
)

Value = float | int | None


class KpmDecodeError(ValueError):
    """Bytes that are not a valid (or not a supported) E2SM-KPM structure; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class CellGlobalId:
    """An NR cell global identity: PLMN as 5 or 6 digits (MCC then MNC) and the 36-bit NR cell identity."""

    plmn: str
    nci: int

    def __post_init__(self) -> None:
        _check_plmn(self.plmn)
        if not 0 <= self.nci < 1 << 36:
            raise ValueError(f"NR cell identity {self.nci} does not fit 36 bits")


@dataclass(frozen=True, slots=True)
class ActionDefinition:
    """A decoded action definition format 1: what to measure, how often, in which cell."""

    measurements: tuple[str, ...]
    granularity_ms: int
    cell: CellGlobalId | None
    style: int


@dataclass(frozen=True, slots=True)
class KpmHeader:
    """A decoded indication header format 1."""

    collection_start_ms: int
    file_format_version: str | None = None
    sender_name: str | None = None
    sender_type: str | None = None
    vendor_name: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class KpmReport:
    """A decoded indication message: one value per measurement (NaN for noValue), aggregated to the cell.

    ``ues`` is the number of per-UE reports aggregated (format 3), 0 for a cell-level report (format 1).
    """

    names: tuple[str, ...] | None
    values: np.ndarray
    granularity_ms: int | None
    ues: int


@functools.cache
def _spec() -> Any:
    text = resources.files(__package__).joinpath("kpm.asn").read_text(encoding="utf-8")
    return asn1tools.compile_string(text, "per")


def _encode(type_name: str, value: Any) -> bytes:
    return bytes(_spec().encode(type_name, value))


def _decode(type_name: str, data: bytes) -> Any:
    try:
        return _spec().decode(type_name, bytes(data))
    except Exception as exc:  # asn1tools raises assorted types on malformed input
        raise KpmDecodeError(f"malformed {type_name}: {exc}") from exc


def _alternative(value: dict[str, Any], choice: str, expected: str, what: str) -> Any:
    """The content of CHOICE ``choice`` in ``value``, which must be alternative ``expected``."""
    kind, content = value[choice]
    if kind != expected:
        raise KpmDecodeError(f"{what} {kind or 'extension alternative'} is not supported (only {expected})")
    return content


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ValueError(f"E2SM-KPM version {version} is not supported (2 or 3)")


# ---------------------------------------------------------------------------------------------------------------
# PLMN identity (TBCD) and cell global identity
# ---------------------------------------------------------------------------------------------------------------


def _check_plmn(plmn: str) -> None:
    if not (plmn.isascii() and plmn.isdigit() and len(plmn) in (5, 6)):
        raise ValueError(f"PLMN {plmn!r} is not 5 or 6 digits (MCC + MNC)")


def encode_plmn(plmn: str) -> bytes:
    """The 3-octet PLMN identity of 3GPP TS 38.413: MCC and MNC digits as swapped nibbles, F filling a 2-digit MNC."""
    _check_plmn(plmn)
    d = [int(c) for c in plmn]
    mnc3 = d[5] if len(d) == 6 else 0xF
    return bytes(((d[1] << 4) | d[0], (mnc3 << 4) | d[2], (d[4] << 4) | d[3]))


def decode_plmn(raw: bytes) -> str:
    """The digits of a 3-octet TBCD PLMN identity; KpmDecodeError when a nibble is not a digit."""
    if len(raw) != 3:
        raise KpmDecodeError(f"PLMN identity of {len(raw)} octets, expected 3")
    nibbles = [raw[0] & 0xF, raw[0] >> 4, raw[1] & 0xF, raw[2] & 0xF, raw[2] >> 4, raw[1] >> 4]
    if nibbles[5] == 0xF:
        nibbles.pop()
    if any(n > 9 for n in nibbles):
        raise KpmDecodeError(f"PLMN identity {raw.hex()} is not TBCD digits")
    return "".join(map(str, nibbles))


def _cgi_value(cell: CellGlobalId) -> tuple[str, dict[str, Any]]:
    nci = ((cell.nci << 4).to_bytes(5, "big"), 36)
    return ("nR-CGI", {"pLMNIdentity": encode_plmn(cell.plmn), "nRCellIdentity": nci})


def _cgi_from(value: tuple[str, dict[str, Any]]) -> CellGlobalId:
    kind, cgi = value
    if kind != "nR-CGI":
        raise KpmDecodeError(f"cell global ID {kind or 'extension alternative'} is not supported (NR cells only)")
    bits, _ = cgi["nRCellIdentity"]
    return CellGlobalId(decode_plmn(cgi["pLMNIdentity"]), int.from_bytes(bits, "big") >> 4)


# ---------------------------------------------------------------------------------------------------------------
# Event trigger and action definition (RIC subscription)
# ---------------------------------------------------------------------------------------------------------------


def _uint32(name: str, value: int, low: int = 0) -> int:
    if not low <= value <= MAX_UINT32:
        raise ValueError(f"{name} {value} is outside {low}..{MAX_UINT32}")
    return value


def encode_event_trigger(period_ms: int) -> bytes:
    """Event trigger definition format 1: report every period_ms milliseconds."""
    fmt = {"reportingPeriod": _uint32("reporting period", period_ms, 1)}
    return _encode(_TRIGGER, {"eventDefinition-formats": ("eventDefinition-Format1", fmt)})


def decode_event_trigger(data: bytes) -> int:
    """The reporting period (ms) of an event trigger definition format 1."""
    fmt = _alternative(_decode(_TRIGGER, data), "eventDefinition-formats", "eventDefinition-Format1", "event trigger")
    return int(fmt["reportingPeriod"])


def _measurement_type(name: str | int) -> tuple[str, str | int]:
    if isinstance(name, str):
        if not 1 <= len(name) <= 150 or not _PRINTABLE_RE.fullmatch(name):
            raise ValueError(f"measurement name {name!r} is not a PrintableString of 1..150 characters")
        return ("measName", name)
    if not 1 <= name <= 65536:
        raise ValueError(f"measurement ID {name} is outside 1..65536")
    return ("measID", name)


def _info_list(names: Sequence[str | int]) -> list[dict[str, Any]]:
    no_label = [{"measLabel": {"noLabel": "true"}}]
    return [{"measType": _measurement_type(n), "labelInfoList": no_label} for n in names]


def encode_action_definition(
    measurements: Sequence[str], granularity_ms: int, cell: CellGlobalId | None, style: int = 1
) -> bytes:
    """Action definition format 1: measurements by name (no labels), granularity period, optional NR cell."""
    if not measurements:
        raise ValueError("an action definition needs at least one measurement")
    fmt: dict[str, Any] = {
        "measInfoList": _info_list(measurements),
        "granulPeriod": _uint32("granularity period", granularity_ms, 1),
    }
    if cell is not None:
        fmt["cellGlobalID"] = _cgi_value(cell)
    return _encode(_ACTION, {"ric-Style-Type": style, "actionDefinition-formats": ("actionDefinition-Format1", fmt)})


def decode_action_definition(data: bytes) -> ActionDefinition:
    """Decode an action definition format 1 whose measurements are named; other formats raise KpmDecodeError."""
    value = _decode(_ACTION, data)
    fmt = _alternative(value, "actionDefinition-formats", "actionDefinition-Format1", "action definition")
    names = []
    for item in fmt["measInfoList"]:
        how, name = item["measType"]
        if how != "measName":
            raise KpmDecodeError(f"measurement ID {name} in an action definition: only names are supported")
        names.append(name)
    cell = _cgi_from(fmt["cellGlobalID"]) if "cellGlobalID" in fmt else None
    return ActionDefinition(tuple(names), int(fmt["granulPeriod"]), cell, int(value["ric-Style-Type"]))


# ---------------------------------------------------------------------------------------------------------------
# Indication header
# ---------------------------------------------------------------------------------------------------------------


def current_ms() -> int:
    """The current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def encode_timestamp(collection_start_ms: int, version: int = 3) -> bytes:
    """The TimeStamp octets of a Unix time in ms: NTP seconds + fraction (v3, 8 octets) or NTP seconds (v2, 4)."""
    _check_version(version)
    seconds, ms = divmod(collection_start_ms, 1000)
    ntp = (seconds + NTP_UNIX_OFFSET_S) & MAX_UINT32
    if version == 2:
        return ntp.to_bytes(4, "big")
    return ntp.to_bytes(4, "big") + (((ms << 32) + 500) // 1000).to_bytes(4, "big")


def timestamp_ms(raw: bytes, version: int = 3, now_ms: int | None = None) -> int:
    """The Unix time in ms of a TimeStamp; KpmDecodeError when before 2000 or more than a day after ``now_ms``."""
    if len(raw) != (8 if version == 3 else 4):
        raise KpmDecodeError(f"TimeStamp of {len(raw)} octets for E2SM-KPM v{version}")
    seconds = int.from_bytes(raw[:4], "big")
    if seconds < 0x8000_0000:  # RFC 4330: NTP era 1 (2036-2104)
        seconds += 1 << 32
    ms = (seconds - NTP_UNIX_OFFSET_S) * 1000
    if version == 3:
        ms += (int.from_bytes(raw[4:], "big") * 1000 + (1 << 31)) >> 32
    if ms < EARLIEST_MS:
        raise KpmDecodeError(f"collection start time {_iso(ms)} is before 2000-01-01: not an NTP timestamp")
    now_ms = current_ms() if now_ms is None else now_ms
    if ms > now_ms + FUTURE_SLACK_MS:
        raise KpmDecodeError(f"collection start time {_iso(ms)} is more than a day after now ({_iso(now_ms)})")
    return ms


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def encode_indication_header(
    collection_start_ms: int,
    version: int = 3,
    sender_name: str | None = None,
    sender_type: str | None = None,
    vendor_name: str | None = None,
    file_format_version: str | None = None,
) -> bytes:
    """Indication header format 1. Empty strings are left out like None (implementations pad them differently)."""
    fmt: dict[str, Any] = {"colletStartTime": encode_timestamp(collection_start_ms, version)}
    given = (file_format_version, sender_name, sender_type, vendor_name)
    for (field, bound), text in zip(_HEADER_STRINGS, given, strict=True):
        if text:
            if len(text) > bound or not _PRINTABLE_RE.fullmatch(text):
                raise ValueError(f"{field} {text!r} is not a PrintableString of at most {bound} characters")
            fmt[field] = text
    return _encode(_HEADERS[version], {"indicationHeader-formats": ("indicationHeader-Format1", fmt)})


def decode_indication_header(data: bytes, version: int = 3, now_ms: int | None = None) -> KpmHeader:
    """Decode an indication header format 1, checking the collection start time (see ``timestamp_ms``)."""
    _check_version(version)
    value = _decode(_HEADERS[version], data)
    fmt = _alternative(value, "indicationHeader-formats", "indicationHeader-Format1", "indication header")
    return KpmHeader(
        timestamp_ms(fmt["colletStartTime"], version, now_ms),
        fmt.get("fileFormatversion"),
        fmt.get("senderName"),
        fmt.get("senderType"),
        fmt.get("vendorName"),
    )


# ---------------------------------------------------------------------------------------------------------------
# Indication message
# ---------------------------------------------------------------------------------------------------------------


def _record(value: Value) -> tuple[str, Any]:
    if value is None:
        return ("noValue", None)
    x = float(value)
    if math.isnan(x):
        return ("noValue", None)
    if x.is_integer() and 0 <= x <= MAX_UINT32:
        return ("integer", int(x))
    return ("real", x)


def _format1(
    names: Sequence[str | int] | None, periods: Iterable[Sequence[Value]], granularity_ms: int | None
) -> dict[str, Any]:
    data = [{"measRecord": [_record(v) for v in values]} for values in periods]
    for item in data:
        if not item["measRecord"]:
            raise ValueError("a measurement record needs at least one value")
        if names is not None and len(item["measRecord"]) != len(names):
            raise ValueError(f"{len(item['measRecord'])} values for {len(names)} measurements")
    fmt: dict[str, Any] = {"measData": data}
    if names is not None:
        fmt["measInfoList"] = _info_list(names)
    if granularity_ms is not None:
        fmt["granulPeriod"] = _uint32("granularity period", granularity_ms, 1)
    return fmt


def encode_indication_message_format1(
    names: Sequence[str | int] | None,
    values: Sequence[Value],
    granularity_ms: int | None,
    *,
    earlier_periods: Sequence[Sequence[Value]] = (),
) -> bytes:
    """Indication message format 1: the cell's values (None: noValue) named by measName (str) or measID (int).

    ``names`` None leaves measInfoList out; ``granularity_ms`` None leaves granulPeriod out. ``earlier_periods``
    are the values of earlier granularity periods of the same report, sent before ``values``.
    """
    fmt = _format1(names, [*earlier_periods, values], granularity_ms)
    return _encode(_MESSAGE, {"indicationMessage-formats": ("indicationMessage-Format1", fmt)})


def _gnb_ue_id(ue_id: int, plmn: bytes) -> tuple[str, dict[str, Any]]:
    if not 0 <= ue_id < 1 << 40:
        raise ValueError(f"UE ID {ue_id} is not an AMF UE NGAP ID (0..2^40-1)")
    guami = {
        "pLMNIdentity": plmn,
        "aMFRegionID": (b"\x01", 8),
        "aMFSetID": (b"\x00\x40", 10),
        "aMFPointer": (b"\x04", 6),
    }
    return ("gNB-UEID", {"amf-UE-NGAP-ID": ue_id, "guami": guami})


def encode_indication_message_format3(
    names: Sequence[str | int] | None,
    per_ue: Sequence[tuple[int, Sequence[Value]]],
    granularity_ms: int | None,
    *,
    plmn: str = "00101",
) -> bytes:
    """Indication message format 3: one format-1 report per UE, identified as a gNB UE (AMF UE NGAP ID, GUAMI)."""
    if not per_ue:
        raise ValueError("a format 3 message needs at least one UE")
    plmn_id = encode_plmn(plmn)
    reports = [
        {"ueID": _gnb_ue_id(ue, plmn_id), "measReport": _format1(names, [values], granularity_ms)}
        for ue, values in per_ue
    ]
    fmt = {"ueMeasReportList": reports}
    return _encode(_MESSAGE, {"indicationMessage-formats": ("indicationMessage-Format3", fmt)})


def aggregate(rows: np.ndarray, names: Sequence[str] | None, summed: frozenset[str]) -> np.ndarray:
    """Aggregate rows [n, K] to K values: sum for names in ``summed``, else mean; NaN ignored, all-NaN gives NaN."""
    present = ~np.isnan(rows)
    counts = present.sum(axis=0)
    sums = np.array([n in summed for n in names]) if names is not None else np.zeros(rows.shape[1], dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf is NaN; all-NaN columns are set below
        totals = np.where(present, rows, 0.0).sum(axis=0)
        out = np.where(sums, totals, totals / counts)
    out[counts == 0] = np.nan
    return out


def _record_value(item: tuple[str | None, Any]) -> float:
    kind, value = item
    if kind is None:
        raise KpmDecodeError("measurement record item is an unknown extension alternative")
    return math.nan if kind == "noValue" else float(value)


def _names_of(info: list[dict[str, Any]]) -> tuple[tuple[str, ...] | None, int]:
    """The names of a measInfoList (one per label; None if any is a measID) and its number of values."""
    names: list[str] = []
    by_id = False
    for item in info:
        how, name = item["measType"]
        by_id |= how != "measName"
        names.extend([str(name)] * len(item["labelInfoList"]))
    return (None if by_id else tuple(names)), len(names)


def _report1(fmt: dict[str, Any]) -> KpmReport:
    """A format-1 report, its measData items (granularity periods) aggregated."""
    names: tuple[str, ...] | None = None
    width = None
    if "measInfoList" in fmt:
        names, width = _names_of(fmt["measInfoList"])
    rows = [[_record_value(r) for r in item["measRecord"]] for item in fmt["measData"]]
    for row in rows:
        width = len(row) if width is None else width
        if not row or len(row) != width:
            raise KpmDecodeError(f"a measurement record has {len(row)} values, expected {width}")
    table = np.array(rows, dtype=np.float64)
    values = table[0] if len(rows) == 1 else aggregate(table, names, SUMMED_OVER_PERIODS)
    period = fmt.get("granulPeriod")
    return KpmReport(names, values, None if period is None else int(period), 0)


def _occurrences(names: Sequence[str]) -> list[tuple[str, int]]:
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        keys.append((name, k))
    return keys


def _report3(fmt: dict[str, Any]) -> KpmReport:
    """Per-UE reports aggregated to the cell (see the module docstring)."""
    reports = [_report1(item["measReport"]) for item in fmt["ueMeasReportList"]]
    granularity = next((r.granularity_ms for r in reports if r.granularity_ms is not None), None)
    named = [r.names for r in reports if r.names is not None]
    if len(named) == len(reports):
        # A name repeats when a measurement has several labels: its k-th occurrence is its k-th label.
        keyed = [_occurrences(names) for names in named]
        column = {key: j for j, key in enumerate(dict.fromkeys(key for keys in keyed for key in keys))}
        table = np.full((len(reports), len(column)), np.nan)
        for i, (keys, r) in enumerate(zip(keyed, reports, strict=True)):
            table[i, [column[key] for key in keys]] = r.values
        order = tuple(name for name, _ in column)
        return KpmReport(order, aggregate(table, order, SUMMED_OVER_UES), granularity, len(reports))
    widths = {r.values.size for r in reports}
    if len(widths) != 1:
        raise KpmDecodeError(f"unnamed per-UE reports of different lengths {sorted(widths)}")
    table = np.stack([r.values for r in reports])
    return KpmReport(None, aggregate(table, None, SUMMED_OVER_UES), granularity, len(reports))


def decode_indication_message(data: bytes) -> KpmReport:
    """Decode an indication message format 1 (cell) or 3 (per UE, aggregated); format 2 raises KpmDecodeError."""
    kind, fmt = _decode(_MESSAGE, data)["indicationMessage-formats"]
    if kind == "indicationMessage-Format1":
        return _report1(fmt)
    if kind == "indicationMessage-Format3":
        return _report3(fmt)
    raise KpmDecodeError(f"indication message {kind or 'extension alternative'} is not supported (formats 1 and 3)")
