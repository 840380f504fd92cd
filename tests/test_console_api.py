"""The console's JSON routes on a real rApp over a seeded history (tests/console_seed.py) and a real Redis:
the network view, incidents filtered and sorted, the plot's normal band, operators' verdicts kept and exported
as labels.csv in the dataset format."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from ranomaly_contracts.dataset import LABEL_COLUMNS
from rapp.console.api import IncidentIdConvertor
from tests.auth_helpers import key_header
from tests.console_seed import (
    CLOSED_CELL,
    CLOSED_ID,
    MODEL,
    OPEN_CELL,
    OPEN_ID,
    PLOT_POINTS,
    T0,
    P,
    running_rapp,
)


@pytest.fixture(scope="module")
def api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with running_rapp(redis_url, tmp_path_factory.mktemp("console-api")) as running:
        with httpx.Client(base_url=running.base, timeout=30, headers=key_header(running.api_key)) as client:
            yield client


def test_every_console_route_needs_the_rapps_credential(api: httpx.Client) -> None:
    for method, path in (("GET", "/api/v1/network"), ("GET", "/api/v1/incidents"), ("GET", "/api/v1/labels.csv"),
                         ("POST", f"/api/v1/incidents/{CLOSED_ID}/acknowledge"), ("GET", "/api/v1/events"),
                         ("GET", "/api/v1/silences"), ("POST", "/api/v1/silences"), ("GET", "/api/v1/cells/n1-c1"),
                         ("DELETE", "/api/v1/silences/silence.cell.n1-c1")):  # fmt: skip
        assert httpx.request(method, f"{api.base_url}{path}", json={}).status_code == 401, path


def test_the_network_view_holds_every_cell_by_node_the_open_incident_and_the_model(api: httpx.Client) -> None:
    view = api.get("/api/v1/network").json()
    assert view["counts"] == {"warming_up": 1, "normal": 2, "anomalous": 1, "silenced": 1}
    assert [(n["node_id"], len(n["cells"])) for n in view["cells"]] == [("n1", 3), ("n2", 2)]
    assert view["open_incidents"]["total"] == 1 and view["open_incidents"]["by_kind"] == {"unclassified": 1}
    assert view["open_incidents"]["incidents"][0]["incident_id"] == OPEN_ID
    assert view["model"]["version"] == MODEL and view["model"]["created"] == "2026-01-01T00:00:00Z"
    assert view["model"]["age_s"] > 0
    assert view["near_rt"]["available"] is False  # nothing answers at the A1 URL
    rate = view["alarm_rate"]
    assert len(rate["hour_ms"]) == 24 and sum(rate["opened"]) == 2  # both incidents opened in the last 24 h


def test_incidents_are_filtered_and_sorted(api: httpx.Client) -> None:
    def ids(**query: str) -> list[str]:
        return [i["incident_id"] for i in api.get("/api/v1/incidents", params=query).json()["incidents"]]

    assert ids() == [OPEN_ID, CLOSED_ID]  # newest first
    assert ids(order="asc") == [CLOSED_ID, OPEN_ID]
    assert ids(state="open") == [OPEN_ID] and ids(state="closed") == [CLOSED_ID]
    assert ids(node="n2") == [CLOSED_ID] and ids(cell=OPEN_CELL) == [OPEN_ID]
    assert ids(kind="congestion") == [] and ids(sort="duration") == [OPEN_ID, CLOSED_ID]
    closed = api.get(f"/api/v1/incidents/{CLOSED_ID}").json()
    assert closed["state"] == "closed" and closed["duration_s"] == 30 * 60 and closed["operator"]["review"] == "new"
    assert api.get("/api/v1/incidents/nowhere:1").status_code == 404


def test_the_plot_shows_the_attributed_measurements_against_the_cells_normal_band(api: httpx.Client) -> None:
    plot = api.get(f"/api/v1/incidents/{OPEN_ID}/plot").json()
    assert [s["measurement"] for s in plot["series"]] == ["DRB.UEThpDl", "RRU.PrbUsedDl"]
    thp = plot["series"][0]
    assert len(thp["times_ms"]) == len(thp["values"]) == len(thp["level"]) == PLOT_POINTS
    during = thp["times_ms"].index(T0 + 450 * P)
    assert 95 < thp["level"][during] < 105 and thp["low"][during] < thp["level"][during] < thp["high"][during]
    assert thp["values"][during] < thp["low"][during]  # the incident's throughput lies below the band
    assert "own history" in plot["band"]["method"] and plot["band"]["samples"] > 0


def test_verdicts_are_kept_with_who_and_when_and_exported_as_labels(api: httpx.Client) -> None:
    wrong = api.post(f"/api/v1/incidents/{CLOSED_ID}/verdict", json={"verdict": "confirmed", "cause": "gremlins"})
    assert wrong.status_code == 422 and "cause" in wrong.json()["detail"]
    assert api.post(f"/api/v1/incidents/{CLOSED_ID}/acknowledge", json={}).status_code == 200
    note = api.post(f"/api/v1/incidents/{CLOSED_ID}/notes", json={"by": "bob", "text": "<b>SINR</b> dip"})
    assert note.json()["notes"][0]["text"] == "<b>SINR</b> dip"
    judged = api.post(f"/api/v1/incidents/{CLOSED_ID}/verdict",
                      json={"by": "carol", "verdict": "confirmed", "cause": "interference"}).json()  # fmt: skip
    assert judged["acknowledged"]["by"] == "api-key" and judged["verdict"]["by"] == "carol via api-key"
    assert judged["review"] == "confirmed" and judged["verdict"]["at_ms"] > 0
    assert [i["incident_id"] for i in api.get("/api/v1/incidents?review=confirmed").json()["incidents"]] == [CLOSED_ID]
    labels = pd.read_csv(io.StringIO(api.get("/api/v1/labels.csv").text))
    assert list(labels.columns[:5]) == list(LABEL_COLUMNS)
    row = labels[labels["incident_id"] == CLOSED_ID].iloc[0]
    judged = (row["cell_id"], row["kind"], row["verdict"], row["judged_by"])
    assert judged == (CLOSED_CELL, "interference", "confirmed", "carol via api-key")
    assert (row["start"], row["end"]) == ("2026-01-05T03:20:00Z", "2026-01-05T03:50:00Z")


def test_incidents_page_by_cursor_and_filter_by_time_range(api: httpx.Client) -> None:
    first = api.get("/api/v1/incidents", params={"limit": 1}).json()
    assert [i["incident_id"] for i in first["incidents"]] == [OPEN_ID] and first["next_cursor"]
    second = api.get("/api/v1/incidents", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [i["incident_id"] for i in second["incidents"]] == [CLOSED_ID] and second["next_cursor"] is None
    for cursor in ("%%%", "É=Ô", "bm93aGVyZToy"):  # not base64, not ASCII; an incident not listed ("nowhere:2")
        refused = api.get("/api/v1/incidents", params={"cursor": cursor})
        assert refused.status_code == 400 and "cursor" in refused.json()["detail"], cursor
    assert api.get("/api/v1/incidents", params={"limit": 0}).status_code == 400
    opened, closed = (api.get(f"/api/v1/incidents/{i}").json() for i in (OPEN_ID, CLOSED_ID))
    assert closed["last_ms"] < opened["opened_ms"], "the seeded incidents do not overlap"

    def ids(**query: int) -> list[str]:
        return [i["incident_id"] for i in api.get("/api/v1/incidents", params=query).json()["incidents"]]

    assert ids(since_ms=closed["last_ms"] + 1) == [OPEN_ID]
    assert ids(until_ms=opened["opened_ms"]) == [CLOSED_ID]
    assert ids(since_ms=closed["last_ms"], until_ms=opened["opened_ms"] + 1) == [OPEN_ID, CLOSED_ID]


def test_an_incidents_sub_resources_are_not_the_incident_and_answer_with_their_own_methods(api: httpx.Client) -> None:
    for action in ("acknowledge", "notes", "verdict"):
        refused = api.request("OPTIONS", f"/api/v1/incidents/{CLOSED_ID}/{action}")
        assert refused.status_code == 405 and refused.headers["allow"] == "POST", action
        assert api.get(f"/api/v1/incidents/{CLOSED_ID}/{action}").status_code == 405, action
    assert api.request("OPTIONS", "/api/v1/jobs/training").headers["allow"] == "POST"  # not /jobs/{job_id}'s GET
    assert api.get(f"/api/v1/incidents/{CLOSED_ID}").json()["incident_id"] == CLOSED_ID
    matches = re.compile(f"^{IncidentIdConvertor.regex}$").match
    assert matches("n1/c1:1767571200000") and matches("c1:notes") and not matches("c1:1/notes")


def test_a_verdict_the_document_allows_is_one_the_route_takes(api: httpx.Client) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert (
        schemas["Confirmed"]["required"] == ["verdict", "cause"]
        and "enum" in schemas["Confirmed"]["properties"]["cause"]
    )
    for body in ({"verdict": "confirmed"}, {"verdict": ""}):
        refused = api.post(f"/api/v1/incidents/{OPEN_ID}/verdict", json=body)
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json", body
