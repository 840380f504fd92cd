"""Forecasts and predicted breaches: a tiny real forecaster (trained here on simulator data, exported to ONNX,
kept as a training job keeps it) over a real history folder; parity with OnnxForecaster, breach detection
and deduplication, the HTTP API on uvicorn, and delivery of a breach to a NOC webhook on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from e2sim.world import World, WorldConfig
from models.artifact import artifact_bytes_digest
from models.forecaster.config import ForecasterConfig
from models.forecaster.export import export_onnx
from models.forecaster.runtime import OnnxForecaster
from models.forecaster.training import train_forecaster
from ranomaly_contracts.dataset import KpmArrays
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import KpmForward
from rapp.api.forecasts import forecasts_router
from rapp.forecasts import (
    BreachEvent,
    BreachTracker,
    ForecasterUnavailable,
    Forecasts,
    ForecastService,
    ForecastSettings,
    Limit,
    find_breaches,
    forecaster_folder,
    keep_forecaster,
    load_forecaster,
    parse_limits,
)
from rapp.history import HistoryStore, kpm_rows
from rapp.notify import BREACH_ALERTNAME, STATE_FILE, ZERO_TIME, Notifier, fingerprint, rfc3339
from tests.auth_helpers import ROUTER_HEADERS, key_guard
from tests.test_rapp_notify import Receiver
from tests.test_xapp_service import until

PERIOD_MS = 60_000
DAY = 1440
VERSION = "fc-1"
TINY = ForecasterConfig(window=24, horizon=6, patch=4, hidden=16, head_hidden=32, epochs=2, windows_per_epoch=2048,
                        batch_size=128)  # fmt: skip
HISTORY = 40  # periods written to the history folder: the last of the simulated day
SHORT_CELL = 1  # a cell that reported only 5 of the window's periods
GAP_CELL = 2  # a cell with a silent spell and a measurement with no value inside the window


@dataclasses.dataclass(frozen=True)
class Rig:
    """Simulated data, the tiny forecaster kept under its version, and a history folder."""

    arrays: KpmArrays
    work_dir: Path
    history_dir: Path
    onnx_path: Path
    history: np.ndarray  # float32 [HISTORY, N, K]: what the history folder holds, NaN where nothing was written


def simulated_day(seed: int, n_cells: int) -> KpmArrays:
    world = World(WorldConfig(seed=seed, n_cells=n_cells))
    block = world.block(world.stream_start(PERIOD_MS, 0, realtime=False).first_period, DAY, PERIOD_MS)
    return KpmArrays(
        times_ms=block.times_ms,
        node_ids=tuple(world.node_ids[n] for n in world.cell_node),
        cell_ids=world.cell_ids,
        measurements=tuple(m.name for m in world.measurements),
        values=block.values.astype(np.float32),
        reported=np.ones(block.values.shape[:2], dtype=bool),
    )


def write_history(
    store: HistoryStore, arrays: KpmArrays, rows: range, values: np.ndarray, period_ms: int = PERIOD_MS
) -> None:
    """One indication per node and period (values [len(rows), N, K], a cell with no value at all left out),
    written as the collector writes a batch of stream entries; the measurements in reverse order, so that
    readers must go by name."""
    indications = []
    for t, row in enumerate(rows):
        for node in dict.fromkeys(arrays.node_ids):
            cells = [i for i, n in enumerate(arrays.node_ids) if n == node and not np.isnan(values[t, i]).all()]
            if not cells:
                continue
            flat = values[t, cells, ::-1].reshape(-1)
            missing = np.flatnonzero(np.isnan(flat))
            header = pb.IndicationHeader(node_id=node, collection_start_ms=int(arrays.times_ms[row]),
                                         granularity_period_ms=period_ms, sequence_number=row)  # fmt: skip
            names = [arrays.cell_ids[i] for i in cells]
            indications.append(pb.Indication(header=header, cell_ids=names, values=np.nan_to_num(flat).tolist(),
                                             no_value=missing.tolist()))  # fmt: skip
    store.write_kpm(["1-0"], [kpm_rows(KpmForward(arrays.measurements[::-1], indications))])


def artifact_folder(root: Path, onnx: Path | None, version: str = VERSION) -> Path:
    """An artifact folder as `ranomaly train` writes it (only what keeping the forecaster reads)."""
    root.mkdir(parents=True)
    manifest: dict[str, object] = {"version": version}
    if onnx is not None:
        (root / "forecaster.onnx").write_bytes(onnx.read_bytes())
        manifest["forecaster"] = {"file": "forecaster.onnx", "sha256": artifact_bytes_digest(onnx.read_bytes()),
                                  "window": TINY.window, "horizon": TINY.horizon}  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    root = tmp_path_factory.mktemp("forecasts")
    arrays = simulated_day(seed=21, n_cells=6)
    onnx_path = export_onnx(train_forecaster(arrays, TINY), root / "forecaster.onnx")
    work_dir = root / "work"
    assert keep_forecaster(artifact_folder(root / "job-1" / "model", onnx_path), work_dir) == forecaster_folder(
        work_dir, VERSION
    )
    history = arrays.values[DAY - HISTORY :].copy()
    history[: HISTORY - 5, SHORT_CELL] = np.nan
    history[-12:-8, GAP_CELL] = np.nan
    history[:, GAP_CELL, 3] = np.nan
    write_history(HistoryStore(root / "history"), arrays, range(DAY - HISTORY, DAY), history)
    return Rig(arrays, work_dir, root / "history", onnx_path, history)


def service(
    rig: Rig,
    version: str | None = VERSION,
    on_breaches: Callable[[Sequence[BreachEvent]], None] | None = None,
    **changes: Any,
) -> ForecastService:
    """A forecast service over the rig, told that `version` is in use."""

    async def current_version() -> str | None:
        return version

    settings = ForecastSettings(rig.work_dir, rig.history_dir, interval_s=0.05, clear_after=2)
    return ForecastService(dataclasses.replace(settings, **changes), current_version, on_breaches)


def forecasts(values: np.ndarray, measurements: tuple[str, ...] = ("delay", "sinr")) -> Forecasts:
    """A hand-made round: one row of values [H, K] per cell "c0", "c1", ..."""
    cells = tuple(f"c{i}" for i in range(len(values)))
    return Forecasts("v9", measurements, PERIOD_MS, 1_000 * PERIOD_MS, cells, ("n1",) * len(cells),
                     np.asarray(values, dtype=np.float32))  # fmt: skip


def test_kept_forecasters_load_with_their_checksum_and_refuse_otherwise(rig: Rig, tmp_path: Path) -> None:
    loaded = load_forecaster(rig.work_dir, VERSION)
    assert (loaded.version, loaded.runner.window, loaded.runner.horizon) == (VERSION, TINY.window, TINY.horizon)
    assert sorted(p.name for p in forecaster_folder(rig.work_dir, VERSION).iterdir()) == [
        "forecaster.onnx", "manifest.json"]  # fmt: skip
    assert keep_forecaster(artifact_folder(tmp_path / "plain", None, "det-only"), tmp_path) is None
    assert not (tmp_path / "models").exists()
    with pytest.raises(ForecasterUnavailable, match="model version nope has no forecaster"):
        load_forecaster(rig.work_dir, "nope")
    keep_forecaster(artifact_folder(tmp_path / "bad", rig.onnx_path, "bad-1"), tmp_path)
    (forecaster_folder(tmp_path, "bad-1") / "forecaster.onnx").write_bytes(b"not the trained forecaster")
    with pytest.raises(ForecasterUnavailable, match="sha256 .* differs from the manifest's"):
        load_forecaster(tmp_path, "bad-1")


def test_limits_from_settings_are_checked() -> None:
    assert parse_limits({"a": {"above": 3, "below": 1}}) == (Limit("a", "above", 3.0), Limit("a", "below", 1.0))
    with pytest.raises(ValueError, match=r"breach_limits\['a'\]: 'over' is neither"):
        parse_limits({"a": {"over": 3}})
    with pytest.raises(ValueError, match=r"breach_limits\['a'\]: give"):
        parse_limits({"a": {}})
    with pytest.raises(ValueError, match="not a finite number"):
        parse_limits({"a": {"below": float("nan")}})


async def test_every_cell_with_enough_history_is_forecast_as_the_onnx_forecaster_does(rig: Rig) -> None:
    forecasting = service(rig)
    assert await forecasting.refresh() == []
    made = forecasting.latest.forecasts
    assert made is not None and forecasting.latest.problem == ""
    cells = [c for i, c in enumerate(rig.arrays.cell_ids) if i != SHORT_CELL]
    assert sorted(made.cell_ids) == sorted(cells) and forecasting.latest.short == {rig.arrays.cell_ids[SHORT_CELL]: 5}
    assert made.values.shape == (len(cells), TINY.horizon, len(rig.arrays.measurements))
    assert made.measurements == rig.arrays.measurements and np.isfinite(made.values).all()
    last = int(rig.arrays.times_ms[-1])
    assert made.made_at_ms == last and made.times_ms.tolist() == [last + h * PERIOD_MS for h in range(1, 7)]

    # parity: the same window taken straight from the simulated values, run through OnnxForecaster
    runner = OnnxForecaster(rig.onnx_path)
    columns = [rig.arrays.cell_ids.index(cell) for cell in made.cell_ids]
    window = rig.history[-TINY.window :, columns].transpose(1, 0, 2)
    times = np.broadcast_to(rig.arrays.times_ms[-TINY.window :], window.shape[:2])
    np.testing.assert_allclose(made.values, runner.predict(window, times), rtol=1e-5, atol=1e-5)
    gap = made.cell(rig.arrays.cell_ids[GAP_CELL])
    assert gap is not None and gap["forecast"][rig.arrays.measurements[3]] == made.values[
        made.index[rig.arrays.cell_ids[GAP_CELL]], :, 3].tolist()  # fmt: skip


def test_a_rising_forecast_breaches_its_limit_and_a_flat_one_does_not() -> None:
    ramp = [[100, 12], [400, 11], [800, 10], [1200, 9], [1600, 1], [2000, 0.5]]
    flat = [[500, 12]] * 6
    round_ = forecasts(np.array([ramp, flat]))
    limits = (Limit("delay", "above", 1000.0), Limit("sinr", "below", 2.0), Limit("not forecast", "above", 0.0))
    found = find_breaches(round_, limits)
    assert sorted(found) == [("c0", "delay", "above"), ("c0", "sinr", "below")]
    delay = found[("c0", "delay", "above")]
    assert (delay.event, delay.cell_id, delay.node_id, delay.threshold) == ("open", "c0", "n1", 1000.0)
    assert (delay.breach_ms, delay.predicted) == (int(round_.times_ms[3]), 1200.0)  # the first period beyond
    assert delay.opened_ms == delay.made_at_ms == round_.made_at_ms and delay.model_version == "v9"
    assert delay.breach_id == f"c0|delay|above|{round_.made_at_ms}"
    sinr = found[("c0", "sinr", "below")]
    assert (sinr.breach_ms, sinr.predicted) == (int(round_.times_ms[4]), 1.0)
    assert find_breaches(round_, (Limit("delay", "above", 2000.0),)) == {}  # equal to the limit is within it


def test_a_breach_is_one_event_until_it_clears_and_a_recurrence_is_a_new_one() -> None:
    tracker = BreachTracker(clear_after=2)
    limits = (Limit("delay", "above", 1000.0),)
    breaching, clean = [[1500.0, 10.0]] * 6, [[100.0, 10.0]] * 6

    def step(*cells: list[list[float]]) -> list[BreachEvent]:
        made = forecasts(np.array(cells))
        return tracker.update(made, find_breaches(made, limits))

    [opened] = step(breaching)
    assert opened.event == "open" and opened.cell_id == "c0"
    assert step(breaching) == []  # still breaching: no second event
    assert step(clean) == []  # one clean forecast is not enough
    assert step(breaching) == []  # the same breach: the clean count starts again
    assert step(clean) == [] and tracker.update(forecasts(np.empty((0, 6, 2))), {}) == []  # c0 not forecast
    [closed] = step(clean)
    assert closed == dataclasses.replace(opened, event="close")  # hand-made rounds share their origin
    assert tracker.active == {} and step(clean) == []
    again, other = step(breaching, breaching)
    assert again == opened and other.cell_id == "c1" and len(tracker.active) == 2


def measurement_limit(made: Forecasts, row: int, k: int) -> tuple[float, int]:
    """A threshold the row's forecast of measurement k crosses, and the first period index beyond it."""
    series = made.values[row, :, k]
    threshold = float((series.min() + series.max()) / 2)
    return threshold, int(np.argmax(series > threshold))


