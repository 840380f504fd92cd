"""NOC notifications against a real webhook receiver on loopback: Alertmanager v4 messages, firing then
resolved under one fingerprint, retries without duplicates, durable state across restarts, refusals, and
the collector feeding the notifier from the xApp's incident stream in a real Redis."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ranomaly.redis_process import free_port
from ranomaly_contracts.sdl import Attribution, IncidentEvent
from rapp.notify import ALERTNAME, STATE_FILE, ZERO_TIME, Notifier, fingerprint, rfc3339
from tests.test_rapp_collector import Killed, Rig
from tests.test_xapp_service import until
from tests.xapp_helpers import PERIOD_MS, T0

CELL = "gnb-003-c2"
INCIDENT = f"{CELL}:{T0}"
ENVELOPE = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
            "commonAnnotations", "externalURL", "alerts"}  # fmt: skip
ALERT = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}


def incident(event: str, period: int, score: float = 6.0, incident_id: str = INCIDENT) -> IncidentEvent:
    """An event of one incident opened at T0 on CELL; a close ends at the period before."""
    return IncidentEvent(event=event, incident_id=incident_id, cell_id=CELL, node_id="gnb-003", opened_ms=T0,
                         period_start_ms=T0 + period * PERIOD_MS, score=score, peak_score=max(score, 6.0),
                         attribution=(Attribution("DRB.RlcSduDelayDl", 0.7, 3.5),
                                      Attribution("DRB.PacketLossRateUl", 0.3, 1.5)),
                         model_version="v7", closed_ms=T0 + (period - 1) * PERIOD_MS if event == "close" else None,
                         reason="recovered" if event == "close" else "")  # fmt: skip


class Receiver:
    """A webhook on loopback that records the messages it accepts; it can answer 503 to the next N requests,
    or 400 to all of them."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_next = 0
        self.refuse = False
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.requests += 1
            if self.refuse:
                return JSONResponse({"error": "unknown receiver"}, status_code=400)
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=503)
            self.accepted.append(await request.json())
            return JSONResponse({})

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off", access_log=False))  # fmt: skip
        self.url = ""

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        await until(lambda: self.server.started, 5, "the receiver to listen")
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}/hook"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task

    def statuses(self) -> list[tuple[str, str]]:
        """(status, annotations' notification_id) of each accepted message."""
        return [(m["status"], m["alerts"][0]["annotations"]["notification_id"]) for m in self.accepted]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


class Notifiers:
    """Notifiers on one state file, closed at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.made: list[Notifier] = []

    def __call__(self, url: str, **options: Any) -> Notifier:
        settings = {"receiver": "noc", "external_url": "http://rapp:8090", "timeout_s": 2.0,
                    "retry_initial_s": 0.01, "retry_max_s": 0.05, **options}  # fmt: skip
        notifier = Notifier(url, self.path, **settings)
        self.made.append(notifier)
        return notifier

    def rows(self) -> list[tuple[str, str, int]]:
        """(event, state, attempts) of every notification on disk, in queue order."""
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT event, state, attempts FROM notifications ORDER BY seq").fetchall()


@pytest.fixture
async def notifiers(tmp_path: Path) -> AsyncIterator[Notifiers]:
    made = Notifiers(tmp_path / "work" / STATE_FILE)
    yield made
    for notifier in made.made:
        await notifier.close()


class Running:
    """A notifier's delivery task."""

    def __init__(self, notifier: Notifier) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(notifier.run(self.stop))

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


def test_fingerprints_are_alertmanagers() -> None:
    # prometheus/common model: labelSetToFingerprint, TestMetricToFingerprint's cases
    assert fingerprint({}) == f"{14695981039346656037:016x}"
    assert fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == f"{5799056148416392346:016x}"


