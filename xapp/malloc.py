"""glibc's malloc told to keep large buffers mapped, so that overlapped scoring does not fragment the heap.

Scoring on a thread of its own interleaves the lifetimes of one batch's buffers (megabytes each: the state
gathered, the outputs) with the next one's. glibc raises its mmap threshold each time such a buffer is freed,
after which they come from the heap, where interleaved lifetimes fragment it: resident memory grew by about
the model's state per cell again. A fixed threshold (which turns the raising off) keeps them mapped, and
returned to the system when freed. Elsewhere than glibc it changes nothing.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def keep_large_buffers_mapped(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Allocations of `threshold` bytes or more mapped on their own (whether the C library took the setting)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, threshold))
