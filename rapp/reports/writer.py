"""Reports end to end: fact sheet, template sections, the executive summary (model or template), Markdown and
JSON. `Reporter` is what the rApp holds; `NotifierAlerts` reads the NOC notifications of an incident."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rapp.notify import STATE_FILE
from rapp.reports.facts import (
    Alerts,
    AlertSource,
    Classifier,
    DailyFacts,
    FactBuilder,
    ForecastSource,
    IncidentFacts,
    Notification,
)
from rapp.reports.summarizer import Summarizer, Summary, TransformersGenerator
from rapp.reports.template import Sections, daily_sections, incident_sections, render_markdown
from rapp.settings import RappSettings


def _written_by(summary: Summary, model: str) -> str:
    if summary.written_by == "model":
        return f"model ({model}), checked against the fact sheet"
    if summary.rejection is not None:
        return f"template (the model's summary was rejected: {summary.rejection})"
    return "template"


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """One incident's report."""

    facts: IncidentFacts
    sections: Sections
    summary: Summary
    model: str  # the summarizer's model, or "none"
    seconds: float  # to build the whole report

    def markdown(self) -> str:
        """The report as Markdown."""
        return render_markdown(self.sections, self.summary.text, _written_by(self.summary, self.model))

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data: the summary and who wrote it, the sections, the fact sheet."""
        return {
            "report": "incident",
            "incident_id": self.facts.incident_id,
            "executive_summary": {
                "text": self.summary.text,
                "written_by": self.summary.written_by,
                "rejection": self.summary.rejection,
                "model": self.model,
                "model_text": self.summary.model_text,
                "template_text": self.sections.executive_summary,
            },  # fmt: skip
            "sections": {key: v for key, v in asdict(self.sections).items() if key != "executive_summary"},
            "facts": self.facts.to_json(),
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class DailyReport:
    """One day's summary (written by the template alone)."""

    facts: DailyFacts
    sections: Sections
    seconds: float

    def markdown(self) -> str:
        """The report as Markdown."""
        return render_markdown(self.sections, self.sections.executive_summary, "template")

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "report": "daily",
            "date": self.facts.date,
            "executive_summary": {"text": self.sections.executive_summary, "written_by": "template"},
            "sections": {key: v for key, v in asdict(self.sections).items() if key != "executive_summary"},
            "facts": self.facts.to_json(),
            "seconds": self.seconds,
        }


class Reporter:
    """Writes incident reports and daily summaries from a history folder."""

    def __init__(self, facts: FactBuilder, summarizer: Summarizer) -> None:
        self.facts = facts
        self.summarizer = summarizer
        self.reports = 0

    @classmethod
    def from_settings(
        cls, settings: RappSettings, *, forecasts: ForecastSource | None = None, alerts: AlertSource | None = None
    ) -> Reporter:
        """The rApp's reporter: the classifier file and the language model that the settings name."""
        classifier: Classifier | None = None
        if settings.report_rootcause_path is not None:
            from rapp.reports.rootcause import load_classifier

            classifier = load_classifier(settings.report_rootcause_path)
        generator = None
        if settings.report_summaries:
            generator = TransformersGenerator(settings.report_model_path,
                                              settings.report_model_cache or settings.work_dir / "report-model",
                                              max_new_tokens=settings.report_max_new_tokens,
                                              threads=settings.report_threads, dtype=settings.report_dtype)  # fmt: skip
        builder = FactBuilder(settings.history_dir, classifier=classifier, forecasts=forecasts, alerts=alerts,
                              headline=settings.report_headline_measurements)  # fmt: skip
        return cls(builder, Summarizer(generator))

    @property
    def model(self) -> str:
        """The summarizer's model, or "none"."""
        return self.summarizer.generator.name if self.summarizer.generator is not None else "none"

    def incident_report(self, incident_id: str) -> IncidentReport:
        """An incident's report (blocking; ReportNotFound when the history has no event of it)."""
        began = time.perf_counter()
        facts = self.facts.incident(incident_id)
        sections = incident_sections(facts)
        summary = self.summarizer.summarize(facts, sections.executive_summary)
        self.reports += 1
        return IncidentReport(facts, sections, summary, self.model, time.perf_counter() - began)

    def daily_report(self, day: date) -> DailyReport:
        """A day's summary (blocking; ReportNotFound when the history holds nothing of that day)."""
        began = time.perf_counter()
        facts = self.facts.daily(day)
        self.reports += 1
        return DailyReport(facts, daily_sections(facts), time.perf_counter() - began)

    async def incident(self, incident_id: str) -> IncidentReport:
        """incident_report in a worker thread."""
        return await asyncio.to_thread(self.incident_report, incident_id)

    async def daily(self, day: date) -> DailyReport:
        """daily_report in a worker thread."""
        return await asyncio.to_thread(self.daily_report, day)

    async def warm_up(self) -> None:
        """Load the language model now rather than on the first report (a failure is logged and remembered)."""
        generator = self.summarizer.generator
        if isinstance(generator, TransformersGenerator):
            try:
                await asyncio.to_thread(generator.load)
            except RuntimeError:
                return  # logged by load; reports use the template's summary

    def health(self) -> dict[str, Any]:
        """What the rApp's health shows of the reports."""
        generator = self.summarizer.generator
        return {
            "summaries": "off" if generator is None else "model",
            "model": self.model,
            "model_loaded": isinstance(generator, TransformersGenerator) and generator.loaded,
            "classifier": None if self.facts.classifier is None else self.facts.classifier.name,
            "reports": self.reports,
            **vars(self.summarizer.stats),
        }


class NotifierAlerts:
    """An incident's NOC alert from the notifier's state file (`rapp.notify`), read-only."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / STATE_FILE

    def __call__(self, incident_id: str) -> Alerts | None:
        """The incident's severity and notifications; None when the NOC was never told of it."""
        if not self.path.is_file():
            return None
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            labels = db.execute("SELECT labels FROM alerts WHERE incident_id = ?", (incident_id,)).fetchone()
            rows = db.execute(
                "SELECT event, period_start_ms, state, attempts, outcome FROM notifications WHERE incident_id = ? "
                "ORDER BY seq",
                (incident_id,),
            ).fetchall()
        if labels is None and not rows:
            return None
        severity = str(json.loads(labels[0]).get("severity", "unknown")) if labels else "unknown"
        return Alerts(severity, tuple(Notification(str(e), int(p), str(s), int(a), str(o)) for e, p, s, a, o in rows))
