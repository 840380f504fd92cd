"""Random valid RICindication payloads carrying E2SM-KPM reports, for tests and benchmarks."""

from __future__ import annotations

import numpy as np

from ranomaly_contracts.e2sm import e2ap, kpm

# The TS 28.552 names the simulator reports (e2sim/catalogue.py, kept equal to it by a test); contracts cannot
# import the simulator.
CATALOGUE_NAMES: tuple[str, ...] = (
    "RRU.PrbUsedDl",
    "RRU.PrbUsedUl",
    "DRB.UEThpDl",
    "DRB.UEThpUl",
    "RRC.ConnMean",
    "DRB.RlcSduDelayDl",
    "DRB.PacketLossRateUl",
    "MM.HoExeInterReq",
    "MM.HoExeInterSucc",
    "L1M.DL-SS-SINR.SSB",
    "DRB.PdcpSduVolumeDL",
    "DRB.PdcpSduVolumeUL",
)
_TEXT = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?", dtype=np.uint8)
_DAY_MS = 86_400_000


def _text(rng: np.random.Generator, longest: int) -> str:
    return bytes(rng.choice(_TEXT, size=int(rng.integers(1, longest + 1)))).decode("ascii")


def random_value(rng: np.random.Generator) -> float | int | None:
    """A measurement value: an integer of any magnitude, a real (negative, zero, huge or tiny at times) or None."""
    r = rng.random()
    if r < 0.45:
        return int(rng.integers(0, 10 ** int(rng.integers(1, 10))))
    if r < 0.85:
        return float(rng.normal() * 10.0 ** int(rng.integers(-8, 12)))
    if r < 0.9:
        return float(rng.choice([0.5, -0.0, -1.0, 1e300, -5e-324, 2.0**40, float("inf"), float("-inf")]))
    return None


def random_indication(
    rng: np.random.Generator,
    version: int = 3,
    *,
    measurements: int | None = None,
    format3: bool = False,
    typical: bool = False,
    now_ms: int | None = None,
) -> bytes:
    """A random valid RICindication (E2AP-PDU bytes) with an E2SM-KPM header format 1 and message format 1 or 3.

    Random: request, function and action IDs; SN and call process ID present or not; header strings; names
    from the catalogue, measIDs, a mix or none; integer, real and noValue records; granularity period present or
    not; one or several granularity periods. ``typical`` fixes the common one-cell case: named measurements, one
    period, granularity period and SN present, no call process ID. The collection start lies in the 30 days
    before ``now_ms`` (default the current time).
    """
    now_ms = kpm.current_ms() if now_ms is None else now_ms
    k = int(rng.integers(1, 13)) if measurements is None else measurements
    chosen = [str(n) for n in rng.choice(CATALOGUE_NAMES, size=k, replace=k > len(CATALOGUE_NAMES))]
    mode = "names" if typical else str(rng.choice(["names", "names", "names", "ids", "mixed", "absent"]))
    names: list[str | int] | None = [*chosen]
    if mode == "ids":
        names = [int(i) for i in rng.integers(1, 65537, size=k)]
    elif mode == "mixed":
        names = [int(rng.integers(1, 65537)) if rng.random() < 0.3 else n for n in chosen]
    elif mode == "absent":
        names = None
    granularity = int(rng.integers(1, 3_600_000)) if typical or rng.random() < 0.8 else None

    def values() -> list[float | int | None]:
        return [random_value(rng) for _ in range(k)]

    if format3:
        per_ue = [(int(rng.integers(0, 1 << 40)), values()) for _ in range(int(rng.integers(1, 5)))]
        message = kpm.encode_indication_message_format3(names, per_ue, granularity)
    else:
        earlier = [] if typical or rng.random() < 0.85 else [values() for _ in range(int(rng.integers(1, 3)))]
        message = kpm.encode_indication_message_format1(names, values(), granularity, earlier_periods=earlier)
    strings = [None if rng.random() < 0.6 else _text(rng, bound) for bound in (400, 8, 32, 15)]
    header = kpm.encode_indication_header(now_ms - int(rng.integers(0, 30 * _DAY_MS)), version, *strings)
    indication = e2ap.RicIndication(
        requestor_id=int(rng.integers(0, 65536)),
        instance_id=int(rng.integers(0, 65536)),
        ran_function_id=int(rng.integers(0, 4096)),
        action_id=int(rng.integers(0, 256)),
        sequence=int(rng.integers(0, 65536)) if typical or rng.random() < 0.7 else None,
        indication_type="report" if typical or rng.random() < 0.9 else "insert",
        header=header,
        message=message,
        call_process_id=None if typical or rng.random() < 0.8 else _text(rng, 8).encode(),
    )
    return e2ap.encode_ric_indication(indication)
