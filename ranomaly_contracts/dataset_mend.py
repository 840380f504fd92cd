"""What the dataset reader mends or assumes in real exports, each step noting what it did.

Real counters rarely arrive in the exact format: timestamps without a zone, a repeated local hour when daylight
saving ends, one series without id columns, a measurement without a unit, cells that report at their own phase
of the period. The reader (`ranomaly_contracts.dataset.read_dataset`) calls these steps; each either mends and
appends a one-line note saying what it did, or raises `DatasetError` naming the file, column, row and the
option that would mend it. Nothing is mended silently, and what could be a data error (a repeated row) is
mended only when the caller opts in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

DUPLICATE_RULES = ("error", "first", "last")
DEFAULT_NODE, DEFAULT_CELL, DEFAULT_UNIT = "node-0", "cell-0", "1"
_ZONE_SUFFIX = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


class DatasetError(ValueError):
    """A dataset that does not follow the format; the message names the file, column or row."""


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How the reader treats what real exports contain.

    on_duplicate: a cell with two rows at one timestamp is an error, or keeps its first or last row.
    timezone: the IANA zone of timestamps written without one (None: UTC, with a note).
    rename: column names of the export to the names the model uses (vendor counters to TS 28.552).
    """

    on_duplicate: Literal["error", "first", "last"] = "error"
    timezone: str | None = None
    rename: Mapping[str, str] = field(default_factory=dict)

    def zone(self) -> ZoneInfo | None:
        """The zone of naive timestamps; DatasetError if the name is unknown."""
        if self.timezone is None:
            return None
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DatasetError(f"timezone {self.timezone!r} is not an IANA zone name such as Europe/Paris") from exc


def rename_columns(
    frame: pd.DataFrame, units: dict[str, str], name: str, options: ReadOptions, notes: list[str]
) -> None:
    """Apply the rename mapping to the frame's columns and meta.json's units; a name taken twice is refused."""
    present = {old: new for old, new in options.rename.items() if old in frame.columns}
    if not present:
        if options.rename:
            notes.append(f"{name}: no column of the rename mapping is in the export; nothing renamed")
        return
    result = [present.get(column, column) for column in frame.columns]
    taken = sorted({column for column in result if result.count(column) > 1})
    if taken:
        raise DatasetError(f"{name}: renaming would give several columns the name {taken[0]!r}")
    frame.columns = pd.Index(result)
    for old, new in present.items():
        if old in units:
            units.setdefault(new, units.pop(old))
    shown = ", ".join(f"{old} -> {new}" for old, new in list(present.items())[:5])
    notes.append(f"{name}: {len(present)} column(s) renamed ({shown}{', ...' if len(present) > 5 else ''})")


def default_ids(frame: pd.DataFrame, name: str, notes: list[str]) -> None:
    """Fill absent node_id / cell_id columns: one series gets default ids, a cell without a node is its own."""
    has_node, has_cell = "node_id" in frame.columns, "cell_id" in frame.columns
    if has_node and has_cell:
        return
    if not has_node and not has_cell:
        frame.insert(0, "cell_id", DEFAULT_CELL)
        frame.insert(0, "node_id", DEFAULT_NODE)
        notes.append(f"{name}: no node_id or cell_id column; one series, cell {DEFAULT_CELL!r} of {DEFAULT_NODE!r}")
    elif has_cell:
        frame.insert(0, "node_id", frame["cell_id"])
        notes.append(f"{name}: no node_id column; every cell read as its own node")
    else:
        repeated = frame.duplicated(["node_id", "timestamp"])
        if repeated.any():
            row = int(np.flatnonzero(repeated)[0])
            raise DatasetError(
                f"{name}: missing column cell_id (node {frame['node_id'].iloc[row]!r} has several rows at "
                f"{frame['timestamp'].iloc[row]}, row {row})"
            )
        frame.insert(1, "cell_id", frame["node_id"])
        notes.append(f"{name}: no cell_id column; every node read as one cell of the same id")


def default_units(measurements: list[str], units: dict[str, str], name: str, notes: list[str]) -> dict[str, str]:
    """Units of every measurement; those meta.json does not give are "1", with a note."""
    absent = [m for m in measurements if m not in units]
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        notes.append(f"{name}: no unit in meta.json for {shown}; taken as {DEFAULT_UNIT!r}")
    return {**units, **dict.fromkeys(absent, DEFAULT_UNIT)}


