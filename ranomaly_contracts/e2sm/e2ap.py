"""E2AP RICindication (O-RAN.WG3.E2AP) through pycrate's compiled E2AP modules, aligned PER.

pycrate ASN.1 objects keep the last value they encoded or decoded: they are neither thread- nor reentrancy-safe,
so one lock serialises every use of the shared PDU object. pycrate is slow (about 150 us a RICindication); the
hand-written decoder of ``fast.py`` is the hot path, this module its reference.

Decoding follows the E2AP rules for the protocol IE container: the IEs may come in any order, an IE the
RICindication does not define is skipped when its criticality is ignore or notify and rejects the message when
it is reject, a repeated IE or a missing mandatory one rejects the message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from pycrate_asn1dir import E2AP  # type: ignore[import-untyped]

PROCEDURE_RIC_INDICATION = 5
# Protocol IE ids of the RICindication message (E2AP 9.1.1.x)
IE_REQUEST_ID = 29
IE_RAN_FUNCTION_ID = 5
IE_ACTION_ID = 15
IE_SEQUENCE = 27
IE_TYPE = 28
IE_HEADER = 25
IE_MESSAGE = 26
IE_CALL_PROCESS_ID = 20
MANDATORY_IES = frozenset({IE_REQUEST_ID, IE_RAN_FUNCTION_ID, IE_ACTION_ID, IE_TYPE, IE_HEADER, IE_MESSAGE})
KNOWN_IES = MANDATORY_IES | {IE_SEQUENCE, IE_CALL_PROCESS_ID}
IndicationType = Literal["report", "insert"]
INDICATION_TYPES: tuple[IndicationType, IndicationType] = ("report", "insert")

_LOCK = threading.Lock()
_PDU = E2AP.E2AP_PDU_Descriptions.E2AP_PDU


class E2apDecodeError(ValueError):
    """Bytes that are not a valid E2AP RICindication; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class RicIndication:
    """The fields of an E2AP RICindication; header and message are the E2SM (KPM) octet strings."""

    requestor_id: int
    instance_id: int
    ran_function_id: int
    action_id: int
    sequence: int | None
    indication_type: IndicationType
    header: bytes
    message: bytes
    call_process_id: bytes | None = None


def _check(name: str, value: int, high: int) -> int:
    if not 0 <= value <= high:
        raise ValueError(f"{name} {value} is outside 0..{high}")
    return value


def encode_ric_indication(ind: RicIndication) -> bytes:
    """The aligned-PER E2AP-PDU (initiatingMessage RICindication) of ``ind``."""
    if ind.indication_type not in INDICATION_TYPES:
        raise ValueError(f"indication type {ind.indication_type!r} is not report or insert")
    request = {
        "ricRequestorID": _check("RIC requestor ID", ind.requestor_id, 65535),
        "ricInstanceID": _check("RIC instance ID", ind.instance_id, 65535),
    }
    values: list[tuple[int, str, Any]] = [
        (IE_REQUEST_ID, "RICrequestID", request),
        (IE_RAN_FUNCTION_ID, "RANfunctionID", _check("RAN function ID", ind.ran_function_id, 4095)),
        (IE_ACTION_ID, "RICactionID", _check("RIC action ID", ind.action_id, 255)),
    ]
    if ind.sequence is not None:
        values.append((IE_SEQUENCE, "RICindicationSN", _check("RIC indication SN", ind.sequence, 65535)))
    values += [
        (IE_TYPE, "RICindicationType", ind.indication_type),
        (IE_HEADER, "RICindicationHeader", bytes(ind.header)),
        (IE_MESSAGE, "RICindicationMessage", bytes(ind.message)),
    ]
    if ind.call_process_id is not None:
        values.append((IE_CALL_PROCESS_ID, "RICcallProcessID", bytes(ind.call_process_id)))
    ies = [{"id": i, "criticality": "reject", "value": (name, v)} for i, name, v in values]
    message = {
        "procedureCode": PROCEDURE_RIC_INDICATION,
        "criticality": "ignore",
        "value": ("RICindication", {"protocolIEs": ies}),
    }
    with _LOCK:
        _PDU.set_val(("initiatingMessage", message))
        return bytes(_PDU.to_aper())


def _parse(data: bytes) -> Any:
    with _LOCK:
        try:
            _PDU.from_aper(data)
            return _PDU.get_val()
        except Exception as exc:  # pycrate raises assorted types on malformed input
            raise E2apDecodeError(f"malformed E2AP-PDU: {exc}") from exc


def decode_ric_indication(data: bytes) -> RicIndication:
    """Decode an E2AP-PDU that must be a RICindication (see the module docstring for the IE rules)."""
    kind, message = _parse(bytes(data))
    if kind != "initiatingMessage":
        raise E2apDecodeError(f"E2AP {kind} is not a RICindication (an initiatingMessage)")
    if message["procedureCode"] != PROCEDURE_RIC_INDICATION:
        raise E2apDecodeError(f"E2AP procedure code {message['procedureCode']} is not RICindication (5)")
    found: dict[int, Any] = {}
    for ie in message["value"][1]["protocolIEs"]:
        ie_id = ie["id"]
        if ie_id in found:
            raise E2apDecodeError(f"RICindication repeats protocol IE {ie_id}")
        if ie_id in KNOWN_IES:
            found[ie_id] = ie["value"][1]
        elif ie["criticality"] == "reject":
            raise E2apDecodeError(f"RICindication carries unknown protocol IE {ie_id} with criticality reject")
    missing = MANDATORY_IES - found.keys()
    if missing:
        raise E2apDecodeError(f"RICindication lacks mandatory protocol IEs {sorted(missing)}")
    kind_of = found[IE_TYPE]
    if kind_of not in INDICATION_TYPES:
        raise E2apDecodeError(f"RICindication type {kind_of!r} is not report or insert")
    request = found[IE_REQUEST_ID]
    return RicIndication(
        requestor_id=request["ricRequestorID"],
        instance_id=request["ricInstanceID"],
        ran_function_id=found[IE_RAN_FUNCTION_ID],
        action_id=found[IE_ACTION_ID],
        sequence=found.get(IE_SEQUENCE),
        indication_type=kind_of,
        header=bytes(found[IE_HEADER]),
        message=bytes(found[IE_MESSAGE]),
        call_process_id=None if IE_CALL_PROCESS_ID not in found else bytes(found[IE_CALL_PROCESS_ID]),
    )
