"""Operators' verdicts as labels in the dataset format (`ranomaly_contracts.dataset`, labels.csv): one row per
judged incident, `node_id, cell_id, kind, start, end` (its first and last anomalous period, ISO 8601 UTC), then
the extra columns `incident_id, verdict, judged_by, judged_at`.

By default only confirmed incidents are written, so the file is a labels.csv to train and evaluate on as it
is (every row an anomaly, its kind the cause the operator named). `include_false_alarms` adds the false alarms
(kind: the classifier's, else "other"), for judging the alarms themselves: readers must then filter on
`verdict`, since a dataset reader takes every row for an anomaly."""

from __future__ import annotations

import pandas as pd

from ranomaly_contracts.dataset import LABEL_COLUMNS, format_times
from ranomaly_contracts.kinds import LABEL_KINDS, OTHER_KIND
from rapp.console.incidents import Incident

EXTRA_COLUMNS = ("incident_id", "verdict", "judged_by", "judged_at")


def _utc(ms: list[int]) -> pd.Series:
    return pd.Series(pd.to_datetime(ms, unit="ms", utc=True))


def labels_csv(incidents: list[Incident], include_false_alarms: bool = False) -> str:
    """The judged incidents as labels.csv text."""
    rows = []
    for i in incidents:
        verdict = i.notes.verdict
        if verdict is None or (verdict.verdict == "false_alarm" and not include_false_alarms):
            continue
        kind = verdict.cause if verdict.cause is not None else i.kind if i.kind in LABEL_KINDS else OTHER_KIND
        rows.append((i.node_id, i.cell_id, kind, i.opened_ms, i.last_ms, i.incident_id, verdict.verdict,
                     verdict.by, verdict.at_ms))  # fmt: skip
    frame = pd.DataFrame(rows, columns=[*LABEL_COLUMNS, *EXTRA_COLUMNS])
    for column in ("start", "end", "judged_at"):
        frame[column] = format_times(_utc(frame[column].tolist())) if rows else frame[column]
    return str(frame.to_csv(index=False))
