"""The deterministic template: every section of a report, every figure formatted from the fact sheet.

Nothing here computes a figure; it formats the sheet's fields with the functions below, so a report's numbers
are the sheet's by construction. The executive summary written here is the one a report falls back to when
the language model's is rejected or not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rapp.remediation import advise
from rapp.reports.facts import DailyFacts, DailyIncident, IncidentFacts, MeasurementChange
from rapp.reports.vocabulary import measurement_words

NA = "n/a"


def value(x: float | None, signed: bool = False) -> str:
    """A measured value: thousands separators from 1,000, one decimal from 10, two below, three significant
    digits under 0.01."""
    if x is None:
        return NA
    sign = "+" if signed else ""
    magnitude = abs(x)
    if magnitude >= 1000:
        return f"{x:{sign},.0f}"
    if magnitude >= 10:
        return f"{x:{sign}.1f}"
    return f"{x:{sign}.2f}" if magnitude >= 0.01 or x == 0 else f"{x:{sign}.3g}"


def percent(x: float | None, signed: bool = False) -> str:
    """A fraction as a whole percentage."""
    return NA if x is None else f"{x:{'+' if signed else ''}.0%}"


def score(x: float) -> str:
    """An anomaly score."""
    return f"{x:.2f}"


def when(ms: int) -> str:
    """A UTC time to the minute."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    """A duration in the two largest units."""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


@dataclass(frozen=True, slots=True)
class Sections:
    """A report's sections in Markdown (forecasts: None when no forecast source was given)."""

    title: str
    executive_summary: str
    technical_details: str
    likely_cause: str
    recommended_actions: str
    alerts: str
    forecasts: str | None = None


def render_markdown(sections: Sections, summary: str, written_by: str) -> str:
    """The whole report as Markdown, with the executive summary that was kept and who wrote it."""
    parts = [
        f"# {sections.title}",
        f"## Executive summary\n\n{summary}\n\n_Written by: {written_by}._",
        f"## Technical details\n\n{sections.technical_details}",
        f"## Likely cause\n\n{sections.likely_cause}",
        f"## Recommended actions\n\n{sections.recommended_actions}",
    ]
    if sections.forecasts is not None:
        parts.append(f"## Forecasts\n\n{sections.forecasts}")
    parts.append(f"## Alerts\n\n{sections.alerts}")
    return "\n\n".join(parts) + "\n"


def _cause(facts: IncidentFacts) -> str:
    cause = facts.root_cause
    if not facts.advice_known:
        return "not classified"
    return f"{cause.kind} ({percent(cause.confidence)} confidence)" if cause.confidence is not None else cause.kind


def headline_change(facts: IncidentFacts) -> MeasurementChange | None:
    """The change a summary leads with: the most attributed measurement that has one, else the largest
    relative change of the headline measurements."""
    measured = [c for c in facts.changes if c.relative_change is not None]
    attributed = {c.measurement: c for c in measured if c.attributed}
    for part in facts.attribution:
        if part.measurement in attributed:
            return attributed[part.measurement]
    return max(measured, key=lambda c: abs(c.relative_change or 0.0), default=None)


def template_summary(facts: IncidentFacts) -> str:
    """The executive summary from the sheet alone."""
    w = facts.window
    status = (
        f"open since {when(w.opened_ms)} ({duration(w.duration_s)} so far)"
        if w.ongoing
        else f"from {when(w.opened_ms)}, closed ({w.close_reason or 'recovered'}) after {duration(w.duration_s)}"
    )
    text = [f"Incident on cell {facts.cell_id} (node {facts.node_id}) {status}; peak score {score(facts.peak_score)}."]
    text.append(f"Likely cause: {_cause(facts)}." if facts.advice_known else "The root cause is not classified.")
    change = headline_change(facts)
    if change is not None:
        unit = f" {change.unit}" if change.unit else ""
        text.append(
            f"{measurement_words(change.measurement).capitalize()} ({change.measurement}) went from "
            f"{value(change.before_mean)} to {value(change.during_mean)}{unit} "
            f"({percent(change.relative_change, signed=True)})."
        )
    text.append(f"First recommended action: {facts.actions[0].title}.")
    return " ".join(text)


