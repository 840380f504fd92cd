"""The ground truth beside an incident, where there is one: the demo's simulated network knows the anomalies it
injected and writes them as a labels.csv in the dataset format (`ranomaly_contracts.dataset`: node_id, cell_id,
kind, start, end, inclusive ISO 8601 UTC); `console_truth_labels` names that file, and the incident page shows
the labels of the incident's cell that overlap its span (none: no anomaly was injected there, a false alarm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rapp.console.incidents import Incident


@dataclass(frozen=True, slots=True)
class TruthLabel:
    """One injected anomaly of one cell, first to last period (ms, inclusive)."""

    cell_id: str
    kind: str
    start_ms: int
    end_ms: int


class TruthLabels:
    """A labels.csv, read once."""

    def __init__(self, path: Path) -> None:
        frame = pd.read_csv(path, dtype={"cell_id": str, "kind": str})
        starts = pd.to_datetime(frame["start"], utc=True).dt.as_unit("ms").astype("int64").tolist()
        ends = pd.to_datetime(frame["end"], utc=True).dt.as_unit("ms").astype("int64").tolist()
        self._labels = [TruthLabel(cell, kind, int(start), int(end)) for cell, kind, start, end
                        in zip(frame["cell_id"], frame["kind"], starts, ends, strict=True)]  # fmt: skip

    def of(self, incident: Incident) -> list[TruthLabel]:
        """The labels of the incident's cell that overlap its first to last anomalous period."""
        return [label for label in self._labels if label.cell_id == incident.cell_id
                and label.start_ms <= incident.last_ms and label.end_ms >= incident.opened_ms]  # fmt: skip
