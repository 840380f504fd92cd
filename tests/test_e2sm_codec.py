"""The O-RAN E2 codec: E2SM-KPM structures, the E2AP RICindication, and the fast path against the library path."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from e2sim.catalogue import MEASUREMENT_NAMES
from ranomaly_contracts.e2sm import e2ap, fast, kpm, samples
from ranomaly_contracts.e2sm.e2ap import E2apDecodeError, RicIndication
from ranomaly_contracts.e2sm.fast import DECODE_ERRORS, FastIndication, FastPathMiss
from ranomaly_contracts.e2sm.kpm import CellGlobalId, KpmDecodeError

NOW = 1_750_000_000_000  # a fixed "now" (2025-06-15T15:06:40Z) for every timestamp check
NTP_1970 = 2_208_988_800  # NTP seconds at the Unix epoch


def _len(octets: bytes) -> bytes:
    """An aligned-PER length determinant (< 16K) followed by the octets."""
    n = len(octets)
    return (bytes([n]) if n < 128 else struct.pack(">H", 0x8000 | n)) + octets


def _ie(ie_id: int, value: bytes, criticality: int = 0) -> bytes:
    """A ProtocolIE-Field: id (2 octets), criticality (2 bits, padded), the value as an open type."""
    return struct.pack(">HB", ie_id, criticality << 6) + _len(value)


def _envelope(ies: list[bytes], procedure: int = 5) -> bytes:
    """E2AP-PDU initiatingMessage: choice bits + pad, procedureCode, criticality ignore, RICindication open type.

    RICindication: extension bit + pad, then the IE count (SIZE(0..65535): two aligned octets) and the IEs.
    """
    body = b"\x00" + struct.pack(">H", len(ies)) + b"".join(ies)
    return bytes([0x00, procedure, 0x40]) + _len(body)


def _standard_ies(header: bytes, message: bytes) -> list[bytes]:
    return [
        _ie(29, b"\x00" + struct.pack(">HH", 1027, 3)),  # RICrequestID: extension bit + pad, two 16-bit IDs
        _ie(5, struct.pack(">H", 2)),  # RANfunctionID (0..4095): two aligned octets
        _ie(15, b"\x01"),  # RICactionID (0..255): one octet
        _ie(27, struct.pack(">H", 77)),  # RICindicationSN (0..65535): two octets
        _ie(28, b"\x00"),  # RICindicationType: extension bit 0, index 0 (report)
        _ie(25, _len(header)),  # RICindicationHeader: OCTET STRING inside the open type
        _ie(26, _len(message)),
    ]


def _header(ms: int = NOW - 60_000, version: int = 3) -> bytes:
    return kpm.encode_indication_header(ms, version)


def _real_message(contents: bytes) -> bytes:
    """A format-1 message with one real record, by hand: no measInfoList, no granulPeriod.

    00: message/choice/format extension bits, index 0, both optional fields absent; 00 00: one measData item;
    00 01: item extension and incompleteFlag bits + pad, one record; 20: record extension 0, choice 01 (real) + pad;
    then the REAL's length and contents octets.
    """
    return b"\x00\x00\x00\x00\x01\x20" + _len(contents)


def _same(a: FastIndication, b: FastIndication) -> bool:
    fields = ["requestor_id", "instance_id", "ran_function_id", "action_id", "sequence", "indication_type"]
    fields += ["collection_start_ms", "granularity_ms", "names", "ues"]
    same = all(getattr(a, f) == getattr(b, f) for f in fields)
    return same and np.array_equal(a.values, b.values, equal_nan=True) and a.values.dtype == np.float64


# ---------------------------------------------------------------------------------------------------------------
# E2SM-KPM: known bytes derived by hand from X.691 (aligned PER)
# ---------------------------------------------------------------------------------------------------------------


def test_event_trigger_known_bytes_and_round_trip() -> None:
    # Extension bits of the SEQUENCE, the CHOICE (one root alternative: no index bits) and Format1: 000.
    # reportingPeriod INTEGER (1..2^32-1): 1000-1 = 0x03E7 in 2 octets, "octets - 1" = 01 in 2 bits, then aligned.
    assert kpm.encode_event_trigger(1000) == b"\x08\x03\xe7"
    for period in (1, 10, 1000, 60_000, 2**32 - 1):
        assert kpm.decode_event_trigger(kpm.encode_event_trigger(period)) == period
    with pytest.raises(ValueError, match="reporting period"):
        kpm.encode_event_trigger(0)


def _action_item(name: str) -> bytes:
    # Item, MeasurementType and size extension bits 0, choice 0 (measName), 8-bit length - 1, 4 pad bits; the
    # characters; labelInfoList count 1 (ub >= 64K: plain length octet); LabelInfoItem and MeasurementLabel
    # extension bits 0, 21 presence bits with only noLabel set, noLabel's extension bit 0: 20 00 00.
    n = len(name) - 1
    return bytes([n >> 4, (n & 0xF) << 4]) + name.encode() + b"\x01\x20\x00\x00"


def test_action_definition_known_bytes() -> None:
    # The same layout as an asn1c-encoded action definition format 1 with an NR CGI seen in the O-RAN ecosystem.
    expected = (
        b"\x00"  # SEQUENCE extension bit + pad (ric-Style-Type is an unconstrained INTEGER: aligned)
        b"\x01\x01"  # ric-Style-Type: length 1, value 1
        b"\x08"  # CHOICE extension 0, index 00 of 3 root formats, Format1 extension 0, cellGlobalID present, pad
        b"\x00\x01"  # measInfoList SIZE(1..65535): 2 - 1 in two aligned octets
        + _action_item("DRB.UEThpDl")
        + _action_item("RRU.PrbUsedDl")
        + b"\x40\x03\xe7"  # granulPeriod 1000: "octets - 1" = 01, pad, 0x03E7
        b"\x00"  # CGI extension 0, index 0 (nR-CGI), NR-CGI extension 0, pad (the PLMN is 3 octets: aligned)
        b"\x00\xf1\x10"  # PLMN 001-01 in TBCD: (0,0), (F filler, 1), (1, 0) as high/low nibbles
        b"\x12\x34\x56\x00\x10"  # NR cell identity 0x123456001: 36 bits, aligned, 4 trailing pad bits
    )
    cell = CellGlobalId("00101", 0x1_2345_6001)
    encoded = kpm.encode_action_definition(["DRB.UEThpDl", "RRU.PrbUsedDl"], 1000, cell)
    assert encoded == expected
    decoded = kpm.decode_action_definition(expected)
    assert decoded == kpm.ActionDefinition(("DRB.UEThpDl", "RRU.PrbUsedDl"), 1000, cell, 1)


def test_action_definition_round_trips_and_rejections() -> None:
    names = tuple(MEASUREMENT_NAMES)
    for cell in (None, CellGlobalId("310410", 0), CellGlobalId("99999", (1 << 36) - 1)):
        for style in (1, 4, 255):
            encoded = kpm.encode_action_definition(names, 250, cell, style)
            assert kpm.decode_action_definition(encoded) == kpm.ActionDefinition(names, 250, cell, style)
    # An E-UTRA CGI (CGI choice index 1: bits 0 1 0 + pad, PLMN, 28-bit cell identity aligned) is refused.
    eutra = (
        b"\x00\x01\x01\x08\x00\x00" + _action_item("RRU.PrbUsedDl") + b"\x40\x03\xe7\x40\x00\xf1\x10\x12\x34\x56\x70"
    )
    with pytest.raises(KpmDecodeError, match="eUTRA-CGI"):
        kpm.decode_action_definition(eutra)
    with pytest.raises(ValueError, match="PrintableString"):
        kpm.encode_action_definition(["bad*name"], 1000, None)
    with pytest.raises(ValueError, match="at least one"):
        kpm.encode_action_definition([], 1000, None)
    with pytest.raises(KpmDecodeError):
        kpm.decode_action_definition(b"\x00\x01")


def test_plmn_tbcd() -> None:
    assert kpm.encode_plmn("00101") == b"\x00\xf1\x10"
    assert kpm.encode_plmn("310410") == b"\x13\x00\x14"
    assert kpm.encode_plmn("20801") == b"\x02\xf8\x10"
    for plmn in ("00101", "310410", "99999", "123456"):
        assert kpm.decode_plmn(kpm.encode_plmn(plmn)) == plmn
    with pytest.raises(KpmDecodeError, match="TBCD"):
        kpm.decode_plmn(b"\x00\x1f\x01")
    with pytest.raises(ValueError, match="5 or 6 digits"):
        CellGlobalId("0010", 1)
    with pytest.raises(ValueError, match="36 bits"):
        CellGlobalId("00101", 1 << 36)


def test_indication_header_known_bytes_v3_and_v2() -> None:
    ms = 1_700_000_000_250
    seconds = 1_700_000_000 + NTP_1970
    # 08: header, CHOICE and Format1 extension bits 0, presence bits 0100 (senderName), pad. TimeStamp: fixed-size
    # OCTET STRING > 2 octets: aligned, no length. senderName (SIZE(0..400)): extension bit + pad, the length
    # in two aligned octets (range 401 > 256), the characters.
    tail = b"\x00\x00\x05gNB-1"
    v3 = b"\x08" + struct.pack(">II", seconds, 1 << 30) + tail  # 0.250 s = 2^30 / 2^32
    v2 = b"\x08" + struct.pack(">I", seconds) + tail
    assert kpm.encode_indication_header(ms, 3, sender_name="gNB-1") == v3
    assert kpm.encode_indication_header(ms, 2, sender_name="gNB-1") == v2
    assert kpm.decode_indication_header(v3, 3, NOW) == kpm.KpmHeader(ms, sender_name="gNB-1")
    assert kpm.decode_indication_header(v2, 2, NOW) == kpm.KpmHeader(ms - 250, sender_name="gNB-1")


def test_indication_header_round_trips() -> None:
    strings = {
        "sender_name": "du-7 (cell 3)",
        "sender_type": "gNB-DU",
        "vendor_name": "RANomaly",
        "file_format_version": "3.0",
    }
    for version in (2, 3):
        for ms in (NOW, NOW - 1, 946_684_800_000, NOW + 3_600_000):
            encoded = kpm.encode_indication_header(ms, version, **strings)
            header = kpm.decode_indication_header(encoded, version, NOW)
            assert header.collection_start_ms == (ms if version == 3 else ms - ms % 1000)
            assert (header.sender_name, header.sender_type) == ("du-7 (cell 3)", "gNB-DU")
            assert (header.vendor_name, header.file_format_version) == ("RANomaly", "3.0")
        bare = kpm.decode_indication_header(kpm.encode_indication_header(NOW, version, sender_name=""), version, NOW)
        assert bare == kpm.KpmHeader(NOW)
    with pytest.raises(ValueError, match="at most 8"):
        kpm.encode_indication_header(NOW, 3, sender_type="too-long-type")
    with pytest.raises(ValueError, match="version 4"):
        kpm.encode_indication_header(NOW, 4)


def test_timestamps_ntp_and_sanity_check() -> None:
    for ms in (NOW, NOW - 123, 946_684_800_001, 2_085_978_495_999, 2_085_978_496_000):  # across the 2036 NTP wrap
        assert kpm.timestamp_ms(kpm.encode_timestamp(ms, 3), 3, ms) == ms
        assert kpm.timestamp_ms(kpm.encode_timestamp(ms, 2), 2, ms) == ms - ms % 1000
    assert kpm.encode_timestamp(NOW, 3) == struct.pack(">II", NOW // 1000 + NTP_1970, 0)
    assert kpm.encode_timestamp(1500, 2) == struct.pack(">I", 1 + NTP_1970)
    with pytest.raises(KpmDecodeError, match="more than a day after now"):
        kpm.timestamp_ms(bytes(8), 3, NOW)  # NTP zero: 1900, or 2036 read as NTP era 1: garbage either way
    with pytest.raises(KpmDecodeError, match="before 2000-01-01"):
        kpm.timestamp_ms(struct.pack(">II", NTP_1970, 0), 3, NOW)  # Unix epoch
    with pytest.raises(KpmDecodeError, match="more than a day after now"):
        kpm.timestamp_ms(struct.pack(">I", NOW // 1000), 2, NOW)  # Unix seconds sent raw: NTP era 1, year 2091
    with pytest.raises(KpmDecodeError, match="1999-12-31"):
        kpm.timestamp_ms(struct.pack(">I", NTP_1970 + 946_684_799), 2, NOW)
    with pytest.raises(KpmDecodeError, match="more than a day after now"):
        kpm.timestamp_ms(kpm.encode_timestamp(NOW + 2 * 86_400_000, 3), 3, NOW)
    assert kpm.timestamp_ms(kpm.encode_timestamp(NOW + 3_600_000, 3), 3, NOW) == NOW + 3_600_000
    with pytest.raises(KpmDecodeError, match="octets"):
        kpm.timestamp_ms(bytes(4), 3, NOW)
    # Through the whole decoder, on both paths.
    old = _envelope(_standard_ies(b"\x00" + struct.pack(">II", NTP_1970 + 86_400, 0), _real_message(b"")))
    for decoder in (fast.decode, fast.decode_fast, fast.decode_library):
        with pytest.raises(KpmDecodeError, match="1970-01-02"):
            decoder(old, 3, NOW)


# ---------------------------------------------------------------------------------------------------------------
# E2SM-KPM indication messages
# ---------------------------------------------------------------------------------------------------------------


def test_message_format1_known_bytes() -> None:
    # 0C: message/choice/format extension bits and index 0, measInfoList and granulPeriod present, pad.
    # 00 00: one measData item; 00 01: item bits + pad, one record; 00 05: integer record (extension 0,
    # choice 00, "octets - 1" 00, pad) then 5; 00 00: one measInfoList item; then the item as in an action
    # definition; 40 03 E7: granulPeriod 1000.
    expected = b"\x0c\x00\x00\x00\x01\x00\x05\x00\x00" + _action_item("RRU.PrbUsedDl") + b"\x40\x03\xe7"
    assert kpm.encode_indication_message_format1(["RRU.PrbUsedDl"], [5], 1000) == expected
    # noValue (extension 0, choice 10) then real (0, 01) in 6 bits + pad: 44; REAL length 3, binary base 2,
    # one exponent octet -1 (FF), mantissa 5: 2.5.
    assert kpm.encode_indication_message_format1(None, [None, 2.5], None) == b"\x00\x00\x00\x00\x02\x44\x03\x80\xff\x05"


def test_message_format1_round_trip() -> None:
    names = ["RRU.PrbUsedDl", "DRB.UEThpDl", "RRC.ConnMean", "L1M.DL-SS-SINR.SSB", "DRB.PdcpSduVolumeDL"]
    values = [17, 2**32 - 1, None, -3.5, 0.125]
    report = kpm.decode_indication_message(kpm.encode_indication_message_format1(names, values, 1000))
    assert report.names == tuple(names) and report.granularity_ms == 1000 and report.ues == 0
    np.testing.assert_array_equal(report.values, [17.0, 2**32 - 1, np.nan, -3.5, 0.125])
    assert report.values.dtype == np.float64
    # Integral floats become integer records, NaN noValue; large, negative and fractional values stay real.
    assert kpm.encode_indication_message_format1(None, [3.0], None) == kpm.encode_indication_message_format1(
        None, [3], None
    )
    odd = [math.nan, 2.0**33, -1, 1e-300, math.inf, -math.inf]
    report = kpm.decode_indication_message(kpm.encode_indication_message_format1(None, odd, None))
    assert report.names is None and report.granularity_ms is None
    np.testing.assert_array_equal(report.values, [np.nan, 2.0**33, -1.0, 1e-300, np.inf, -np.inf])
    # Measurements by ID: names None (the caller maps by the action definition's order), on both paths.
    by_id = kpm.encode_indication_message_format1([7, "RRU.PrbUsedDl"], [1, 2], 10)
    assert kpm.decode_indication_message(by_id).names is None
    with pytest.raises(ValueError, match="2 values for 1 measurements"):
        kpm.encode_indication_message_format1(["RRU.PrbUsedDl"], [1, 2], 10)


def test_incomplete_flag_follows_the_record() -> None:
    # 04: granulPeriod only; 00 00: one item; 40: item extension 0, incompleteFlag present, pad; 01: one record;
    # 00 25: integer 37; then incompleteFlag's extension bit 0 (its value follows measRecord), granulPeriod
    # "octets - 1" 01, pad: 20; 03 E7: 1000.
    message = b"\x04\x00\x00\x40\x01\x00\x25\x20\x03\xe7"
    report = kpm.decode_indication_message(message)
    assert report.values.tolist() == [37.0] and report.granularity_ms == 1000
    payload = _envelope(_standard_ies(_header(), message))
    assert _same(fast.decode_fast(payload, 3, NOW), fast.decode_library(payload, 3, NOW))


def test_message_periods_aggregated() -> None:
    names = ["MM.HoExeInterReq", "RRU.PrbUsedDl", "DRB.UEThpDl"]
    message = kpm.encode_indication_message_format1(
        names, [None, 30, None], 100, earlier_periods=[[2, 10, None], [3, None, None]]
    )
    report = kpm.decode_indication_message(message)
    # Handover counts add up over the periods, PRB means average, an all-noValue column stays NaN.
    np.testing.assert_array_equal(report.values, [5.0, 20.0, np.nan])
    payload = _envelope(_standard_ies(_header(), message))
    assert _same(fast.decode_fast(payload, 3, NOW), fast.decode_library(payload, 3, NOW))


def test_message_format3_aggregated_to_the_cell() -> None:
    names = ["RRU.PrbUsedDl", "DRB.UEThpDl", "RRC.ConnMean", "L1M.DL-SS-SINR.SSB", "MM.HoExeInterSucc", "Vendor.X"]
    per_ue: list[tuple[int, list[float | int | None]]] = [
        (1, [10, 2000, 1, 12.5, None, 4]),
        (2, [30, 1000, 1, None, None, 8]),
        (1 << 39, [None, 3000, 1, 7.5, None, 3]),
    ]
    message = kpm.encode_indication_message_format3(names, per_ue, 1000)
    report = kpm.decode_indication_message(message)
    assert report.names == tuple(names) and report.ues == 3 and report.granularity_ms == 1000
    # PRBs and UEs summed over UEs, throughput and SINR averaged, NaN ignored, unknown names averaged.
    np.testing.assert_array_equal(report.values, [40.0, 2000.0, 3.0, 10.0, np.nan, 5.0])
    # Unnamed reports (measIDs): every column averaged.
    unnamed = kpm.decode_indication_message(
        kpm.encode_indication_message_format3([1, 2], [(5, [1, 4]), (6, [3, 4])], None)
    )
    assert unnamed.names is None and unnamed.ues == 2
    np.testing.assert_array_equal(unnamed.values, [2.0, 4.0])
    # The fast path leaves format 3 (an extension alternative) to the library path.
    payload = _envelope(_standard_ies(_header(), message))
    with pytest.raises(FastPathMiss):
        fast.decode_fast(payload, 3, NOW)
    decoded = fast.decode(payload, 3, NOW)
    assert decoded.ues == 3 and decoded.names == tuple(names)
    assert _same(decoded, fast.decode_library(payload, 3, NOW))


# ---------------------------------------------------------------------------------------------------------------
# E2AP RICindication
# ---------------------------------------------------------------------------------------------------------------


def test_ric_indication_known_bytes_and_round_trip() -> None:
    header, message = _header(), kpm.encode_indication_message_format1(["RRU.PrbUsedDl"], [5], 1000)
    ind = RicIndication(1027, 3, 2, 1, 77, "report", header, message)
    assert e2ap.encode_ric_indication(ind) == _envelope(_standard_ies(header, message))
    assert e2ap.decode_ric_indication(e2ap.encode_ric_indication(ind)) == ind
    other = RicIndication(65535, 65535, 4095, 255, 65535, "insert", b"h" * 300, b"m" * 2_000, b"")
    assert e2ap.decode_ric_indication(e2ap.encode_ric_indication(other)) == other
    with pytest.raises(ValueError, match="RAN function ID"):
        e2ap.encode_ric_indication(RicIndication(0, 0, 4096, 0, None, "report", b"", b""))


def test_ric_indication_ie_rules_on_both_paths() -> None:
    header, message = _header(), kpm.encode_indication_message_format1(["RRU.PrbUsedDl"], [5], 1000)
    ies = _standard_ies(header, message)
    reference = fast.decode_library(_envelope(ies), 3, NOW)
    unknown_ignore = _ie(99, b"\x01\x02\x03", criticality=1)
    unknown_reject = _ie(99, b"\x01\x02\x03", criticality=0)
    accepted = [ies[::-1], [*ies[:3], unknown_ignore, *ies[3:]], [*ies, _ie(30, b"\x00", criticality=2)]]
    for variant in accepted:
        payload = _envelope(variant)
        assert _same(fast.decode_fast(payload, 3, NOW), reference)
        assert _same(fast.decode_library(payload, 3, NOW), reference)
    rejected = {
        "unknown protocol IE 99 with criticality reject": _envelope([*ies, unknown_reject]),
        "repeats protocol IE 15": _envelope([*ies, ies[2]]),
        r"lacks mandatory protocol IEs \[26\]": _envelope(ies[:-1]),
        "procedure code 9": _envelope(ies, procedure=9),
    }
    for reason, payload in rejected.items():
        for decoder in (fast.decode_fast, fast.decode_library):
            with pytest.raises(E2apDecodeError, match=reason):
                decoder(payload, 3, NOW)


# ---------------------------------------------------------------------------------------------------------------
# The fast path against the library path
# ---------------------------------------------------------------------------------------------------------------


def test_fast_path_equals_library_on_random_messages() -> None:
    rng = np.random.default_rng(20_240_601)
    for version, count in ((3, 1200), (2, 800)):
        for _ in range(count):
            payload = samples.random_indication(rng, version, now_ms=NOW)
            decoded = fast.decode_fast(payload, version, NOW)
            assert _same(decoded, fast.decode_library(payload, version, NOW)), payload.hex()


def test_fast_path_misses_fall_back_to_the_library() -> None:
    decimal = _real_message(b"\x03" + b"15E-1")  # ISO 6093 NR3 decimal REAL: 1.5
    format3 = kpm.encode_indication_message_format3(["RRU.PrbUsedDl"], [(1, [2])], None)
    # Format1 extension bit set (20), the timestamp, then one unknown extension addition: normally small bitmap
    # length 0 and bitmap 1 (01), open type of one octet (01 00). The library skips it.
    extended = b"\x20" + kpm.encode_timestamp(NOW, 3) + b"\x01\x01\x00"
    assert kpm.decode_indication_header(extended, 3, NOW) == kpm.KpmHeader(NOW)
    for header, message in ((_header(), decimal), (_header(), format3), (extended, format3)):
        payload = _envelope(_standard_ies(header, message))
        with pytest.raises(FastPathMiss):
            fast.decode_fast(payload, 3, NOW)
        assert _same(fast.decode(payload, 3, NOW), fast.decode_library(payload, 3, NOW))
    assert fast.decode(_envelope(_standard_ies(_header(), decimal)), 3, NOW).values[0] == 1.5
    # A string beyond its root size (senderType, 0..8: size extension bit 1 + pad, plain length) is a miss the
    # library path cannot decode either (asn1tools lacks string size extensions): a decode error.
    long_type = b"\x04" + kpm.encode_timestamp(NOW, 3) + b"\x80\x09" + b"x" * 9
    with pytest.raises(KpmDecodeError, match="size extension"):
        fast.decode(_envelope(_standard_ies(long_type, format3)), 3, NOW)


def test_fragmented_payloads_decode() -> None:
    # 20,000 records: the message is over 16K octets, so the E2AP open types and octet string are fragmented
    # (which the fast path reassembles and pycrate cannot decode) and so is the record list (a KPM-layer miss).
    values = list(range(20_000))
    message = kpm.encode_indication_message_format1(None, values, 10)
    payload = e2ap.encode_ric_indication(RicIndication(9, 8, 7, 6, None, "report", _header(), message))
    assert len(payload) > 3 * 16_384
    with pytest.raises(FastPathMiss, match="fragmented measurement record"):
        fast.decode_fast(payload, 3, NOW)
    decoded = fast.decode(payload, 3, NOW)
    assert (decoded.requestor_id, decoded.action_id, decoded.granularity_ms) == (9, 6, 10)
    np.testing.assert_array_equal(decoded.values, values)
    # A big header and a format-1 message within the fast path's reach, inside a fragmented envelope.
    small = kpm.encode_indication_message_format1(["RRU.PrbUsedDl"], [3], 10)
    padded = RicIndication(1, 2, 3, 4, 5, "report", _header(), small, call_process_id=b"c" * 70_000)
    decoded = fast.decode_fast(e2ap.encode_ric_indication(padded), 3, NOW)
    assert decoded.names == ("RRU.PrbUsedDl",) and decoded.values.tolist() == [3.0]


@pytest.mark.parametrize(
    ("contents", "value"),
    [
        (b"", 0.0),
        (b"\x80\xff\x05", 2.5),
        (b"\xc0\xff\x05", -2.5),
        (b"\x80\x00\x00\x05", 5.0),  # redundant leading mantissa octet (asn1tools emits these)
        (b"\x90\x01\x03", 24.0),  # base 8: 3 * 8^1
        (b"\xa0\xff\x10", 1.0),  # base 16: 16 * 16^-1
        (b"\x88\x00\x03", 12.0),  # scale factor F = 2: 3 * 2^2
        (b"\x81\xff\xff\x01", 0.5),  # two exponent octets
        (b"\x82\x00\x00\x0a\x01", 1024.0),  # three exponent octets
        (b"\x83\x01\x02\x03", 12.0),  # long-form exponent: length octet 1, exponent 2
        (b"\x80\xbc\x01", 2.0**-68),
        (b"\x40", math.inf),
        (b"\x41", -math.inf),
    ],
)
def test_fast_path_reals(contents: bytes, value: float) -> None:
    payload = _envelope(_standard_ies(_header(), _real_message(contents)))
    assert fast.decode_fast(payload, 3, NOW).values[0] == value


def test_fast_path_real_specials_and_errors() -> None:
    def decode_real(contents: bytes) -> float:
        return float(fast.decode_fast(_envelope(_standard_ies(_header(), _real_message(contents))), 3, NOW).values[0])

    assert math.isnan(decode_real(b"\x42"))
    assert math.copysign(1.0, decode_real(b"\x43")) == -1.0
    for bad, reason in [
        (b"\x43\x00", "special value"),
        (b"\x44", "special value"),
        (b"\xb0\x00\x01", "base indicator 3"),
        (b"\x80\x00", "before its mantissa"),
        (b"\x81\x7f\xff\x01", "float64 range"),
    ]:
        with pytest.raises(KpmDecodeError, match=reason):
            decode_real(bad)


# ---------------------------------------------------------------------------------------------------------------
# Malformed input: only the documented errors, from every path
# ---------------------------------------------------------------------------------------------------------------


def _mutated(rng: np.random.Generator, data: bytes) -> bytes:
    """data with 1 to 3 bits flipped, octets replaced, a cut or an insertion."""
    buf = bytearray(data)
    op = int(rng.integers(4))
    if op == 2 or not buf:
        return bytes(buf[: int(rng.integers(len(buf) + 1))])
    if op == 3:
        i = int(rng.integers(len(buf) + 1))
        return bytes(buf[:i]) + rng.bytes(int(rng.integers(1, 4))) + bytes(buf[i:])
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(buf)))
        buf[i] = buf[i] ^ (1 << int(rng.integers(8))) if op == 0 else int(rng.integers(256))
    return bytes(buf)


def test_malformed_payloads_raise_only_decode_errors() -> None:
    rng = np.random.default_rng(7)
    pool = [samples.random_indication(rng, 3, now_ms=NOW) for _ in range(12)]
    pool += [samples.random_indication(rng, 2, now_ms=NOW) for _ in range(6)]
    pool += [samples.random_indication(rng, 3, format3=True, now_ms=NOW) for _ in range(4)]
    parts = [(ind.header, ind.message) for ind in map(e2ap.decode_ric_indication, pool)]
    for payload in pool[:4] + pool[-2:]:  # truncation at every octet boundary always breaks a length
        for cut in range(len(payload)):
            with pytest.raises(DECODE_ERRORS):
                fast.decode(payload[:cut], 3, NOW)
    outcomes = {"decoded": 0, "rejected": 0}
    for k in range(20_000):
        r = k % 4
        pick = int(rng.integers(len(pool)))
        if r == 0:  # random octets, half of them behind a plausible E2AP-PDU start
            data = (b"\x00\x05\x40" if k % 8 == 0 else b"") + rng.bytes(int(rng.integers(0, 64)))
        elif r == 1:  # the whole payload mutated
            data = _mutated(rng, pool[pick])
        else:  # the KPM message (or header) mutated inside a well-formed envelope
            header, message = parts[pick]
            if r == 2:
                message = _mutated(rng, message)
            else:
                header = _mutated(rng, header)
            data = _envelope(_standard_ies(header, message))
        try:
            fast.decode(data, 2 if pick in range(12, 18) else 3, NOW)
            outcomes["decoded"] += 1
        except DECODE_ERRORS:
            outcomes["rejected"] += 1
    assert outcomes["decoded"] > 500 and outcomes["rejected"] > 5000


# ---------------------------------------------------------------------------------------------------------------
# Catalogue and bench
# ---------------------------------------------------------------------------------------------------------------


def test_catalogue_names_and_aggregations_match_the_simulator() -> None:
    assert samples.CATALOGUE_NAMES == MEASUREMENT_NAMES
    assert kpm.SUMMED_OVER_UES <= set(MEASUREMENT_NAMES)
    assert kpm.SUMMED_OVER_PERIODS <= kpm.SUMMED_OVER_UES


def test_decode_bench_reports_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    from ranomaly_contracts.e2sm.bench import run_decode_bench

    result = run_decode_bench(40, 10, seed=3)
    for path in ("fast", "library", "library_e2ap_only"):
        assert set(result[path]) == {"median_us", "p99_us", "per_s"}
        assert result[path]["median_us"] > 0
    assert result["fast"]["median_us"] < result["library"]["median_us"]
    assert "fast path" in capsys.readouterr().out
