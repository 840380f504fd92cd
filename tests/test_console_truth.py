"""The ground truth beside an incident (the demo's labels.csv, `console_truth_labels`), on a real rApp over a
seeded history and a real Redis: the incident's own label is shown, an incident without one is called a false
alarm, and without the setting the page says nothing of it."""

from __future__ import annotations

from pathlib import Path

import httpx

from ranomaly_contracts.auth.apikey import read_api_key
from tests.console_seed import CLOSED_ID, OPEN_CELL, OPEN_ID, Running, running_rapp


def _page(console: Running, incident: str) -> str:
    with httpx.Client(base_url=console.base, timeout=30) as client:
        client.post("/console/sign-in", data={"name": "hal", "key": read_api_key(console.api_key), "next": "/console"})
        return client.get(f"/console/incidents/{incident}").text


def test_the_incident_page_shows_the_ground_truth_label_beside_it(redis_url: str, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("node_id,cell_id,kind,start,end\n"
                      f"n1,{OPEN_CELL},transport,2026-01-05T06:55:00Z,2026-01-05T07:59:00Z\n"
                      "n2,n2-c2,interference,2026-01-05T03:00:00Z,2026-01-05T03:30:00Z\n")  # fmt: skip
    with running_rapp(redis_url, tmp_path / "with", console_truth_labels=labels) as console:
        opened = _page(console, OPEN_ID)
        assert 'id="truth">transport from 2026-01-05 06:55:00 UTC to 2026-01-05 07:59:00 UTC</dd>' in opened
        closed = _page(console, CLOSED_ID)  # n2-c1: no label of its own (n2-c2's is another cell)
        assert 'id="truth">none: no anomaly was injected on this cell then (a false alarm)</dd>' in closed
    with running_rapp(redis_url, tmp_path / "without") as console:
        assert 'id="truth"' not in _page(console, OPEN_ID)
