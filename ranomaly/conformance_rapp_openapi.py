"""The rApp against its own OpenAPI document (`/openapi.json`), for `ranomaly conformance`.

The server is `conformance_rapp.serve_rapp`'s (a real rApp managing a real xApp, its PMS seeds), with more
seeded before it starts: a history of one cell with a closed incident (`HISTORY_DAY`), a promoted model signed
with the rApp's own key that carries a tiny forecaster trained on that history (kept as a training job keeps
it), a drift check every few seconds over half-hour windows, and room in the job queue; once it runs, a
rollback job and a silence (their ids go to the dictionaries), and the first forecast round and drift check
are awaited. The document is the one the rApp serves, with the API key as its only security scheme (the
served one offers a bearer token or the key, and schemathesis would send a bad token beside the valid key).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from models.artifact import artifact_bytes_digest, write_artifact
from models.forecaster.config import ForecasterConfig
from models.trivial import trivial_artifact
from ranomaly.conformance import Deviation, Served, Target
from ranomaly.conformance_rapp import POLICY, pms_target, serve_rapp
from ranomaly_contracts.dataset import to_arrays
from ranomaly_contracts.redis_client import redis_client
from ranomaly_contracts.sdl import PREFIX, Attribution, IncidentEvent, sdl_keys
from rapp.forecasts import FORECASTER_FILE, keep_forecaster
from rapp.history import HistoryStore, KpmRows, history_dataset
from rapp.registry import ModelRegistry
from rapp.remediation import REMEDIATION
from rapp.signing import signing_key

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC
HISTORY_DAY = "2026-01-05"
PERIOD_MS = 60_000
CELL, NODE = "c1", "n1"
INCIDENT = f"{CELL}:{T0 + 30 * PERIOD_MS}"
MODEL = "conformance-model-1"
MEASUREMENTS = ("DRB.UEThpDl", "RRU.PrbUsedDl")
# a forecaster small enough to train in a second on the seeded history (120 periods: a window and horizon fit)
FORECASTER = ForecasterConfig(window=24, horizon=6, patch=4, hidden=16, head_hidden=32, epochs=1,
                              windows_per_epoch=256, batch_size=128)  # fmt: skip
# a drift check every 3.6 s over 30-minute windows (periods 90-119 against 60-89: no incident, no drift)
DRIFT = {"RANOMALY_RAPP_DRIFT_CHECK_EVERY_H": "0.001", "RANOMALY_RAPP_DRIFT_WINDOW_H": "0.5"}
SEEDED_S = 60.0  # how long the first forecast round and drift check may take once the rApp answers
API_KEY_SCHEME = "APIKeyHeader"
JOBS_WAITING_MAX = 100_000
# bodies bounded in bytes (rapp.api.jobs.BODY_MAX, above the longest valid one): a larger one is refused with 413
BOUNDED = ("POST /api/v1/jobs/training", "POST /api/v1/models/{version}/rollback")
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


def api_key_only(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the API key as the only security scheme (operations that need none keep none)."""
    schemes = document["components"]["securitySchemes"]
    document["components"]["securitySchemes"] = {API_KEY_SCHEME: schemes[API_KEY_SCHEME]}
    for item in document["paths"].values():
        for operation in item.values():
            if operation.get("security"):
                operation["security"] = [{API_KEY_SCHEME: []}]
    return document


def write_history(root: Path) -> None:
    """Two hours of one cell (a little noise around a steady level), a closed incident over periods 30 to 59,
    as the collector writes them."""
    store = HistoryStore(root)
    periods = np.arange(120)
    level = np.array([[40.0, 75.0] if 30 <= p < 60 else [100.0, 50.0] for p in periods])
    values = level + np.random.default_rng(0).normal(0.0, [2.0, 1.0], level.shape)
    store.write_kpm(["1-0"], [KpmRows(MEASUREMENTS, T0 + periods * PERIOD_MS, [NODE] * 120, [CELL] * 120, values,
                                      frozenset({PERIOD_MS}))])  # fmt: skip
    parts = (Attribution(MEASUREMENTS[0], 1.0, 5.0),)

    def event(kind: str, period: int, closed: int | None = None) -> IncidentEvent:
        return IncidentEvent(event=kind, incident_id=INCIDENT, cell_id=CELL, node_id=NODE,
                             opened_ms=T0 + 30 * PERIOD_MS, period_start_ms=T0 + period * PERIOD_MS, score=5.0,
                             peak_score=6.0, attribution=parts if kind != "close" else (), model_version=MODEL,
                             closed_ms=None if closed is None else T0 + closed * PERIOD_MS,
                             reason="recovered" if kind == "close" else "")  # fmt: skip

    store.write_incidents(["2-0", "2-1"], [event("open", 31), event("close", 61, closed=59)])


def train_seed_forecaster(history: Path, folder: Path) -> dict[str, Any]:
    """A tiny forecaster trained on the history, exported into the artifact folder; its manifest entry."""
    from models.forecaster.export import export_onnx  # torch: only when a run seeds, not when tests import this
    from models.forecaster.training import train_forecaster

    trained = train_forecaster(to_arrays(history_dataset(history)), FORECASTER)
    path = export_onnx(trained, folder / FORECASTER_FILE)
    return {"file": FORECASTER_FILE, "sha256": artifact_bytes_digest(path.read_bytes()),
            "window": trained.window, "horizon": trained.horizon}  # fmt: skip


