"""Operators' judgements of incidents, kept with the rApp's other records in the data layer: one JSON record per
incident in a hash (`SdlKeys.rapp_incident_notes`), field incident id.

A record: `{"acknowledged": {"by", "at_ms"} | null, "verdict": {"verdict", "cause", "by", "at_ms"} | null,
"notes": [{"text", "by", "at_ms"}, ...]}`. `verdict` is "false_alarm" or "confirmed" (with the anomaly kind the
operator names as its cause, one of `ranomaly_contracts.kinds.LABEL_KINDS`); the newest verdict wins. Each
change is a read-modify-write under WATCH, so two operators acting at once both land.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from redis.exceptions import WatchError

from ranomaly_contracts.kinds import LABEL_KINDS
from ranomaly_contracts.redis_client import AsyncRedis
from ranomaly_contracts.sdl import as_text

VERDICTS = ("false_alarm", "confirmed")
NOTE_MAX = 2000  # characters of one note
NOTES_MAX = 200  # notes kept per incident; the oldest go first


class Stamp(BaseModel):
    """Who did it and when (ms since the epoch)."""

    by: str
    at_ms: int


class Verdict(Stamp):
    """An operator's verdict on an incident."""

    verdict: Literal["false_alarm", "confirmed"]
    cause: str | None = None  # the anomaly kind, for a confirmed incident


class Note(Stamp):
    """A free-text note."""

    text: str


class IncidentNotes(BaseModel):
    """Everything operators said about one incident."""

    acknowledged: Stamp | None = None
    verdict: Verdict | None = None
    notes: list[Note] = Field(default_factory=list)

    def review(self) -> str:
        """One word for lists and filters: the verdict, else acknowledged, else new."""
        if self.verdict is not None:
            return self.verdict.verdict
        return "acknowledged" if self.acknowledged is not None else "new"


class NoteError(ValueError):
    """A judgement the store refuses; the message says why."""


def check_verdict(verdict: str, cause: str | None) -> str | None:
    """The cause kept with a verdict; NoteError for a verdict or cause outside the known words."""
    if verdict not in VERDICTS:
        raise NoteError(f"verdict: {verdict!r} is not one of {', '.join(VERDICTS)}")
    if verdict == "false_alarm":
        return None
    if cause is None or cause not in LABEL_KINDS:
        raise NoteError(f"cause: a confirmed incident needs its kind, one of {', '.join(LABEL_KINDS)}")
    return cause


class NoteStore:
    """The hash of incident notes."""

    def __init__(self, redis: AsyncRedis, key: str) -> None:
        self._redis = redis
        self._key = key

    async def get(self, incident_id: str) -> IncidentNotes:
        """One incident's notes (empty when none)."""
        raw = await self._redis.hget(self._key, incident_id)
        return IncidentNotes() if raw is None else IncidentNotes.model_validate_json(raw)

    async def all(self) -> dict[str, IncidentNotes]:
        """Every incident's notes."""
        raw = await self._redis.hgetall(self._key)
        return {as_text(key): IncidentNotes.model_validate_json(value) for key, value in raw.items()}

    async def acknowledge(self, incident_id: str, by: str) -> IncidentNotes:
        """Mark the incident acknowledged (the first acknowledgement stays)."""

        def change(notes: IncidentNotes, stamp: Stamp) -> None:
            notes.acknowledged = notes.acknowledged or stamp

        return await self._change(incident_id, by, change)

    async def annotate(self, incident_id: str, by: str, text: str) -> IncidentNotes:
        """Add a note (NoteError when empty or longer than NOTE_MAX)."""
        text = text.strip()
        if not text or len(text) > NOTE_MAX:
            raise NoteError(f"text: a note holds 1 to {NOTE_MAX} characters")

        def change(notes: IncidentNotes, stamp: Stamp) -> None:
            notes.notes = [*notes.notes, Note(text=text, **stamp.model_dump())][-NOTES_MAX:]

        return await self._change(incident_id, by, change)

    async def judge(self, incident_id: str, by: str, verdict: str, cause: str | None) -> IncidentNotes:
        """Record a verdict (NoteError for an unknown verdict or cause); it acknowledges the incident too."""
        kept = check_verdict(verdict, cause)

        def change(notes: IncidentNotes, stamp: Stamp) -> None:
            notes.verdict = Verdict(verdict=verdict, cause=kept, **stamp.model_dump())
            notes.acknowledged = notes.acknowledged or stamp

        return await self._change(incident_id, by, change)

    async def _change(self, incident_id: str, by: str, change: Callable[[IncidentNotes, Stamp], None]) -> IncidentNotes:
        stamp = Stamp(by=by, at_ms=int(time.time() * 1000))
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._key)
                    raw = await pipe.hget(self._key, incident_id)
                    notes = IncidentNotes() if raw is None else IncidentNotes.model_validate_json(raw)
                    change(notes, stamp)
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.hset(self._key, incident_id, notes.model_dump_json())
                    await pipe.execute()
                    return notes
                except WatchError:
                    continue


def notes_json(notes: IncidentNotes) -> dict[str, Any]:
    """The notes as JSON-ready data, with the review word."""
    return {**notes.model_dump(mode="json"), "review": notes.review()}
