"""RICindication decoding speed: the fast path against the library path (pycrate + asn1tools), same messages."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ranomaly_contracts.e2sm import e2ap, fast, kpm, samples


def _times_ns(decode: Callable[[bytes], object], payloads: list[bytes]) -> np.ndarray:
    times = np.empty(len(payloads), dtype=np.int64)
    clock = time.perf_counter_ns
    for k, payload in enumerate(payloads):
        t0 = clock()
        decode(payload)
        times[k] = clock() - t0
    return times


def _summary(times: np.ndarray) -> dict[str, float]:
    return {
        "median_us": float(np.median(times)) / 1e3,
        "p99_us": float(np.percentile(times, 99)) / 1e3,
        "per_s": len(times) / (float(times.sum()) / 1e9),
    }


def run_decode_bench(n: int, measurements: int, seed: int | None = 0) -> dict[str, Any]:
    """Decode n random one-cell v3 indications of ``measurements`` named values with both paths; print and return.

    Per message: median and p99 microseconds; messages/s over the whole run. Also the pycrate E2AP share of the
    library path. Every message is decoded once per path, after a warm-up that compiles and fills caches.
    """
    rng = np.random.default_rng(seed)
    now_ms = kpm.current_ms()
    payloads = [
        samples.random_indication(rng, 3, measurements=measurements, typical=True, now_ms=now_ms) for _ in range(n)
    ]
    for payload in payloads[:20]:
        fast.decode_fast(payload, 3, now_ms)
        fast.decode_library(payload, 3, now_ms)
    result: dict[str, Any] = {"n": n, "measurements": measurements}
    result["fast"] = _summary(_times_ns(lambda p: fast.decode_fast(p, 3, now_ms), payloads))
    result["library"] = _summary(_times_ns(lambda p: fast.decode_library(p, 3, now_ms), payloads))
    result["library_e2ap_only"] = _summary(_times_ns(e2ap.decode_ric_indication, payloads))
    result["speedup"] = result["library"]["median_us"] / result["fast"]["median_us"]
    out = sys.stdout
    out.write(f"RICindication decode, {n} messages of {measurements} measurements (E2SM-KPM v3)\n")
    out.write(f"{'path':<28}{'median us':>12}{'p99 us':>12}{'messages/s':>14}\n")
    for key, label in (
        ("fast", "fast path"),
        ("library", "pycrate + asn1tools"),
        ("library_e2ap_only", "  of which pycrate E2AP"),
    ):
        row = result[key]
        out.write(f"{label:<28}{row['median_us']:>12.1f}{row['p99_us']:>12.1f}{row['per_s']:>14,.0f}\n")
    out.write(f"fast path speed-up (median): {result['speedup']:.1f}x\n")
    return result