async def _publish(redis_url: str, work: Path) -> None:
    """The trivial model with a forecaster, promoted and signed with the rApp's key; its forecaster kept."""
    fields, onnx = trivial_artifact(MEASUREMENTS, PERIOD_MS / 1000, version=MODEL)
    folder = work / "seed-model"
    folder.mkdir(exist_ok=True)
    fields["forecaster"] = train_seed_forecaster(work.parent / "history", folder)
    write_artifact(folder, onnx, fields)
    keep_forecaster(folder, work)
    redis = redis_client(redis_url)
    try:
        await ModelRegistry(redis, sdl_keys(PREFIX), signing_key(None, work)).publish(folder)
    finally:
        await redis.aclose()


def _prepare(redis_url: str, work: Path) -> dict[str, str]:
    """The history beside the rApp's work folder, a promoted model with a forecaster signed with the rApp's
    key, frequent drift checks; room in the job queue for every job the run asks for (trainings must not crowd
    out the rollbacks)."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work.parent / "history", ignore_errors=True)  # a previous run's, appended to, would be read too
    write_history(work.parent / "history")
    asyncio.run(_publish(redis_url, work))
    return {"RANOMALY_RAPP_JOBS_WAITING_MAX": str(JOBS_WAITING_MAX), **DRIFT}


def _await_seeded(client: httpx.Client) -> None:
    """Wait until the first forecast round and drift check have answers (RuntimeError after SEEDED_S)."""
    deadline = time.monotonic() + SEEDED_S
    for path in ("/api/v1/forecasts", "/api/v1/drift"):
        while (answer := client.get(path)).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"seeding GET {path}: {answer.status_code} {answer.text}")
            time.sleep(0.2)


@contextmanager
def serve_rapp_seeded(folder: Path) -> Iterator[Served]:
    """`serve_rapp` with the history, the model, a rollback job, a silence, a forecast round and a drift
    check; its document saved for `write_spec`."""
    with serve_rapp(folder, _prepare) as served:
        with httpx.Client(base_url=served.base_url, timeout=10, headers=served.headers) as client:
            (folder / "openapi.json").write_text(json.dumps(client.get("/openapi.json").raise_for_status().json()))
            job = client.post(f"/api/v1/models/{MODEL}/rollback", json={"reason": "conformance seed"})
            silence = client.post("/api/v1/silences", json={"scope": "cell", "target": CELL, "minutes": 600})
            for seeded, status in ((job, 202), (silence, 201)):
                if seeded.status_code != status:
                    raise RuntimeError(f"seeding {seeded.request.url.path}: {seeded.status_code} {seeded.text}")
            _await_seeded(client)
        policies = [POLICY, silence.json()["policy_id"]]  # the PMS policy, and the silence (a policy too)
        yield Served(served.base_url, served.headers, {"job_ids": [job.json()["id"]], "policy_ids": policies})


def write_spec(folder: Path) -> Path:
    """The served document with the API key alone, as JSON in the run's folder."""
    path = folder / "rapp-openapi.json"
    path.write_text(json.dumps(api_key_only(json.loads((folder / "openapi.json").read_text()))))
    return path


_V2 = "/a1-policy/v2"
DEVIATIONS = (
    Deviation("GET /api/v1/incidents", "ST202", "400 for a cursor this API did not give (cursors are opaque)"),
    Deviation(f"PUT {_V2}/policies", "ST202", "400: policy_data fails its type's schema (as rapp-pms)"),
    Deviation(f"PUT {_V2}/configuration", "ST202", "400: not the configuration of the rApp's RIC (as rapp-pms)"),
)


def openapi_target() -> Target:
    """The rApp against its own OpenAPI document."""
    pms = pms_target().settings
    parameters = {**pms["parameters"],  # type: ignore[dict-item]
                  "path.incident_id": {"dictionary": "incident_ids", "probability": 0.5},
                  "path.version": {"dictionary": "versions", "probability": 0.5},
                  "path.job_id": {"dictionary": "job_ids", "probability": 0.5},
                  "path.cell_id": {"dictionary": "cell_ids", "probability": 0.5},
                  "path.kind": {"dictionary": "kinds", "probability": 0.5},
                  "query.date": {"dictionary": "days", "probability": 0.5}}  # fmt: skip
    rejected = {"negative_data_rejection": {"expected-statuses": REJECTED}}
    bounded = [{"include-name": operation, "checks": rejected} for operation in BOUNDED]
    return Target(
        name="rapp-openapi",
        spec=write_spec,
        serve=serve_rapp_seeded,
        settings={
            **{k: v for k, v in pms.items() if k.startswith("dictionaries.")},
            "dictionaries.incident_ids": {"values": [INCIDENT]},
            "dictionaries.versions": {"values": [MODEL]},
            "dictionaries.cell_ids": {"values": [CELL]},
            "dictionaries.days": {"values": [HISTORY_DAY]},
            "dictionaries.kinds": {"values": list(REMEDIATION)},
            "parameters": parameters,
            "operations": [*pms["operations"], *bounded],
        },
        deviations=DEVIATIONS,
    )
