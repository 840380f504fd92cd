"""A time range and cursor pagination over the console's incident list (`GET /api/v1/incidents`).

The cursor is opaque to clients: the id of the last incident of the page, base64url-encoded. The next page is
what follows that incident in the same sort order, so incidents recorded meanwhile never repeat or shift a
page; a cursor whose incident is no longer listed (the retention dropped it, or other filters) is refused.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from rapp.console.incidents import Incident

LIMIT_MAX = 500


class CursorError(ValueError):
    """A cursor that is not one of ours, or whose incident is gone."""


def in_range(incident: Incident, since_ms: int | None, until_ms: int | None) -> bool:
    """Whether an incident was anomalous within [since_ms, until_ms): its span from opening to its last
    anomalous period overlaps the range."""
    return (since_ms is None or incident.last_ms >= since_ms) and (until_ms is None or incident.opened_ms < until_ms)


def encode(incident_id: str) -> str:
    """The cursor after an incident."""
    return base64.urlsafe_b64encode(incident_id.encode()).decode().rstrip("=")


def page(ordered: Sequence[Incident], cursor: str | None, limit: int) -> tuple[list[Incident], str | None]:
    """The `limit` incidents after the cursor's (from the start without one), and the next page's cursor (None:
    this is the last page)."""
    start = 0
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 inside
            raise CursorError("cursor: not a cursor this API gave") from None
        ids = [incident.incident_id for incident in ordered]
        if after not in ids:
            raise CursorError("cursor: its incident is no longer listed; start again without a cursor")
        start = ids.index(after) + 1
    chosen = list(ordered[start : start + limit])
    more = start + limit < len(ordered)
    return chosen, encode(chosen[-1].incident_id) if more and chosen else None