async def test_an_opened_incident_is_posted_as_an_alertmanager_v4_firing_message(
    receiver: Receiver, notifiers: Notifiers
) -> None:
    notifier = notifiers(receiver.url, kind_of=lambda _: "transport")
    notifier.on_incidents([incident("open", 0)])
    assert notifier.pending() == 1
    assert await notifier.deliver_pending()
    [message] = receiver.accepted
    assert set(message) == ENVELOPE
    assert (message["version"], message["status"], message["receiver"]) == ("4", "firing", "noc")
    assert (message["truncatedAlerts"], message["externalURL"]) == (0, "http://rapp:8090")
    assert message["groupLabels"] == {"alertname": ALERTNAME, "cell_id": CELL}
    assert message["groupKey"] == f'{{}}:{{alertname="{ALERTNAME}", cell_id="{CELL}"}}'
    [alert] = message["alerts"]
    assert set(alert) == ALERT
    labels = {"alertname": ALERTNAME, "incident_id": INCIDENT, "cell_id": CELL, "node_id": "gnb-003",
              "severity": "major", "kind": "transport"}  # fmt: skip
    assert alert["labels"] == labels == message["commonLabels"]
    assert alert["fingerprint"] == fingerprint(labels)
    assert (alert["status"], alert["startsAt"], alert["endsAt"]) == ("firing", "2026-01-05T00:00:00.000Z", ZERO_TIME)
    assert alert["generatorURL"] == "http://rapp:8090/api/v1/remediation/transport"
    notes = alert["annotations"]
    assert notes == message["commonAnnotations"]
    assert "transport anomaly on cell gnb-003-c2" in notes["summary"] and "incident opened" in notes["summary"]
    assert notes["attribution"] == ("DRB.RlcSduDelayDl 70% (deviation 3.5x threshold); "
                                    "DRB.PacketLossRateUl 30% (deviation 1.5x threshold)")  # fmt: skip
    assert notes["advice"].startswith("Check the node's backhaul and fronthaul links [transport_check")
    assert "not executed" in notes["advice"]
    assert notes["notification_id"] == f"{INCIDENT}|open|{T0}"
    assert notifier.pending() == 0 and notifiers.rows() == [("open", "delivered", 1)]
    assert notifier.health() == {"enabled": True, "pending": 0, "queued": 1, "repeated": 0, "delivered": 1,
                                 "refused": 0, "failed_attempts": 0, "last_error": None}  # fmt: skip


async def test_an_incident_fires_updates_and_resolves_under_one_fingerprint(
    receiver: Receiver, notifiers: Notifiers
) -> None:
    kinds = iter([None, "congestion", "congestion"])  # classified only after it opened
    notifier = notifiers(receiver.url, kind_of=lambda _: next(kinds))
    notifier.on_incidents([incident("open", 0), incident("update", 3, score=9.5), incident("close", 8)])
    assert await notifier.deliver_pending()
    opened, updated, closed = (m["alerts"][0] for m in receiver.accepted)
    assert [a["status"] for a in (opened, updated, closed)] == ["firing", "firing", "resolved"]
    assert opened["fingerprint"] == updated["fingerprint"] == closed["fingerprint"]
    assert opened["labels"] == closed["labels"] and "kind" not in closed["labels"]  # fixed by the first message
    assert opened["labels"]["severity"] == "major"
    assert opened["annotations"]["advice"].startswith("generic (root cause unknown): Review the measurements")
    assert opened["generatorURL"] == "http://rapp:8090/api/v1/remediation"
    assert updated["annotations"]["advice"].startswith("Steer traffic to neighbours")
    assert "score 9.50" in updated["annotations"]["summary"] and "score 6.00" in opened["annotations"]["summary"]
    assert "incident closed (recovered)" in closed["annotations"]["summary"]
    assert closed["startsAt"] == opened["startsAt"] and closed["endsAt"] == rfc3339(T0 + 7 * PERIOD_MS)
    assert [m["status"] for m in receiver.accepted] == ["firing", "firing", "resolved"]


async def test_failures_are_retried_in_order_until_delivered_exactly_once(
    receiver: Receiver, notifiers: Notifiers
) -> None:
    receiver.fail_next = 3
    notifier = notifiers(receiver.url)
    running = Running(notifier)
    try:
        notifier.on_incidents([incident("open", 0), incident("close", 2)])
        await until(lambda: len(receiver.accepted) == 2, 5, "both delivered")
        await asyncio.sleep(0.2)  # time for any duplicate to arrive
    finally:
        await running.finish()
    assert receiver.statuses() == [("firing", f"{INCIDENT}|open|{T0}"),
                                   ("resolved", f"{INCIDENT}|close|{T0 + 2 * PERIOD_MS}")]  # fmt: skip
    assert receiver.requests == 5  # three 503s on the open, which held the close back, then one each
    assert notifiers.rows() == [("open", "delivered", 4), ("close", "delivered", 1)]
    assert (notifier.stats.failed_attempts, notifier.stats.delivered, notifier.stats.last_error) == (3, 2, "HTTP 503")


async def test_a_restarted_notifier_resends_nothing_delivered(receiver: Receiver, notifiers: Notifiers) -> None:
    first = notifiers(receiver.url)
    first.on_incidents([incident("open", 0)])
    assert await first.deliver_pending()
    await first.close()
    notifiers.made.remove(first)

    second = notifiers(receiver.url)  # the same state file
    second.on_incidents([incident("open", 0), incident("close", 4)])  # the collector offers the open again
    assert (second.stats.queued, second.stats.repeated) == (1, 1)
    assert await second.deliver_pending()
    assert [status for status, _ in receiver.statuses()] == ["firing", "resolved"]
    assert receiver.requests == 2


