"""NOC notifications: incident events posted to an Alertmanager-compatible webhook, each one at most once.

The collector hands over the incident events it has written durably (`Collector(on_incidents=...)`), before
it acknowledges them. Each event becomes one notification, a webhook message in Alertmanager's format
(version "4", one alert): open and update fire, close resolves. An incident's labels (alertname, incident_id,
cell_id, node_id, severity, and kind when known) are fixed by its first notification, so its fingerprint,
Alertmanager's hash of the labels, is the same from firing to resolved; the annotations carry the latest
summary, attribution and top remediation action (`rapp.remediation`: advice only, nothing is executed).
Predicted breaches (`rapp.forecasts`, `on_breaches`) go the same way as alerts of their own, alertname
RanomalyPredictedBreach, labels fixed by the breach (cell, node, measurement, direction), severity warning:
a breach's open fires, its close resolves.

Delivery state is a SQLite file (WAL, synchronous=FULL) under the rApp's work dir, one row per
(incident_id, event, period_start_ms): queued with its message fixed, then delivered or refused. Queuing is
one committed transaction, so a restart resends nothing delivered and loses nothing queued; an event the
collector offers again (a crash before its acknowledgement) is ignored. A background task posts pending rows
in queue order; a connection error, a timeout, a 5xx, 408, 425 or 429 stops the pass and it is retried with
doubling backoff up to `retry_max_s`, head of line (so an incident never resolves before it fired); another
4xx is recorded as refused, logged, and never retried. The one window left: a crash after the receiver
answered and before the row is marked delivered sends that message once more after the restart; its
`notification_id` annotation lets a receiver drop the repeat.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from ranomaly_contracts.kinds import AnomalyKind
from ranomaly_contracts.sdl import IncidentEvent
from rapp.forecasts import BreachEvent
from rapp.remediation import advise

log = structlog.get_logger(__name__)

ALERTNAME = "RanomalyIncident"
BREACH_ALERTNAME = "RanomalyPredictedBreach"
STATE_FILE = "noc-notifications.sqlite3"  # under the rApp's work dir
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert
RETRYABLE = frozenset({408, 425, 429})  # 4xx worth retrying; every 5xx is too
SEVERITY: Mapping[str, str] = {
    AnomalyKind.OUTAGE: "critical",
    AnomalyKind.CONGESTION: "major",
    AnomalyKind.INTERFERENCE: "major",
    AnomalyKind.HO_FAILURE: "major",
    AnomalyKind.TRANSPORT: "major",
    AnomalyKind.DEGRADATION: "minor",
    AnomalyKind.STUCK_COUNTER: "warning",
    AnomalyKind.SILENT: "warning",
}
UNKNOWN_SEVERITY = "major"  # an unclassified incident: the detector is sure something is wrong
_PRUNE_INTERVAL_S = 3600.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    event TEXT NOT NULL,
    period_start_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | refused
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT '',
    done_ms INTEGER,
    UNIQUE (incident_id, event, period_start_ms)
);
CREATE INDEX IF NOT EXISTS notifications_state ON notifications (state, seq);
CREATE TABLE IF NOT EXISTS alerts (incident_id TEXT PRIMARY KEY, labels TEXT NOT NULL, last_ms INTEGER NOT NULL);
"""


@dataclass
class NotifyStats:
    """What the notifier did since it started."""

    queued: int = 0  # notifications queued
    repeated: int = 0  # events offered again and ignored
    delivered: int = 0
    refused: int = 0  # answered with a 4xx that is not worth retrying
    failed_attempts: int = 0  # posts that failed and are retried
    last_error: str | None = None


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over the sorted names and values, 0xff after each."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def rfc3339(ms: int) -> str:
    """A millisecond timestamp as RFC 3339 UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _group_key(labels: Mapping[str, str]) -> str:
    """Alertmanager's group key for the root route: `{}:{name="value", ...}`."""
    return "{}:{" + ", ".join(f"{name}={json.dumps(labels[name])}" for name in sorted(labels)) + "}"


def _attribution(event: IncidentEvent) -> str:
    parts = [f"{a.measurement} {a.share:.0%} (deviation {a.deviation:.1f}x threshold)" for a in event.attribution]
    return "; ".join(parts) or "none"


