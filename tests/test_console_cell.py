"""The cell page's data on a real rApp over a seeded history and a real Redis: every measurement over the
chosen span up to the cell's newest period, its incidents in that span, and the latest forecast round's
values for the cell with the breach limits in force (the round seeded as the forecast service keeps it)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from rapp.forecasts import Forecasts, Round
from tests.auth_helpers import key_header
from tests.console_seed import CLOSED_CELL, MEASUREMENTS, MODEL, OPEN_CELL, OPEN_ID, PERIODS, T0, P, running_rapp

HORIZON = 10


@pytest.fixture(scope="module")
def api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("console-cell")
    with running_rapp(redis_url, folder, forecast_interval_s=3600.0) as running:
        service = running.service.forecasts
        deadline = time.monotonic() + 120
        while service.stats.last_error is None:  # its first round fails (no A1 to name a version): not to overwrite
            assert time.monotonic() < deadline, "timed out waiting for the forecast service's first round"
            time.sleep(0.02)
        values = np.zeros((1, HORIZON, len(MEASUREMENTS)), dtype=np.float32)
        values[0, :, 0] = np.linspace(40, 20, HORIZON)  # DRB.UEThpDl falling
        forecasts = Forecasts(MODEL, MEASUREMENTS, P, T0 + (PERIODS - 1) * P, (OPEN_CELL,), ("n1",), values)
        service.latest = Round(forecasts)
        with httpx.Client(base_url=running.base, timeout=30, headers=key_header(running.api_key)) as client:
            yield client


def test_a_cells_span_holds_its_measurements_incidents_forecast_and_limits(api: httpx.Client) -> None:
    cell = api.get(f"/api/v1/cells/{OPEN_CELL}", params={"hours": 8}).json()
    assert cell["node_id"] == "n1" and cell["end_ms"] == T0 + (PERIODS - 1) * P + 1
    assert [s["measurement"] for s in cell["series"]] == sorted(MEASUREMENTS)
    throughput = next(s for s in cell["series"] if s["measurement"] == "DRB.UEThpDl")
    assert len(throughput["times_ms"]) == PERIODS and throughput["times_ms"][-1] == T0 + (PERIODS - 1) * P
    assert [i["incident_id"] for i in cell["incidents"]] == [OPEN_ID]
    forecast = throughput["forecast"]
    assert forecast["times_ms"] == [T0 + (PERIODS - 1 + h) * P for h in range(1, HORIZON + 1)]
    assert forecast["values"][0] == pytest.approx(40) and forecast["values"][-1] == pytest.approx(20)
    assert throughput["limits"] == [{"direction": "below", "threshold": 3000.0}]
    prb = next(s for s in cell["series"] if s["measurement"] == "RRU.PrbUsedDl")
    assert prb["limits"] == [{"direction": "above", "threshold": 260.0}]
    assert cell["forecast_made_at_ms"] == T0 + (PERIODS - 1) * P and cell["forecast_problem"] is None


def test_a_short_span_leaves_older_incidents_out_and_a_cell_without_forecast_says_why(api: httpx.Client) -> None:
    cell = api.get(f"/api/v1/cells/{CLOSED_CELL}", params={"hours": 1}).json()
    assert all(len(s["times_ms"]) == 60 for s in cell["series"]) and len(cell["series"]) == len(MEASUREMENTS)
    assert cell["incidents"] == []  # its incident closed hours before the span
    assert all(s["forecast"] is None for s in cell["series"])
    assert cell["forecast_made_at_ms"] is None and CLOSED_CELL in cell["forecast_problem"]
    wide = api.get(f"/api/v1/cells/{CLOSED_CELL}", params={"hours": 8}).json()
    assert [i["incident_id"] for i in wide["incidents"]] == [f"{CLOSED_CELL}:{T0 + 200 * P}"]
    assert api.get(f"/api/v1/cells/{CLOSED_CELL}", params={"hours": 0}).status_code == 400