def _changes_table(changes: tuple[MeasurementChange, ...]) -> str:
    rows = [
        "| measurement | unit | attributed | hour before | during | change | relative |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in changes:
        rows.append(f"| {c.measurement} | {c.unit or NA} | {'yes' if c.attributed else 'no'} | "
                    f"{value(c.before_mean)} | {value(c.during_mean)} | {value(c.absolute_change, signed=True)} | "
                    f"{percent(c.relative_change, signed=True)} |")  # fmt: skip
    return "\n".join(rows)


def incident_sections(facts: IncidentFacts) -> Sections:
    """The sections of an incident report."""
    w = facts.window
    reason = f" ({w.close_reason})" if w.close_reason else ""
    end = "ongoing" if w.ongoing else f"closed{reason}"
    last = "latest period" if w.ongoing else "last anomalous period"
    period = NA if w.period_s is None else f"{value(w.period_s)} s"
    details = [
        f"- Incident: `{facts.incident_id}`, {facts.events} events",
        f"- Cell: {facts.cell_id}, node {facts.node_id}",
        f"- Window: opened {when(w.opened_ms)}, {end}, {last} {when(w.last_period_ms)}; duration "
        f"{duration(w.duration_s)}; period {period}",
        f"- Score: peak {score(facts.peak_score)}, latest {score(facts.latest_score)} (model {facts.model_version})",
    ]
    if facts.attribution:
        details.append("\nAttribution (share of the excess deviation; deviation over its threshold):\n")
        details.append("| measurement | share | deviation |\n|---|---|---|")
        details.extend(f"| {a.measurement} | {percent(a.share)} | {value(a.deviation)} |" for a in facts.attribution)
    else:
        details.append("- Attribution: none recorded")
    if facts.changes:
        details.append("\nMeasurement changes (mean over the hour before the incident and during it):\n")
        details.append(_changes_table(facts.changes))
    else:
        details.append("- Measurement changes: no KPM history of the cell around the incident")

    cause = facts.root_cause
    if facts.advice_known:
        by = f" by {cause.classifier}" if cause.classifier else ""
        likely = f"**{_cause(facts)}**, classified{by}. {facts.actions[0].rationale}"
    elif cause.classifier is None:
        likely = "**Not classified**: no root-cause classifier is configured. The attribution is the first clue."
    else:
        likely = f"**Not classified**: {cause.classifier} could not tell. The attribution is the first clue."

    actions = [
        f"{a.rank}. **{a.title}** (`{a.id}`): {a.control}, confidence {percent(a.confidence)}. {a.rationale} "
        f"Control: {a.oran_control}."
        for a in facts.actions
    ]
    generic = "" if facts.advice_known else "Generic escalation list (the root cause is unknown). "
    recommended = "\n".join(actions) + f"\n\n{generic}Advice only: nothing is executed automatically."

    if facts.alerts is None:
        alerts = "No NOC notification recorded for this incident (none sent, or no NOC webhook configured)."
    else:
        lines = [f"Severity **{facts.alerts.severity}**; notifications to the NOC:\n"]
        lines.extend(f"- {n.event} (period {when(n.period_start_ms)}): {n.state}, {n.attempts} attempts"
                     + (f", {n.outcome}" if n.outcome else "") for n in facts.alerts.notifications)  # fmt: skip
        alerts = "\n".join(lines)

    forecasts = None
    if facts.forecasts is not None:
        forecasts = (
            "\n".join(
                f"- {b.measurement} forecast {b.direction} its threshold {value(b.threshold)} at "
                f"{when(b.crosses_at_ms)} (predicted {value(b.predicted)})"
                for b in facts.forecasts
            )
            or "No breach predicted for this cell."
        )
    return Sections(
        title=f"Incident report: cell {facts.cell_id}, {when(w.opened_ms)}",
        executive_summary=template_summary(facts),
        technical_details="\n".join(details),
        likely_cause=likely,
        recommended_actions=recommended,
        alerts=alerts,
        forecasts=forecasts,
    )


def _incident_line(i: DailyIncident) -> str:
    state = "ongoing" if i.ongoing else "closed"
    return (f"- `{i.incident_id}` on {i.cell_id} (node {i.node_id}): {i.kind}, opened {when(i.opened_ms)}, "
            f"{duration(i.duration_s)}, {state}, peak score {score(i.peak_score)}")  # fmt: skip


def _incidents(n: int) -> str:
    return f"{n} incident" if n == 1 else f"{n} incidents"


def daily_sections(facts: DailyFacts) -> Sections:
    """The sections of a daily summary."""
    if not facts.incidents:
        summary = f"No incident on {facts.date}."
    else:
        top = facts.by_kind[0]
        longest = facts.longest[0]
        summary = (f"{_incidents(facts.incidents)} on {facts.date} ({facts.opened} opened that day, "
                   f"{len(facts.ongoing)} still open). Most frequent: {top.key} ({top.incidents}). Longest: "
                   f"`{longest.incident_id}` on {longest.cell_id}, {duration(longest.duration_s)}.")  # fmt: skip
    details = ["By cell:\n", "| cell | incidents |", "|---|---|"]
    details.extend(f"| {t.key} | {t.incidents} |" for t in facts.by_cell)
    details.append("\nLongest:\n")
    details.extend(_incident_line(i) for i in facts.longest)
    details.append("\nMost attributed measurements (incidents; mean share):\n")
    details.extend(f"- {t.key}: {t.incidents}; {percent(t.mean_share)}" for t in facts.top_measurements)
    cause = "\n".join(f"- {t.key}: {t.incidents}" for t in facts.by_kind) or "No incident."
    firsts = [(t.key, advise(t.key)) for t in facts.by_kind]
    actions = [f"- {kind}: {a.actions[0].title} (`{a.actions[0].id}`)" for kind, a in firsts if a.known]
    recommended = ("\n".join(actions) or "No classified incident: see each incident's report.") + (
        "\n\nAdvice only: nothing is executed automatically."
    )
    alerts = "\n".join(_incident_line(i) for i in facts.ongoing) or "No incident still open."
    return Sections(
        title=f"Daily summary: {facts.date}",
        executive_summary=summary,
        technical_details="\n".join(details),
        likely_cause=cause,
        recommended_actions=recommended,
        alerts=f"Still open:\n\n{alerts}" if facts.ongoing else alerts,
    )
