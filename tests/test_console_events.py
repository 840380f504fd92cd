"""Related incidents grouped into network events, on a real rApp over a seeded history and a real Redis: four
cells of one node alarming together on the same measurements are one event, shown as one row with its cells;
the same node's later incident, another node's incident at the same time and an incident on other measurements
stay on their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ranomaly_contracts.auth.apikey import read_api_key
from ranomaly_contracts.sdl import Attribution, IncidentEvent
from rapp.history import HistoryStore
from tests.auth_helpers import key_header
from tests.console_seed import CLOSED_ID, OPEN_ID, T0, Running, running_rapp

P = 60_000
TRANSPORT = (Attribution("DRB.RlcSduDelayDl", 0.7, 6.0), Attribution("DRB.PacketLossRateUl", 0.3, 4.0))
RADIO = (Attribution("L1M.DL-SS-SINR.SSB", 1.0, 6.0),)
FAULT = 300  # the period the node's transport fault begins (n1-c2's seeded incident opens at 420)
# (cell, node, opening period, attribution): the fault's four cells within three minutes, then the others
SEEDED = [("n9-c1", "n9", FAULT, TRANSPORT), ("n9-c2", "n9", FAULT + 1, TRANSPORT),
          ("n9-c3", "n9", FAULT + 1, TRANSPORT[:1]), ("n9-c4", "n9", FAULT + 3, TRANSPORT),
          ("n9-c5", "n9", FAULT + 2, RADIO), ("n9-c1", "n9", FAULT + 180, TRANSPORT),
          ("n8-c1", "n8", FAULT + 1, TRANSPORT)]  # fmt: skip
FAULT_CELLS = ["n9-c1", "n9-c2", "n9-c3", "n9-c4"]


def _events(cell: str, node: str, opened: int, parts: tuple[Attribution, ...]) -> list[IncidentEvent]:
    incident = f"{cell}:{T0 + opened * P}"
    common = {"incident_id": incident, "cell_id": cell, "node_id": node, "opened_ms": T0 + opened * P,
              "score": 8.0, "peak_score": 9.0, "attribution": parts, "model_version": "v-console"}  # fmt: skip
    return [IncidentEvent(event="open", period_start_ms=T0 + opened * P, **common),  # type: ignore[arg-type]
            IncidentEvent(event="close", period_start_ms=T0 + (opened + 10) * P, closed_ms=T0 + (opened + 7) * P,
                          reason="recovered", **common)]  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture(scope="module")
def console(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("console-events")
    store = HistoryStore(folder / "history")  # written before the rApp starts, as its collector would have
    for n, (cell, node, opened, parts) in enumerate(SEEDED):
        store.write_incidents([f"9{n}-0", f"9{n}-1"], _events(cell, node, opened, parts))
    with running_rapp(redis_url, folder) as running:
        yield running


def test_one_nodes_cells_alarming_together_are_one_network_event(console: Running) -> None:
    answer = httpx.get(f"{console.base}/api/v1/events", headers=key_header(console.api_key), timeout=30)
    events = answer.json()["events"]
    assert len(events) == 1, events
    event = events[0]
    assert event["node_id"] == "n9" and event["cells"] == FAULT_CELLS
    assert event["event_id"] == f"n9@{T0 + FAULT * P}" and event["state"] == "closed"
    assert event["measurements"] == ["DRB.PacketLossRateUl", "DRB.RlcSduDelayDl"]
    assert event["last_ms"] == T0 + (FAULT + 10) * P  # n9-c4's close
    assert httpx.get(f"{console.base}/api/v1/events?node=n8", headers=key_header(console.api_key),
                     timeout=30).json() == {"events": []}  # fmt: skip


def test_the_incidents_page_shows_the_event_as_one_row_with_its_cells(console: Running, tmp_path: Path) -> None:
    with httpx.Client(base_url=console.base, timeout=30) as client:
        client.post("/console/sign-in", data={"name": "gina", "key": read_api_key(console.api_key),
                                              "next": "/console"})  # fmt: skip
        page = client.get("/console/incidents").text
        rows = re.findall(r'<tr class="[^"]*" data-(event|incident)="([^"]+)"', page)
        assert ("event", f"n9@{T0 + FAULT * P}") in rows
        singles = {name for kind, name in rows if kind == "incident"}
        assert singles == {OPEN_ID, CLOSED_ID, f"n9-c5:{T0 + (FAULT + 2) * P}", f"n9-c1:{T0 + (FAULT + 180) * P}",
                           f"n8-c1:{T0 + (FAULT + 1) * P}"}  # fmt: skip
        event_row = page.split(f'data-event="n9@{T0 + FAULT * P}"')[1].split("</tr>")[0]
        assert re.findall(r'data-cell="([^"]+)"', event_row) == FAULT_CELLS
        one_by_one = client.get("/console/incidents?grouped=0").text
        assert "data-event=" not in one_by_one and one_by_one.count("data-incident=") == len(SEEDED) + 2