class Notifier:
    """Queues incident events durably and posts them to one webhook; see the module's docstring.

    `kind_of` gives an event's root-cause kind when one is known (None: unclassified, generic advice)."""

    def __init__(
        self,
        url: str,
        state_path: str | Path,
        *,
        receiver: str = "ranomaly",
        external_url: str = "",
        timeout_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 60.0,
        keep_done_s: float = 7 * 86400.0,
        kind_of: Callable[[IncidentEvent], str | None] | None = None,
    ) -> None:
        self.url = httpx.URL(url)
        self.receiver = receiver
        self.external_url = external_url.rstrip("/")
        self.stats = NotifyStats()
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._keep_done_s = keep_done_s
        self._kind_of = kind_of
        self._client = httpx.AsyncClient(timeout=timeout_s, headers={"user-agent": "ranomaly-rapp"})
        self._wake = asyncio.Event()
        path = Path(state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    async def close(self) -> None:
        """Close the HTTP client and the state file."""
        await self._client.aclose()
        self._db.close()

    def pending(self) -> int:
        """Notifications queued and not delivered or refused yet."""
        return int(self._db.execute("SELECT COUNT(*) FROM notifications WHERE state = 'pending'").fetchone()[0])

    def health(self) -> dict[str, Any]:
        """Counts for the rApp's health."""
        return {"enabled": True, "pending": self.pending(), **vars(self.stats)}

    def on_incidents(self, events: Sequence[IncidentEvent]) -> None:
        """Queue one notification per event, durably, in one transaction (the collector's callback)."""
        now_ms = int(time.time() * 1000)
        queued = 0
        with self._db:
            for event in events:
                kind = self._kind_of(event) if self._kind_of is not None else None
                message = self._message(event, kind, self._labels(event, kind, now_ms))
                queued += self._insert(event.incident_id, event.event, event.period_start_ms, message)
        self._queued(queued, len(events))

    def on_breaches(self, events: Sequence[BreachEvent]) -> None:
        """Queue one notification per predicted-breach event, durably, in one transaction (the forecast
        service's callback)."""
        with self._db:
            queued = sum(self._insert(e.breach_id, e.event, e.made_at_ms, self._breach_message(e)) for e in events)
        self._queued(queued, len(events))

    def _insert(self, key: str, event: str, period_start_ms: int, message: dict[str, Any]) -> int:
        """Queue a message once per (key, event, period) inside the caller's transaction; 1 if new, else 0."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO notifications (incident_id, event, period_start_ms, body) VALUES (?, ?, ?, ?)",
            (key, event, period_start_ms, json.dumps(message, separators=(",", ":"))),
        )
        return int(cursor.rowcount)

    def _queued(self, queued: int, offered: int) -> None:
        self.stats.queued += queued
        self.stats.repeated += offered - queued
        if queued:
            self._wake.set()

    def _labels(self, event: IncidentEvent, kind: str | None, now_ms: int) -> dict[str, str]:
        """The incident's labels: those of its first notification, else new ones stored with it."""
        row = self._db.execute("SELECT labels FROM alerts WHERE incident_id = ?", (event.incident_id,)).fetchone()
        if row is not None:
            self._db.execute("UPDATE alerts SET last_ms = ? WHERE incident_id = ?", (now_ms, event.incident_id))
            labels: dict[str, str] = json.loads(row[0])
            return labels
        labels = {"alertname": ALERTNAME, "incident_id": event.incident_id, "cell_id": event.cell_id,
                  "node_id": event.node_id, "severity": UNKNOWN_SEVERITY}  # fmt: skip
        if kind is not None and advise(kind).known:
            labels.update(severity=SEVERITY[kind], kind=kind)
        self._db.execute("INSERT INTO alerts VALUES (?, ?, ?)", (event.incident_id, json.dumps(labels), now_ms))
        return labels

    def _message(self, event: IncidentEvent, kind: str | None, labels: dict[str, str]) -> dict[str, Any]:
        """The webhook body of one event: Alertmanager's message, version 4, with one alert."""
        advice = advise(kind)
        top = advice.actions[0]
        resolved = event.event == "close"
        what = {"open": "opened", "update": "updated", "close": f"closed ({event.reason or 'recovered'})"}
        annotations = {
            "summary": f"{kind if advice.known else 'unclassified'} anomaly on cell {event.cell_id} (node "
            f"{event.node_id}): incident {what.get(event.event, event.event)}, score {event.score:.2f}, "
            f"peak {event.peak_score:.2f}",
            "attribution": _attribution(event),
            "advice": f"{'' if advice.known else 'generic (root cause unknown): '}{top.title} "
            f"[{top.control}, confidence {top.confidence:.2f}; advice only, not executed]",
            "model_version": event.model_version,
            "notification_id": f"{event.incident_id}|{event.event}|{event.period_start_ms}",
        }
        ends_ms = event.closed_ms if event.closed_ms is not None else event.period_start_ms
        alert = {
            "status": "resolved" if resolved else "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(event.opened_ms),
            "endsAt": rfc3339(ends_ms) if resolved else ZERO_TIME,
            "generatorURL": f"{self.external_url}/api/v1/remediation" + (f"/{kind}" if advice.known else ""),
            "fingerprint": fingerprint(labels),
        }
        return self._envelope(alert, {"alertname": ALERTNAME, "cell_id": event.cell_id})

    def _breach_message(self, event: BreachEvent) -> dict[str, Any]:
        """The webhook body of one predicted-breach event."""
        labels = {"alertname": BREACH_ALERTNAME, "cell_id": event.cell_id, "node_id": event.node_id,
                  "measurement": event.measurement, "direction": event.direction, "severity": "warning"}  # fmt: skip
        resolved = event.event == "close"
        limit = f"{event.direction} {event.threshold:g}"
        summary = f"{event.measurement} on cell {event.cell_id} (node {event.node_id}) " + (
            f"no longer forecast {limit}" if resolved
            else f"forecast {limit} from {rfc3339(event.breach_ms)}: {event.predicted:.6g}"
        )  # fmt: skip
        annotations = {"summary": summary, "model_version": event.model_version,
                       "notification_id": f"{event.breach_id}|{event.event}|{event.made_at_ms}"}  # fmt: skip
        alert = {
            "status": "resolved" if resolved else "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(event.opened_ms),
            "endsAt": rfc3339(event.made_at_ms) if resolved else ZERO_TIME,
            "generatorURL": f"{self.external_url}/api/v1/forecasts/{quote(event.cell_id, safe='')}",
            "fingerprint": fingerprint(labels),
        }
        return self._envelope(alert, {"alertname": BREACH_ALERTNAME, "cell_id": event.cell_id})

    def _envelope(self, alert: dict[str, Any], group: dict[str, str]) -> dict[str, Any]:
        """Alertmanager's webhook message, version 4, around one alert."""
        return {
            "version": "4",
            "groupKey": _group_key(group),
            "truncatedAlerts": 0,
            "status": alert["status"],
            "receiver": self.receiver,
            "groupLabels": group,
            "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"],
            "externalURL": self.external_url,
            "alerts": [alert],
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until stop is set: every pending notification in order, retrying failures with backoff."""
        delay = self._retry_initial_s
        prune_due = 0.0
        while not stop.is_set():
            if time.monotonic() >= prune_due:
                self.prune()
                prune_due = time.monotonic() + _PRUNE_INTERVAL_S
            self._wake.clear()
            try:
                done = await self.deliver_pending()
            except sqlite3.Error:
                log.exception("noc_state_error", retry_in_s=delay)
                done = False
            if done:
                delay = self._retry_initial_s
                await self._idle(stop)
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for new notifications or stop."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def deliver_pending(self) -> bool:
        """Post pending notifications in queue order; False when one failed and is to be retried later."""
        while True:
            row = self._db.execute(
                "SELECT seq, body FROM notifications WHERE state = 'pending' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return True
            seq, body = int(row[0]), str(row[1])
            try:
                response = await self._client.post(self.url, content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as error:
                self._retry(seq, f"{type(error).__name__}: {error}")
                return False
            status = response.status_code
            if 200 <= status < 300:
                self._finish(seq, "delivered", f"HTTP {status}")
                self.stats.delivered += 1
            elif status >= 500 or status in RETRYABLE:
                self._retry(seq, f"HTTP {status}")
                return False
            else:
                outcome = f"HTTP {status}: {response.text[:200]}"
                self._finish(seq, "refused", outcome)
                self.stats.refused += 1
                log.warning("noc_notification_refused", seq=seq, outcome=outcome)

    def _finish(self, seq: int, state: str, outcome: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE notifications SET state = ?, attempts = attempts + 1, outcome = ?, done_ms = ? WHERE seq = ?",
                (state, outcome, int(time.time() * 1000), seq),
            )

    def _retry(self, seq: int, outcome: str) -> None:
        with self._db:
            self._db.execute("UPDATE notifications SET attempts = attempts + 1, outcome = ? WHERE seq = ?",
                             (outcome, seq))  # fmt: skip
        self.stats.failed_attempts += 1
        self.stats.last_error = outcome
        log.warning("noc_delivery_failed", seq=seq, outcome=outcome)

    def prune(self) -> int:
        """Forget delivered and refused notifications, and incidents, untouched for `keep_done_s`; how many."""
        cutoff_ms = int((time.time() - self._keep_done_s) * 1000)
        with self._db:
            removed = self._db.execute(
                "DELETE FROM notifications WHERE state != 'pending' AND done_ms < ?", (cutoff_ms,)
            ).rowcount
            self._db.execute("DELETE FROM alerts WHERE last_ms < ?", (cutoff_ms,))
        return int(removed)