async def test_real_forecasts_raise_breaches_once_and_the_noc_gets_them_firing_then_resolved(
    rig: Rig, tmp_path: Path
) -> None:
    probe = service(rig)
    await probe.refresh()
    made = probe.latest.forecasts
    assert made is not None
    row, k = 0, rig.arrays.measurements.index("RRU.PrbUsedDl")
    threshold, first = measurement_limit(made, row, k)
    assert made.values[row, :, k].max() > threshold
    limits = (Limit("RRU.PrbUsedDl", "above", threshold), Limit("L1M.DL-SS-SINR.SSB", "below", -1e6))

    receiver = Receiver()
    await receiver.start()
    notifier = Notifier(receiver.url, tmp_path / STATE_FILE, receiver="noc", external_url="http://rapp:8090",
                        retry_initial_s=0.01, retry_max_s=0.05)  # fmt: skip
    try:
        forecasting = service(rig, on_breaches=notifier.on_breaches, limits=limits, clear_after=1)
        events = await forecasting.refresh()
        assert events and all(e.event == "open" and e.measurement == "RRU.PrbUsedDl" for e in events)
        cell = made.cell_ids[row]
        [event] = [e for e in events if e.cell_id == cell]
        assert (event.breach_ms, event.predicted) == (int(made.times_ms[first]), float(made.values[row, first, k]))
        assert (event.model_version, event.made_at_ms, event.threshold) == (VERSION, made.made_at_ms, threshold)
        assert await forecasting.refresh() == []  # the same forecast again: nothing new
        assert [e.cell_id for e in forecasting.active()] == [e.cell_id for e in events]

        forecasting.settings = dataclasses.replace(forecasting.settings, limits=(Limit("RRU.PrbUsedDl", "above", 1e9),))
        closed = await forecasting.refresh()  # the operator raised the limit: every breach clears
        assert sorted(e.breach_id for e in closed) == sorted(e.breach_id for e in events)
        assert {e.event for e in closed} == {"close"} and forecasting.active() == []

        assert await notifier.deliver_pending()
        messages = [m for m in receiver.accepted if m["alerts"][0]["labels"]["cell_id"] == cell]
        assert [m["status"] for m in messages] == ["firing", "resolved"]
        fired, resolved = (m["alerts"][0] for m in messages)
        labels = {"alertname": BREACH_ALERTNAME, "cell_id": cell, "node_id": made.node_ids[row],
                  "measurement": "RRU.PrbUsedDl", "direction": "above", "severity": "warning"}  # fmt: skip
        assert fired["labels"] == resolved["labels"] == labels and fired["fingerprint"] == fingerprint(labels)
        assert messages[0]["groupLabels"] == {"alertname": BREACH_ALERTNAME, "cell_id": cell}
        assert (fired["startsAt"], fired["endsAt"]) == (rfc3339(made.made_at_ms), ZERO_TIME)
        assert resolved["endsAt"] == rfc3339(made.made_at_ms)
        assert fired["generatorURL"] == f"http://rapp:8090/api/v1/forecasts/{cell}"
        assert f"RRU.PrbUsedDl on cell {cell}" in fired["annotations"]["summary"]
        assert f"forecast above {threshold:g} from {rfc3339(event.breach_ms)}" in fired["annotations"]["summary"]
        assert "no longer forecast above" in resolved["annotations"]["summary"]
        notifier.on_breaches(events)  # offered again: nothing queued twice
        assert notifier.pending() == 0 and notifier.stats.repeated == len(events)
    finally:
        await notifier.close()
        await receiver.stop()
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM notifications WHERE state = 'delivered'").fetchone()[0] == 2 * len(
            events
        )


