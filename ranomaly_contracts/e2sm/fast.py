"""RICindication decoding: a hand-written aligned-PER fast path, the library path it is checked against, and both.

``decode_fast`` reads the bytes of the common case directly: the E2AP-PDU initiatingMessage RICindication
(procedure code 5; IEs 29, 5, 15, 27, 28, 25, 26, 20 in any order; an unknown IE is skipped when its criticality
is ignore or notify, rejects the message when it is reject), the E2SM-KPM indication header format 1 (v2 or v3
timestamp) and the indication message format 1 (integer, real and noValue records; measInfoList by measName or
measID with the noLabel label or none; granulPeriod; several granularity periods, aggregated as ``kpm`` states).

Fragmented E2AP fields (16K octets or more) are reassembled. Whatever else it meets (a set extension bit
anywhere, message formats 2 and 3, fragmented KPM lists, several labels or other labels per measurement,
decimal REALs) raises ``FastPathMiss``: ``decode`` then falls back to the library path (pycrate for E2AP,
asn1tools for E2SM-KPM), the reference, for the layer that missed. Malformed bytes raise ``E2apDecodeError``
(envelope) or ``KpmDecodeError`` (header, message): ``DECODE_ERRORS`` are the only exceptions ``decode`` raises
for any input.

Where asn1tools is laxer or narrower than X.690 for REAL, the fast path follows X.690 8.5: binary REALs of any
base (2, 8, 16), scale factor and exponent length decode, and a special value must be a single octet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ranomaly_contracts.e2sm import e2ap, kpm
from ranomaly_contracts.e2sm.e2ap import E2apDecodeError
from ranomaly_contracts.e2sm.kpm import KpmDecodeError

DECODE_ERRORS = (E2apDecodeError, KpmDecodeError)

_PAD = bytes(16)  # appended to the payload so bit reads near its end need no bounds check
_NAMES: dict[bytes, str] = {}  # measurement names seen, validated
_NAMES_MAX = 4096
_PRINTABLE = bytes(sorted(kpm.PRINTABLE))
_BASE_BITS = (1, 3, 4)  # log2 of the REAL bases 2, 8, 16
_NAN = math.nan
_SPECIAL_REALS = {0x40: math.inf, 0x41: -math.inf, 0x42: math.nan, 0x43: -0.0}


class FastPathMiss(Exception):
    """The payload uses a feature the fast path does not decode; the library path does."""


@dataclass(frozen=True, slots=True, eq=False)
class FastIndication:
    """A decoded RICindication carrying an E2SM-KPM report: the cell's values, NaN for noValue.

    ``names`` is None when the message does not name every measurement (see ``kpm``); ``ues`` is the number of
    per-UE reports aggregated (format 3), 0 for a cell report (format 1).
    """

    requestor_id: int
    instance_id: int
    ran_function_id: int
    action_id: int
    sequence: int | None
    indication_type: e2ap.IndicationType
    collection_start_ms: int
    granularity_ms: int | None
    names: tuple[str, ...] | None
    values: np.ndarray
    ues: int = 0


# An octet span: (buffer, first octet, octet after the last); the buffer is padded past the span.
_Span = tuple[bytes, int, int]


def decode(payload: bytes, version: int = 3, now_ms: int | None = None) -> FastIndication:
    """Decode a RICindication: the fast path, and the library path for what it misses, layer by layer.

    A miss in the E2AP envelope (an extension) decodes the whole payload with ``decode_library``; a miss in the
    indication header or message decodes that part alone with ``kpm``. Payloads of 16K octets or more, which the
    fast path reassembles and pycrate cannot decode, therefore still decode.
    """
    return _decode(payload, version, now_ms, fallback=True)


def decode_fast(payload: bytes, version: int = 3, now_ms: int | None = None) -> FastIndication:
    """Decode the common RICindication directly from its bytes; FastPathMiss for anything else (module docstring).

    ``now_ms`` (Unix ms, default the current time) bounds the collection start time as ``kpm.timestamp_ms`` does.
    """
    return _decode(payload, version, now_ms, fallback=False)


def decode_library(payload: bytes, version: int = 3, now_ms: int | None = None) -> FastIndication:
    """Decode a RICindication with pycrate (E2AP) and asn1tools (E2SM-KPM): the reference for the fast path.

    pycrate does not decode nested fragmented open types: RICindications of 16K octets or more are rejected.
    """
    ind = e2ap.decode_ric_indication(payload)
    header = kpm.decode_indication_header(ind.header, version, now_ms)
    report = kpm.decode_indication_message(ind.message)
    return FastIndication(
        ind.requestor_id,
        ind.instance_id,
        ind.ran_function_id,
        ind.action_id,
        ind.sequence,
        ind.indication_type,
        header.collection_start_ms,
        report.granularity_ms,
        report.names,
        report.values,
        report.ues,
    )


def _decode(payload: bytes, version: int, now_ms: int | None, fallback: bool) -> FastIndication:
    if version not in kpm.VERSIONS:
        raise ValueError(f"E2SM-KPM version {version} is not supported (2 or 3)")
    d = bytes(payload) + _PAD
    try:
        requestor, instance, function, action, sequence, kind, header, message = _envelope(d, len(payload))
    except FastPathMiss:
        if not fallback:
            raise
        return decode_library(payload, version, now_ms)
    report = _kpm(header, message, version, now_ms, fallback)
    return FastIndication(requestor, instance, function, action, sequence, kind, *report)


@dataclass(frozen=True, slots=True, eq=False)
class KpmValues:
    """An E2SM-KPM indication header and message decoded: when, how long, which measurements, what values."""

    collection_start_ms: int
    granularity_ms: int | None
    names: tuple[str, ...] | None
    values: np.ndarray
    ues: int = 0


def decode_kpm(header: bytes, message: bytes, version: int = 3, now_ms: int | None = None) -> KpmValues:
    """Decode an E2SM-KPM header and message as an E2 termination forwards them (no E2AP): fast, library for misses.

    Raises only ``KpmDecodeError``.
    """
    if version not in kpm.VERSIONS:
        raise ValueError(f"E2SM-KPM version {version} is not supported (2 or 3)")
    spans = (bytes(header) + _PAD, 0, len(header)), (bytes(message) + _PAD, 0, len(message))
    return KpmValues(*_kpm(*spans, version, now_ms, fallback=True))


def _kpm(
    header: _Span, message: _Span, version: int, now_ms: int | None, fallback: bool
) -> tuple[int, int | None, tuple[str, ...] | None, np.ndarray, int]:
    """(collection start, granularity, names, values, UEs) of a header and a message span."""
    hd, h0, h1 = header
    try:
        start = _header(hd, h0, h1, version, now_ms)
    except FastPathMiss:
        if not fallback:
            raise
        start = kpm.decode_indication_header(hd[h0:h1], version, now_ms).collection_start_ms
    md, m0, m1 = message
    ues = 0
    try:
        names, values, granularity = _message(md, m0, m1)
    except FastPathMiss:
        if not fallback:
            raise
        report = kpm.decode_indication_message(md[m0:m1])
        names, values, granularity, ues = report.names, report.values, report.granularity_ms, report.ues
    return start, granularity, names, values, ues


def _truncated(what: str) -> E2apDecodeError:
    return E2apDecodeError(f"E2AP-PDU truncated in {what}")


def _field(d: bytes, i: int, end: int, what: str) -> tuple[bytes, int, int, int]:
    """The octets after the length determinant at octet i < end, fragments reassembled: (buffer, start, stop, next)."""
    c = d[i]
    if c < 0x80:
        start, stop = i + 1, i + 1 + c
    elif c < 0xC0:
        start = i + 2
        stop = start + (((c & 0x3F) << 8) | d[i + 1])
    else:
        return _fragments(d, i, end, what)
    if stop > end:
        raise _truncated(what)
    return d, start, stop, stop


def _fragments(d: bytes, i: int, end: int, what: str) -> tuple[bytes, int, int, int]:
    """A fragmented field (X.691 11.9.3.8): blocks of 16K, 32K, 48K or 64K octets, then a final shorter part."""
    parts = []
    while True:
        if i >= end:
            raise _truncated(what)
        c = d[i]
        if c >= 0xC0:
            blocks = c & 0x3F
            if not 1 <= blocks <= 4:
                raise E2apDecodeError(f"fragment of {blocks} x 16K octets in {what}")
            size, i = blocks << 14, i + 1
        elif c >= 0x80:
            size, i = ((c & 0x3F) << 8) | d[i + 1], i + 2
        else:
            size, i = c, i + 1
        if i + size > end:
            raise _truncated(what)
        parts.append(d[i : i + size])
        i += size
        if c < 0xC0:
            whole = b"".join(parts)
            return whole + _PAD, 0, len(whole), i


def _envelope(d: bytes, n: int) -> tuple[int, int, int, int, int | None, e2ap.IndicationType, _Span, _Span]:
    """The RICindication IEs: ids, SN, type, and the octet spans of the indication header and message."""
    if n < 4:
        raise _truncated("the initiatingMessage")
    b = d[0]
    if b & 0xE0:  # an extension alternative or an outcome: a RICindication is a root initiatingMessage
        raise E2apDecodeError(f"E2AP-PDU choice 0x{b >> 5:x} is not a RICindication (an initiatingMessage)")
    if d[1] != e2ap.PROCEDURE_RIC_INDICATION:
        raise E2apDecodeError(f"E2AP procedure code {d[1]} is not RICindication (5)")
    if d[2] >= 0xC0:
        raise E2apDecodeError("E2AP criticality 3 does not exist")
    body, i, end, _ = _field(d, 3, n, "the RICindication")
    if i + 3 > end:
        raise _truncated("the RICindication")
    if body[i] & 0x80:
        raise FastPathMiss("RICindication extension")
    count = (body[i + 1] << 8) | body[i + 2]
    i += 3
    seen = 0
    requestor = instance = function = action = 0
    sequence: int | None = None
    kind: e2ap.IndicationType = "report"
    header = message = (b"", 0, 0)
    for _ in range(count):
        if i + 4 > end:
            raise _truncated("the protocol IEs")
        ie = (body[i] << 8) | body[i + 1]
        critical = body[i + 2] >> 6
        if critical == 3:
            raise E2apDecodeError(f"protocol IE {ie} has criticality 3, which does not exist")
        v, v0, v1, i = _field(body, i + 3, end, f"protocol IE {ie}")
        if ie < 32:
            bit = 1 << ie
            if seen & bit and bit & _KNOWN:
                raise E2apDecodeError(f"RICindication repeats protocol IE {ie}")
            seen |= bit
        if ie in _OCTET_STRING_IES:
            if v0 >= v1:
                raise _truncated(f"protocol IE {ie}")
            s, s0, s1, _ = _field(v, v0, v1, f"protocol IE {ie}")
            if ie == e2ap.IE_MESSAGE:
                message = (s, s0, s1)
            elif ie == e2ap.IE_HEADER:
                header = (s, s0, s1)
        elif ie == e2ap.IE_REQUEST_ID:
            if v0 + 5 > v1:
                raise _truncated("the RIC request ID")
            if v[v0] & 0x80:
                raise FastPathMiss("RIC request ID extension")
            requestor = (v[v0 + 1] << 8) | v[v0 + 2]
            instance = (v[v0 + 3] << 8) | v[v0 + 4]
        elif ie == e2ap.IE_RAN_FUNCTION_ID:
            if v0 + 2 > v1:
                raise _truncated("the RAN function ID")
            function = (v[v0] << 8) | v[v0 + 1]
            if function > 4095:
                raise E2apDecodeError(f"RAN function ID {function} is outside 0..4095")
        elif ie == e2ap.IE_ACTION_ID:
            if v0 + 1 > v1:
                raise _truncated("the RIC action ID")
            action = v[v0]
        elif ie == e2ap.IE_SEQUENCE:
            if v0 + 2 > v1:
                raise _truncated("the RIC indication SN")
            sequence = (v[v0] << 8) | v[v0 + 1]
        elif ie == e2ap.IE_TYPE:
            if v0 + 1 > v1:
                raise _truncated("the RIC indication type")
            if v[v0] & 0x80:
                raise FastPathMiss("RIC indication type extension")
            kind = e2ap.INDICATION_TYPES[(v[v0] >> 6) & 1]
        elif critical == 0:
            raise E2apDecodeError(f"RICindication carries unknown protocol IE {ie} with criticality reject")
    if seen & _MANDATORY != _MANDATORY:
        missing = [ie for ie in sorted(e2ap.MANDATORY_IES) if not seen & (1 << ie)]
        raise E2apDecodeError(f"RICindication lacks mandatory protocol IEs {missing}")
    return requestor, instance, function, action, sequence, kind, header, message


_MANDATORY = sum(1 << ie for ie in e2ap.MANDATORY_IES)
_KNOWN = sum(1 << ie for ie in e2ap.KNOWN_IES)
_OCTET_STRING_IES = frozenset({e2ap.IE_HEADER, e2ap.IE_MESSAGE, e2ap.IE_CALL_PROCESS_ID})
# The header's optional PrintableStrings: (length field bits, 16 meaning two octets aligned; root size bound).
_HEADER_STRINGS = ((4, 15), (16, 400), (4, 8), (6, 32))


def _bits(d: bytes, p: int, k: int) -> int:
    """The k <= 16 bits at bit position p."""
    i = p >> 3
    return ((((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]) << (p & 7)) >> (24 - k)) & ((1 << k) - 1)


def _header(d: bytes, i: int, end: int, version: int, now_ms: int | None) -> int:
    """The collection start time (Unix ms) of an indication header format 1 in octets i..end."""
    if i >= end:
        raise KpmDecodeError("empty indication header")
    b = d[i]
    if b & 0xE0:
        raise FastPathMiss("indication header extension")
    present = (b >> 1) & 0xF
    t0 = i + 1
    t1 = t0 + (8 if version == 3 else 4)
    p, limit = t1 << 3, end << 3
    if p > limit:
        raise KpmDecodeError("indication header truncated in the collection start time")
    for k, (bits, bound) in enumerate(_HEADER_STRINGS):
        if not present & (8 >> k):
            continue
        if p >= limit:
            raise KpmDecodeError("indication header truncated in its strings")
        if _bits(d, p, 1):
            raise FastPathMiss("indication header string beyond its size bound")
        if bits == 16:
            j = (p + 8) >> 3
            length = (d[j] << 8) | d[j + 1]
            p = (j + 2) << 3
        else:
            length = _bits(d, p + 1, bits)
            p += 1 + bits
        if length > bound:
            raise KpmDecodeError(f"indication header string of {length} characters, more than {bound}")
        if length:
            j = (p + 7) >> 3
            p = (j + length) << 3
            if p <= limit and d[j : j + length].translate(None, _PRINTABLE):
                raise KpmDecodeError("indication header string is not a PrintableString")
        if p > limit:
            raise KpmDecodeError("indication header truncated in its strings")
    return kpm.timestamp_ms(d[t0:t1], version, now_ms)


def _name(raw: bytes) -> str:
    """A measurement name, validated once and cached."""
    if raw.translate(None, _PRINTABLE):
        raise KpmDecodeError(f"measurement name {raw!r} is not a PrintableString")
    name = raw.decode("ascii")
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[raw] = name
    return name


def _real(raw: bytes) -> float:
    """A REAL's contents octets (X.690 8.5): binary or special; decimal forms are left to the library path."""
    if not raw:
        return 0.0
    c = raw[0]
    if c & 0x80:
        base = (c >> 4) & 3
        if base == 3:
            raise KpmDecodeError("REAL base indicator 3 is reserved")
        form = c & 3
        if form == 3:
            if len(raw) < 2 or raw[1] == 0:
                raise KpmDecodeError("REAL exponent length octet missing or zero")
            e0, e1 = 2, 2 + raw[1]
        else:
            e0, e1 = 1, 2 + form
        if len(raw) <= e1:
            raise KpmDecodeError("REAL truncated before its mantissa")
        exponent = int.from_bytes(raw[e0:e1], "big", signed=True)
        mantissa = int.from_bytes(raw[e1:], "big")
        try:
            value = math.ldexp(mantissa, ((c >> 2) & 3) + exponent * _BASE_BITS[base])
        except OverflowError:
            raise KpmDecodeError("REAL out of the float64 range") from None
        return -value if c & 0x40 else value
    if c & 0x40:
        if len(raw) != 1 or c not in _SPECIAL_REALS:
            raise KpmDecodeError(f"REAL special value 0x{raw.hex()} does not exist")
        return _SPECIAL_REALS[c]
    raise FastPathMiss("decimal REAL")


