"""Incident reports and daily summaries, grounded in a fact sheet (../shared/design/REPORTER.md).

- `facts`: the fact sheets (typed, JSON-ready) built from the collected history, with hooks for a root-cause
  classifier, forecasts and NOC alerts.
- `template`: every section and figure, formatted from the sheet; the fallback executive summary.
- `summarizer`: a small language model writes only the executive summary; a lookup rejects it when it holds a
  digit, a number word, or a cause or action not in the sheet.
- `rootcause`: a classifier on history-only features (`models.rootcause`), trained on labelled data.
- `writer`: `Reporter`, Markdown and JSON.
"""

from rapp.reports.facts import (
    Alerts,
    Classifier,
    DailyFacts,
    FactBuilder,
    IncidentFacts,
    PredictedBreach,
    ReportNotFound,
)
from rapp.reports.summarizer import Generator, Summarizer, Summary, TransformersGenerator
from rapp.reports.writer import DailyReport, IncidentReport, NotifierAlerts, Reporter

__all__ = [
    "Alerts",
    "Classifier",
    "DailyFacts",
    "DailyReport",
    "FactBuilder",
    "Generator",
    "IncidentFacts",
    "IncidentReport",
    "NotifierAlerts",
    "PredictedBreach",
    "ReportNotFound",
    "Reporter",
    "Summarizer",
    "Summary",
    "TransformersGenerator",
]