async def test_notifications_pending_at_a_restart_are_delivered_after_it(
    receiver: Receiver, notifiers: Notifiers
) -> None:
    first = notifiers(f"http://127.0.0.1:{free_port()}/hook")  # nobody listens: connection refused
    first.on_incidents([incident("open", 0), incident("update", 1, score=8.0)])
    assert not await first.deliver_pending()
    assert first.stats.failed_attempts == 1 and "ConnectError" in str(first.stats.last_error)
    await first.close()
    notifiers.made.remove(first)

    second = notifiers(receiver.url)
    assert second.pending() == 2
    assert await second.deliver_pending()
    assert [notification for _, notification in receiver.statuses()] == [
        f"{INCIDENT}|open|{T0}", f"{INCIDENT}|update|{T0 + PERIOD_MS}"]  # fmt: skip
    assert notifiers.rows() == [("open", "delivered", 2), ("update", "delivered", 1)]


async def test_a_400_is_recorded_as_refused_and_not_retried(receiver: Receiver, notifiers: Notifiers) -> None:
    receiver.refuse = True
    notifier = notifiers(receiver.url)
    running = Running(notifier)
    try:
        notifier.on_incidents([incident("open", 0)])
        await until(lambda: notifier.stats.refused == 1, 5, "the refusal")
        await asyncio.sleep(0.3)  # many retry intervals
        assert receiver.requests == 1
        receiver.refuse = False
        notifier.on_incidents([incident("close", 3)])  # the queue is not stuck behind a refusal
        await until(lambda: len(receiver.accepted) == 1, 5, "the close")
    finally:
        await running.finish()
    assert receiver.requests == 2 and receiver.accepted[0]["status"] == "resolved"
    assert notifiers.rows() == [("open", "refused", 1), ("close", "delivered", 1)]
    with sqlite3.connect(notifiers.path) as db:
        assert db.execute("SELECT outcome FROM notifications WHERE event = 'open'").fetchone()[0].startswith("HTTP 400")


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(redis_url, tmp_path / "history")
    await rig.layer.start()
    yield rig
    await rig.close()


async def test_the_collector_feeds_the_notifier_exactly_once_across_kills(
    rig: Rig, receiver: Receiver, notifiers: Notifiers, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = notifiers(receiver.url)
    events = [incident("open", 0), incident("update", 2, score=9.0), incident("close", 6)]
    await rig.send([], events[:1])
    first = rig.collector(on_incidents=notifier.on_incidents)
    await first.collect_once()  # a new consumer reads its pending entries (none) first
    await first.collect_once()
    assert await notifier.deliver_pending() and receiver.statuses() == [("firing", f"{INCIDENT}|open|{T0}")]

    # killed after the history write, before the notifier queued the update: the restart hands it over
    await rig.send([], events[1:2])
    killed = rig.collector()
    await killed.collect_once()  # nothing pending for this consumer: the read is new entries next
    real = killed.store.write_incidents

    def write_then_die(ids: Sequence[str], batch: Sequence[IncidentEvent]) -> int:
        real(ids, batch)
        raise Killed

    monkeypatch.setattr(killed.store, "write_incidents", write_then_die)
    with pytest.raises(Killed):
        await killed.collect_once()
    assert await rig.pending(rig.keys.incidents) == 1 and notifier.pending() == 0
    await rig.collector(on_incidents=notifier.on_incidents).collect_once()
    assert notifier.stats.queued == 2 and await rig.pending(rig.keys.incidents) == 0

    # killed after the notifier queued the close, before the acknowledgement: the repeat is ignored
    await rig.send([], events[2:])

    def queue_then_die(batch: Sequence[IncidentEvent]) -> None:
        notifier.on_incidents(batch)
        raise Killed

    dying = rig.collector(on_incidents=queue_then_die)
    await dying.collect_once()
    with pytest.raises(Killed):
        await dying.collect_once()
    await rig.collector(on_incidents=notifier.on_incidents).collect_once()
    assert (notifier.stats.queued, notifier.stats.repeated) == (3, 1)
    assert await rig.pending(rig.keys.incidents) == 0

    assert await notifier.deliver_pending()
    assert [status for status, _ in receiver.statuses()] == ["firing", "firing", "resolved"]
    assert receiver.requests == 3
    assert "score 9.00" in receiver.accepted[1]["alerts"][0]["annotations"]["summary"]
