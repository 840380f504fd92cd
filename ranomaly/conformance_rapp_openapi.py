"""The rApp against its own OpenAPI document (`/openapi.json`), for `ranomaly conformance`.

The server is `conformance_rapp.serve_rapp`'s (a real rApp managing a real xApp, its PMS seeds), with more
seeded before it starts: a history of one cell with a closed incident (`HISTORY_DAY`), a promoted model signed
with the rApp's own key, and room in the job queue; once it runs, a rollback job and a silence (their ids go
to the dictionaries). The document is the one the rApp serves, with the API key as its only security scheme
(the served one offers a bearer token or the key, and schemathesis would send a bad token beside the valid
key). Left out of the run, as docs/conformance.md says: the forecasts and the drift check, which need a
forecaster trained on days of history (tests/test_rapp_forecasts.py and tests/test_rapp_drift.py cover them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from models.artifact import write_artifact
from models.trivial import trivial_artifact
from ranomaly.conformance import Deviation, Served, Target
from ranomaly.conformance_rapp import POLICY, pms_target, serve_rapp
from ranomaly_contracts.redis_client import redis_client
from ranomaly_contracts.sdl import PREFIX, Attribution, IncidentEvent, sdl_keys
from rapp.history import HistoryStore, KpmRows
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
NOT_RUN = ("/api/v1/forecasts", "/api/v1/drift")
API_KEY_SCHEME = "APIKeyHeader"
JOBS_WAITING_MAX = 100_000
# bodies bounded in bytes (rapp.api.jobs.BODY_MAX, above the longest valid one): a larger one is refused with 413
BOUNDED = ("POST /api/v1/jobs/training", "POST /api/v1/models/{version}/rollback")
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


def api_key_only(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the API key as the only security scheme (operations that need none keep none)."""
    schemes = document["components"]["securitySchemes"]
    document["components"]["securitySchemes"] = {API_KEY_SCHEME: schemes[API_KEY_SCHEME]}
    paths = {p: item for p, item in document["paths"].items() if not p.startswith(NOT_RUN)}
    for item in paths.values():
        for operation in item.values():
            if operation.get("security"):
                operation["security"] = [{API_KEY_SCHEME: []}]
    return {**document, "paths": paths}


def write_history(root: Path) -> None:
    """Two hours of one cell, a closed incident over periods 30 to 59, as the collector writes them."""
    store = HistoryStore(root)
    periods = np.arange(120)
    values = np.array([[40.0, 75.0] if 30 <= p < 60 else [100.0, 50.0] for p in periods])
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


async def _publish(redis_url: str, work: Path) -> None:
    fields, onnx = trivial_artifact(MEASUREMENTS, PERIOD_MS / 1000, version=MODEL)
    folder = work / "seed-model"
    write_artifact(folder, onnx, fields)
    redis = redis_client(redis_url)
    try:
        await ModelRegistry(redis, sdl_keys(PREFIX), signing_key(None, work)).publish(folder)
    finally:
        await redis.aclose()


def _prepare(redis_url: str, work: Path) -> dict[str, str]:
    """The history beside the rApp's work folder and a promoted model signed with the rApp's key; room in the
    job queue for every job the run asks for (trainings must not crowd out the rollbacks)."""
    work.mkdir(parents=True, exist_ok=True)
    write_history(work.parent / "history")
    asyncio.run(_publish(redis_url, work))
    return {"RANOMALY_RAPP_JOBS_WAITING_MAX": str(JOBS_WAITING_MAX)}


@contextmanager
def serve_rapp_seeded(folder: Path) -> Iterator[Served]:
    """`serve_rapp` with the history, the model and a rollback job; its document saved for `write_spec`."""
    with serve_rapp(folder, _prepare) as served:
        with httpx.Client(base_url=served.base_url, timeout=10, headers=served.headers) as client:
            (folder / "openapi.json").write_text(json.dumps(client.get("/openapi.json").raise_for_status().json()))
            job = client.post(f"/api/v1/models/{MODEL}/rollback", json={"reason": "conformance seed"})
            silence = client.post("/api/v1/silences", json={"scope": "cell", "target": CELL, "minutes": 600})
            for seeded, status in ((job, 202), (silence, 201)):
                if seeded.status_code != status:
                    raise RuntimeError(f"seeding {seeded.request.url.path}: {seeded.status_code} {seeded.text}")
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
    Deviation(f"PUT {_V2}/services", "ST202", "400: an empty service_id or a negative interval (as rapp-pms)"),
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