def _message(d: bytes, i: int, end: int) -> tuple[tuple[str, ...] | None, np.ndarray, int | None]:
    """Names, values and granularity period of an indication message format 1 in octets i..end."""
    if i + 3 > end:
        raise KpmDecodeError("indication message truncated")
    b = d[i]
    if b & 0xF0:
        raise FastPathMiss("indication message format 2 or 3, or an extension")
    limit = end << 3
    rows: list[list[float]] = []
    p = (i + 3) << 3
    for _ in range(((d[i + 1] << 8) | d[i + 2]) + 1):  # measData items, one per granularity period
        if p >= limit:
            raise KpmDecodeError("indication message truncated in its measurement data")
        flags = _bits(d, p, 2)  # item extension, incompleteFlag present (its value follows the record)
        if flags & 2:
            raise FastPathMiss("measurement data item extension")
        j = (p + 9) >> 3
        c = d[j]
        if c < 0x80:
            count, j = c, j + 1
        elif c < 0xC0:
            count, j = ((c & 0x3F) << 8) | d[j + 1], j + 2
        else:
            raise FastPathMiss("fragmented measurement record")
        if not count:
            raise KpmDecodeError("empty measurement record")
        p = j << 3
        row: list[float] = []
        append = row.append
        for _ in range(count):
            if p >= limit:
                raise KpmDecodeError("indication message truncated in a measurement record")
            j = p >> 3
            h = ((((d[j] << 8) | d[j + 1]) << (p & 7)) >> 11) & 0x1F  # extension, choice (2), length (2)
            t = h >> 2
            if t == 0:  # integer INTEGER (0..4294967295): octet count - 1, then aligned octets
                j = (p + 12) >> 3
                size = (h & 3) + 1
                if size == 1:
                    append(d[j])
                elif size == 2:
                    append((d[j] << 8) | d[j + 1])
                else:
                    append(int.from_bytes(d[j : j + size], "big"))
                p = (j + size) << 3
            elif t == 2:  # noValue NULL
                append(_NAN)
                p += 3
            elif t == 1:  # real REAL: length determinant, then the contents octets
                j = (p + 10) >> 3
                c = d[j]
                if c < 0x80:
                    size, j = c, j + 1
                elif c < 0xC0:
                    size, j = ((c & 0x3F) << 8) | d[j + 1], j + 2
                else:
                    raise FastPathMiss("fragmented REAL")
                p = (j + size) << 3
                if p > limit:
                    raise KpmDecodeError("indication message truncated in a REAL")
                append(_real(d[j : j + size]))
            elif t == 3:
                raise KpmDecodeError("measurement record choice 3 does not exist")
            else:
                raise FastPathMiss("measurement record extension alternative")
        if flags & 1:  # incompleteFlag ENUMERATED {true, ...}: its extension bit alone
            if p >= limit:
                raise KpmDecodeError("indication message truncated in an incompleteFlag")
            if _bits(d, p, 1):
                raise FastPathMiss("incompleteFlag extension value")
            p += 1
        if p > limit:
            raise KpmDecodeError("indication message truncated in a measurement record")
        rows.append(row)
    names: list[str] = []
    width = len(rows[0])
    by_id = False
    if b & 0x08:  # measInfoList
        j = (p + 7) >> 3
        if j + 2 > end:
            raise KpmDecodeError("indication message truncated in its measurement info list")
        p = (j + 2) << 3
        width = ((d[j] << 8) | d[j + 1]) + 1
        for _ in range(width):
            if p >= limit:
                raise KpmDecodeError("indication message truncated in its measurement info list")
            h = _bits(d, p, 12)  # item extension, type extension, type choice, then the type's first 9 bits
            if h & 0xC00:
                raise FastPathMiss("measurement info extension")
            if h & 0x100:
                raise FastPathMiss("measurement name or ID beyond its bound")
            if h & 0x200:  # measID INTEGER (1..65536, ...): two aligned octets
                by_id = True
                p = (((p + 11) >> 3) + 2) << 3
            else:  # measName PrintableString (SIZE(1..150, ...)): length - 1 in 8 bits, aligned characters
                j = (p + 19) >> 3
                p = (j + (h & 0xFF) + 1) << 3
                if p > limit:
                    raise KpmDecodeError("indication message truncated in a measurement name")
                raw = d[j : (p >> 3)]
                names.append(_NAMES.get(raw) or _name(raw))
            j = (p + 7) >> 3
            if d[j] != 1:
                raise FastPathMiss("not exactly one label for a measurement")
            j += 1
            if j >= end:
                raise KpmDecodeError("indication message truncated in a measurement label")
            # Item extension, label extension, 21 presence bits (noLabel first), noLabel's extension bit.
            label = (d[j] << 16) | (d[j + 1] << 8) | d[j + 2]
            if label == 0x200000:  # noLabel alone
                p = (j + 3) << 3
            elif label >> 1 == 0:  # no label field at all
                p = (j << 3) + 23
            else:
                raise FastPathMiss("measurement label other than noLabel")
        if p > limit:
            raise KpmDecodeError("indication message truncated in its measurement info list")
    granularity = None
    if b & 0x04:  # granulPeriod INTEGER (1..4294967295): octet count - 1 in 2 bits, aligned octets
        if p >= limit:
            raise KpmDecodeError("indication message truncated in its granularity period")
        j = (p + 9) >> 3
        size = _bits(d, p, 2) + 1
        granularity = int.from_bytes(d[j : j + size], "big") + 1
        p = (j + size) << 3
        if p > limit:
            raise KpmDecodeError("indication message truncated in its granularity period")
    for row in rows:
        if len(row) != width:
            raise KpmDecodeError(f"a measurement record has {len(row)} values, expected {width}")
    keys = tuple(names) if b & 0x08 and not by_id else None
    if len(rows) == 1:
        return keys, np.array(rows[0], dtype=np.float64), granularity
    return keys, kpm.aggregate(np.array(rows, dtype=np.float64), keys, kpm.SUMMED_OVER_PERIODS), granularity