async def test_no_forecast_without_history_or_from_history_of_another_period(rig: Rig, tmp_path: Path) -> None:
    empty = service(dataclasses.replace(rig, history_dir=tmp_path / "nothing"))
    assert await empty.refresh() == []
    assert empty.latest.forecasts is None and empty.latest.problem == "no KPM history collected yet"
    other = dataclasses.replace(rig, history_dir=tmp_path / "history")
    write_history(HistoryStore(other.history_dir), rig.arrays, range(DAY - 3, DAY), rig.history[-3:], 30_000)
    forecasting = service(other)
    assert await forecasting.refresh() == [] and forecasting.latest.forecasts is None
    assert (
        forecasting.latest.problem
        == f"the history's period is 30000 ms, the forecaster's (model version {VERSION}) 60000 ms"
    )


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                           access_log=False))  # fmt: skip
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started, 5, "the API to listen")
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5, headers=ROUTER_HEADERS) as client:
            yield client
    finally:
        server.should_exit = True
        await task


def problem_detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
    body: Mapping[str, object] = response.json()
    assert body["status"] == status
    return str(body["detail"])


async def test_the_api_serves_forecasts_and_breaches_and_says_why_when_it_cannot(rig: Rig) -> None:
    forecasting = service(rig, limits=(Limit("L1M.DL-SS-SINR.SSB", "below", 1e6),))  # every cell breaches
    none_yet = service(rig, version=None)
    unknown = service(rig, version="det-only")
    app = FastAPI()
    app.include_router(forecasts_router(forecasting, key_guard()))
    for other, path in ((none_yet, "/none"), (unknown, "/unknown")):
        sub = FastAPI()
        sub.include_router(forecasts_router(other, key_guard()))
        app.mount(path, sub)
    async with serving(app) as client:
        detail = problem_detail(await client.get("/api/v1/forecasts"), 503)
        assert detail == "no forecasts: no forecast made yet"
        await none_yet.refresh()
        await unknown.refresh()
        detail = problem_detail(await client.get("/none/api/v1/forecasts/x"), 503)
        assert "no model version in use" in detail
        assert "model version det-only has no forecaster" in problem_detail(
            await client.get("/unknown/api/v1/forecasts"), 503
        )

        events = await forecasting.refresh()
        made = forecasting.latest.forecasts
        assert made is not None and len(events) == len(made.cell_ids)
        listing = (await client.get("/api/v1/forecasts")).json()
        assert listing["cells"] == sorted(made.cell_ids) and listing["horizon"] == TINY.horizon
        assert listing["period_s"] == 60 and listing["model_version"] == VERSION
        cell = made.cell_ids[0]
        response = await client.get(f"/api/v1/forecasts/{cell}")
        assert response.status_code == 200
        body = response.json()
        assert body["cell_id"] == cell and body["node_id"] == made.node_ids[0]
        assert body["times"] == listing["times"] and len(body["times"]) == TINY.horizon
        assert body["made_at"] == listing["made_at"] == rfc3339(made.made_at_ms)
        assert set(body["forecast"]) == set(rig.arrays.measurements)
        np.testing.assert_allclose(np.array(list(body["forecast"].values())).T, made.values[0], rtol=1e-6)

        detail = problem_detail(await client.get("/api/v1/forecasts/gnb-999-c9"), 404)
        assert detail.startswith("cell 'gnb-999-c9' has no forecast: no KPM history of it")
        short = rig.arrays.cell_ids[SHORT_CELL]
        detail = problem_detail(await client.get(f"/api/v1/forecasts/{short}"), 404)
        assert detail == f"cell {short!r} has no forecast: it reported in 5 of the last 24 periods, 12 needed"

        breaches = (await client.get("/api/v1/breaches")).json()
        assert breaches["limits"] == [{"measurement": "L1M.DL-SS-SINR.SSB", "direction": "below", "threshold": 1e6}]
        assert sorted(b["cell_id"] for b in breaches["active"]) == sorted(made.cell_ids)
        assert [b["breach_id"] for b in breaches["events"]] == [e.breach_id for e in reversed(events)]
        first = breaches["events"][-1]
        assert first["breach_at"] == rfc3339(int(made.times_ms[0])) and first["event"] == "open"


async def test_the_service_loop_runs_rounds_until_stopped(rig: Rig) -> None:
    forecasting = service(rig)
    stop = asyncio.Event()
    task = asyncio.create_task(forecasting.run(stop))
    await until(lambda: forecasting.stats.rounds >= 2, 5, "two rounds")
    stop.set()
    await asyncio.wait_for(task, 2)
    health = forecasting.health()
    assert health["model_version"] == VERSION and health["cells"] == len(rig.arrays.cell_ids) - 1
    assert health["problem"] is None and health["last_error"] is None