def parse_times(
    values: pd.Series, what: str, options: ReadOptions, notes: list[str], groups: pd.Series | None = None
) -> pd.Series:
    """Timestamps as UTC milliseconds. Zoned ones are converted; naive ones are in options.timezone (UTC when
    none is given, with a note). With groups (the cell of each row), a local hour repeated when daylight
    saving ends is told apart by each cell's row order."""
    if values.isna().any():
        raise DatasetError(f"{what}: row {int(np.flatnonzero(values.isna())[0])} has no timestamp")
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed, naive = values, values.dt.tz is None
    else:
        text = values.astype(str).str.strip()
        zoned = text.str.contains(_ZONE_SUFFIX)
        naive = not bool(zoned.any())
        if not naive and not zoned.all():
            row, other = int(np.flatnonzero(~zoned)[0]), int(np.flatnonzero(zoned)[0])
            raise DatasetError(
                f"{what}: row {row} ({text.iloc[row]!r}) has no zone while row {other} ({text.iloc[other]!r}) has one"
            )
        parsed = pd.to_datetime(text, utc=not naive, errors="coerce", format="ISO8601")
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna())[0])
            raise DatasetError(f"{what}: row {row} has {values.iloc[row]!r}, not an ISO 8601 timestamp")
    if naive:
        parsed = _localise(parsed, what, options, notes, groups)
    return parsed.dt.tz_convert("UTC").astype("datetime64[ms, UTC]")


def _localise(
    parsed: pd.Series, what: str, options: ReadOptions, notes: list[str], groups: pd.Series | None
) -> pd.Series:
    zone = options.zone()
    if zone is None:
        notes.append(f"{what}: timestamps carry no zone; read as UTC (give their zone with --timezone)")
        return parsed.dt.tz_localize("UTC")
    notes.append(f"{what}: timestamps carry no zone; read in {options.timezone}")
    try:
        if groups is None:
            return parsed.dt.tz_localize(zone, ambiguous="raise", nonexistent="raise")
        return parsed.groupby(groups.to_numpy(), sort=False).transform(
            lambda times: times.dt.tz_localize(zone, ambiguous="infer", nonexistent="raise")
        )
    except (ValueError, TypeError) as exc:  # pytz-style AmbiguousTimeError / NonExistentTimeError are ValueErrors
        raise DatasetError(f"{what}: a time does not exist or is ambiguous in {options.timezone}: {exc}") from exc


def drop_duplicates(frame: pd.DataFrame, name: str, options: ReadOptions, notes: list[str]) -> pd.DataFrame:
    """Rows of one cell at one timestamp: an error naming the row and the options, or mended as asked."""
    duplicated = frame.duplicated(["cell_id", "timestamp"], keep="first")
    if not duplicated.any():
        return frame
    if options.on_duplicate == "error":
        row = int(np.flatnonzero(duplicated)[0])
        raise DatasetError(
            f"{name}: row {row} repeats cell {frame['cell_id'].iloc[row]!r} at {frame['timestamp'].iloc[row]} "
            f"({int(duplicated.sum())} repeated rows in all); keep one with --on-duplicate first|last, or give the "
            "zone of local timestamps with --timezone if the repeat is a daylight-saving hour"
        )
    keep: Literal["first", "last"] = options.on_duplicate
    notes.append(f"{name}: {int(duplicated.sum())} repeated cell-timestamp rows dropped, the {keep} of each kept")
    return frame[~frame.duplicated(["cell_id", "timestamp"], keep=keep)]


def check_cell_grids(frame: pd.DataFrame, name: str, period_s: float, ms: np.ndarray) -> None:
    """Every cell on its own grid of period_s, anchored at its first row (cells may differ in phase)."""
    period_ms = round(period_s * 1000)
    anchors = pd.Series(ms).groupby(frame["cell_id"].to_numpy()).transform("min").to_numpy()
    off_grid = (ms - anchors) % period_ms != 0
    if not off_grid.any():
        return
    row = int(np.flatnonzero(off_grid)[0])
    cell = frame["cell_id"].iloc[row]
    other = _other_anchor(frame["cell_id"].to_numpy(), anchors, ms[row], period_ms, cell)
    raise DatasetError(
        f"{name}: row {row} at {frame['timestamp'].iloc[row]} is off the {period_s} s grid of cell {cell!r}, "
        f"anchored at its first row {_iso(int(anchors[row]))}{other}; a cell reports at one period and one phase"
    )


def _other_anchor(cells: np.ndarray, anchors: np.ndarray, at_ms: int, period_ms: int, cell: str) -> str:
    """Which other cell the off-grid row's phase belongs to, if any (mixed exports), for the error message."""
    by_cell = pd.Series(anchors).groupby(cells, sort=False).first()
    for other_cell, anchor in by_cell.items():
        if other_cell != cell and (at_ms - int(anchor)) % period_ms == 0:
            return f" (it is on the grid of cell {str(other_cell)!r}, anchored at {_iso(int(anchor))})"
    return ""


def _iso(ms: int) -> str:
    return str(pd.Timestamp(ms, unit="ms", tz="UTC"))
