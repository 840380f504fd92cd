"""Log lines about bad input at a bounded rate: one line per kind per interval, with what was suppressed.

Shared by the xApp and the rApp (which import no internals of each other).
"""

from __future__ import annotations

import time
from typing import Any


class RateLimitedLog:
    """Wraps a structlog logger; `warning(key, event, ...)` logs at most once per key per interval."""

    def __init__(self, logger: Any, interval_s: float) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, event: str, **fields: Any) -> None:
        """Log now, or count the line as suppressed if this key was logged within the interval."""
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        self._logger.warning(event, suppressed_since_last=suppressed, **fields)
