"""KPM history and incident events on disk: Parquet files partitioned by UTC day, written durably.

Layout of the history folder (one collector writes a folder)::

    kpm/date=YYYY-MM-DD/part-<first>_<last>.<i>of<n>.parquet
    incidents/date=YYYY-MM-DD/part-<first>_<last>.<i>of<n>.parquet

A *batch* is what one collect cycle acknowledges together: stream entries of one stream. `<first>` and
`<last>` are its lowest and highest entry ids; its rows are split by UTC day (a KPM row's collection start,
an incident event's `period_start_ms`) into n parts, one per day that has rows. Every part carries the ids
of all the batch's entries in its Parquet metadata (`ranomaly.entry_ids`), so `HistoryStore.written` can
tell exactly which pending entries are on disk; a batch counts only when all n parts are there. A batch
with no rows (only malformed or empty entries) writes nothing.

KPM parts hold dataset-format rows (ARCHITECTURE.md, Datasets): `timestamp` (UTC, ms), `node_id`,
`cell_id`, then one float64 column per measurement the batch carried, NaN for "no value" (and for a
measurement the row's entry did not carry); the metadata `ranomaly.period_ms` lists the granularity
periods of the rows. Readers take the union of the parts' columns. Incident parts hold every field of
`IncidentEvent`, the attribution as a list of structs.

Writes are durable: temporary file, fsync, atomic rename, fsync of the folder (and of every folder
created). A write stores a KPM row only if its (cell, period) is not stored yet (`rapp.seen`), counting the
rows it leaves out in `HistoryStore.duplicates`; the first copy stays. Readers drop repeats too (history
written before that guard, and incident events): a KPM row of a (cell, period) already read, an incident
event with the same (incident, event, period); the first, in entry order, stays.

Retention drops whole day partitions: those dated more than `retention_days` before the newest partition
of either store. It counts from the newest data, not from the wall clock, so replayed or simulated history
of any date keeps its window, and history stops shrinking while nothing new arrives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from ranomaly_contracts.dataset import KEY_COLUMNS, Dataset
from ranomaly_contracts.sdl import Attribution, IncidentEvent, KpmForward
from rapp.seen import SeenRows

log = structlog.get_logger(__name__)

KPM, INCIDENTS = "kpm", "incidents"  # the two stores, folders of the history folder
ENTRY_IDS_KEY = b"ranomaly.entry_ids"
PERIODS_KEY = b"ranomaly.period_ms"
DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)

_PART = re.compile(r"part-(\d+-\d+)_(\d+-\d+)\.(\d+)of(\d+)\.parquet")
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_TEMP_SUFFIX, _DROP_PREFIX = ".tmp", ".drop-"

_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_ATTRIBUTION = pa.struct([("measurement", pa.string()), ("share", pa.float64()), ("deviation", pa.float64())])
INCIDENT_SCHEMA = pa.schema(
    [
        ("event", pa.string()),
        ("incident_id", pa.string()),
        ("cell_id", pa.string()),
        ("node_id", pa.string()),
        ("opened_ms", pa.int64()),
        ("period_start_ms", pa.int64()),
        ("score", pa.float64()),
        ("peak_score", pa.float64()),
        ("attribution", pa.list_(_ATTRIBUTION)),
        ("model_version", pa.string()),
        ("closed_ms", pa.int64()),
        ("reason", pa.string()),
    ]
)

TimeBound = pd.Timestamp | datetime | str  # naive times are UTC


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("<ms>-<seq>") as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class KpmRows:
    """The rows of one KPM stream entry: one per reported cell and period."""

    measurements: tuple[str, ...]
    times_ms: np.ndarray  # int64 [r], collection start
    node_ids: list[str]
    cell_ids: list[str]
    values: np.ndarray  # float64 [r, m], NaN where no value
    periods_ms: frozenset[int]  # granularity periods of the entry's indications


def kpm_rows(forward: KpmForward) -> KpmRows:
    """The rows of a decoded KPM entry; ValueError naming the node whose no-value indices are out of range."""
    m = len(forward.measurements)
    times: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    nodes: list[str] = []
    cells: list[str] = []
    periods: set[int] = set()
    for indication in forward.indications:
        header = indication.header
        n = len(indication.cell_ids)
        values = np.array(indication.values, dtype=np.float32).astype(np.float64)
        missing = np.array(indication.no_value, dtype=np.int64)
        if missing.size and (missing.max() >= values.size or missing.min() < 0):
            node = header.node_id or "<no node_id>"
            raise ValueError(f"KPM forward: node {node}: no-value index {missing.max()} beyond {values.size} records")
        values[missing] = np.nan
        blocks.append(values.reshape(n, m))
        times.append(np.full(n, header.collection_start_ms, dtype=np.int64))
        nodes.extend([header.node_id] * n)
        cells.extend(indication.cell_ids)
        periods.add(int(header.granularity_period_ms))
    return KpmRows(
        measurements=forward.measurements,
        times_ms=np.concatenate(times) if times else np.zeros(0, dtype=np.int64),
        node_ids=nodes,
        cell_ids=cells,
        values=np.concatenate(blocks) if blocks else np.zeros((0, m)),
        periods_ms=frozenset(periods),
    )


def _kpm_tables(batch: Sequence[KpmRows]) -> dict[int, pa.Table]:
    """One dataset-format table per UTC day (days since the epoch), columns the union of the batch's."""
    names = list(dict.fromkeys(name for rows in batch for name in rows.measurements))
    column = {name: i for i, name in enumerate(names)}
    times = np.concatenate([rows.times_ms for rows in batch])
    values = np.full((times.size, len(names)), np.nan)
    at = 0
    for rows in batch:
        values[at : at + len(rows.cell_ids), [column[name] for name in rows.measurements]] = rows.values
        at += len(rows.cell_ids)
    nodes = np.array([node for rows in batch for node in rows.node_ids], dtype=object)
    cells = np.array([cell for rows in batch for cell in rows.cell_ids], dtype=object)
    periods = sorted({period for rows in batch if rows.cell_ids for period in rows.periods_ms})
    metadata = {PERIODS_KEY: json.dumps(periods).encode()}
    days = times // DAY_MS
    tables = {}
    for day in np.unique(days).tolist():
        pick = days == day
        columns = {
            "timestamp": pa.array(times[pick], type=_TIMESTAMP),
            "node_id": pa.array(nodes[pick], type=pa.string()),
            "cell_id": pa.array(cells[pick], type=pa.string()),
        }
        columns.update({name: pa.array(values[pick, i]) for i, name in enumerate(names)})
        tables[int(day)] = pa.table(columns).replace_schema_metadata(metadata)
    return tables


def _incident_tables(events: Sequence[IncidentEvent]) -> dict[int, pa.Table]:
    """One table per UTC day of the events' periods."""
    by_day: dict[int, list[dict[str, object]]] = {}
    for event in events:
        record = {**asdict(event), "attribution": [asdict(part) for part in event.attribution]}
        by_day.setdefault(event.period_start_ms // DAY_MS, []).append(record)
    return {day: pa.Table.from_pylist(records, schema=INCIDENT_SCHEMA) for day, records in by_day.items()}


def _incident_event(record: Mapping[str, object]) -> IncidentEvent:
    parts = record["attribution"]
    assert isinstance(parts, list)
    fields = {name: record[name] for name in INCIDENT_SCHEMA.names}
    return IncidentEvent(**{**fields, "attribution": tuple(Attribution(**part) for part in parts)})  # type: ignore[arg-type]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """Create the folder and its missing parents, each made durable in its parent."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        _fsync_dir(created.parent)


def _write_durably(path: Path, table: pa.Table) -> None:
    """Temporary file, fsync, atomic rename, fsync of the folder."""
    _make_dirs(path.parent)
    temp = path.with_name(f".{path.name}{_TEMP_SUFFIX}")
    pq.write_table(table, temp)
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class _Part:
    path: Path
    day_ms: int  # start of the partition's UTC day
    first: tuple[int, int]
    last: tuple[int, int]
    batch: tuple[str, str, int]  # first id, last id, number of parts
    index: int


def _partitions(store: Path) -> list[tuple[int, Path]]:
    """(day start in ms, folder) of every day partition of a store."""
    if not store.is_dir():
        return []
    found = []
    for folder in store.iterdir():
        match = _PARTITION.fullmatch(folder.name)
        if match and folder.is_dir():
            found.append(((date.fromisoformat(match[1]) - _EPOCH).days * DAY_MS, folder))
    return sorted(found)


def _parts(store: Path) -> list[_Part]:
    """Every part file of a store, in entry order (first entry id, then part index)."""
    parts = []
    for day_ms, folder in _partitions(store):
        for path in folder.iterdir():
            match = _PART.fullmatch(path.name)
            if match:
                first, last, index, count = match[1], match[2], int(match[3]), int(match[4])
                parts.append(_Part(path, day_ms, entry_key(first), entry_key(last), (first, last, count), index))
    return sorted(parts, key=lambda part: (part.first, part.index))


def _entry_ids(path: Path) -> set[str]:
    metadata = pq.read_schema(path).metadata or {}
    return set(json.loads(metadata.get(ENTRY_IDS_KEY, b"[]")))


class HistoryStore:
    """The history folder: writes batches durably, says which pending entries are written, drops old days."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.duplicates = 0  # KPM rows left out: their (cell, period) was stored already
        self._seen = SeenRows(self._stored_day)

    def write_kpm(self, entry_ids: Sequence[str], batch: Sequence[KpmRows]) -> int:
        """Write the rows of a batch of KPM entries (ids: every entry acknowledged with it) whose (cell, period)
        is not stored yet; the rows written."""
        rows = [entry for entry in batch if entry.cell_ids]
        tables = {}
        for day, table in (_kpm_tables(rows) if rows else {}).items():
            fresh = self._seen.fresh(day, *_row_keys(table))
            self.duplicates += int(fresh.size - fresh.sum())
            if fresh.any():
                tables[day] = table.filter(pa.array(fresh))
        try:
            self._write_batch(KPM, entry_ids, tables)
        except BaseException:
            self._seen.forget()
            raise
        for day, table in tables.items():
            self._seen.add(day, *_row_keys(table))
        return sum(table.num_rows for table in tables.values())

    def _stored_day(self, day: int) -> tuple[list[str], np.ndarray]:
        """(cell ids, collection starts in ms) of the KPM rows of one UTC day in complete batches."""
        parts = _parts(self.root / KPM)
        found: dict[tuple[str, str, int], int] = {}
        for part in parts:
            found[part.batch] = found.get(part.batch, 0) + 1
        cells: list[str] = []
        times = [np.zeros(0, dtype=np.int64)]
        for part in parts:
            if part.day_ms == day * DAY_MS and found[part.batch] == part.batch[2]:
                try:
                    table = pq.read_table(part.path, columns=["cell_id", "timestamp"])
                except FileNotFoundError:
                    continue  # dropped by retention since it was listed
                part_cells, part_times = _row_keys(table)
                cells.extend(part_cells)
                times.append(part_times)
        return cells, np.concatenate(times)

    def write_incidents(self, entry_ids: Sequence[str], events: Sequence[IncidentEvent]) -> int:
        """Write a batch of incident events (ids: every entry acknowledged with it); the events written."""
        self._write_batch(INCIDENTS, entry_ids, _incident_tables(events))
        return len(events)

    def _write_batch(self, store: str, entry_ids: Sequence[str], tables: Mapping[int, pa.Table]) -> None:
        if not tables:
            return
        first, last = min(entry_ids, key=entry_key), max(entry_ids, key=entry_key)
        ids = json.dumps(sorted(entry_ids, key=entry_key)).encode()
        for index, day in enumerate(sorted(tables), 1):
            table = tables[day]
            folder = self.root / store / f"date={_EPOCH + timedelta(days=day)}"
            path = folder / f"part-{first}_{last}.{index}of{len(tables)}.parquet"
            _write_durably(path, table.replace_schema_metadata({**(table.schema.metadata or {}), ENTRY_IDS_KEY: ids}))

    def written(self, store: str, entry_ids: Iterable[str]) -> set[str]:
        """Which of these entry ids are in a complete batch on disk.

        The parts of an incomplete batch holding any of them (a write killed between two parts) are removed,
        so that its entries, still pending, are written again whole."""
        wanted = {entry_id: entry_key(entry_id) for entry_id in entry_ids}
        if not wanted:
            return set()
        keys = sorted(wanted.values())
        batches: dict[tuple[str, str, int], list[_Part]] = {}
        for part in _parts(self.root / store):
            at = bisect_left(keys, part.first)  # the first wanted id at or after the part's first
            if at < len(keys) and keys[at] <= part.last:
                batches.setdefault(part.batch, []).append(part)
        found: set[str] = set()
        for batch, parts in batches.items():
            ours = _entry_ids(parts[0].path) & wanted.keys()
            if not ours:
                continue  # another consumer's batch whose id range spans ours
            if len({part.index for part in parts}) == batch[2]:
                found |= ours
                continue
            for part in parts:
                part.path.unlink()
                _fsync_dir(part.path.parent)
            log.warning("history_incomplete_batch_removed", store=store, first=batch[0], last=batch[1],
                        parts_found=len(parts), parts=batch[2])  # fmt: skip
        return found

    def remove_leftovers(self) -> int:
        """Remove temporary files and half-dropped partitions a killed process left; how many."""
        removed = 0
        for store in (KPM, INCIDENTS):
            folder = self.root / store
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if entry.name.startswith(_DROP_PREFIX):
                    shutil.rmtree(entry)
                    removed += 1
            for _, partition in _partitions(folder):
                for temp in partition.glob(f".*{_TEMP_SUFFIX}"):
                    temp.unlink()
                    removed += 1
        return removed

    def drop_expired(self, retention_days: float) -> list[str]:
        """Drop the day partitions dated more than retention_days before the newest one; their names."""
        partitions = [
            (day, store, folder) for store in (KPM, INCIDENTS) for day, folder in _partitions(self.root / store)
        ]
        if not partitions:
            return []
        cutoff = max(day for day, _, _ in partitions) - retention_days * DAY_MS
        dropped = []
        for day, store, folder in partitions:
            if day < cutoff:
                doomed = folder.with_name(_DROP_PREFIX + folder.name)
                os.replace(folder, doomed)  # readers stop seeing it at once, whole
                _fsync_dir(folder.parent)
                shutil.rmtree(doomed)
                dropped.append(f"{store}/{folder.name}")
        if dropped:
            self._seen.forget()
        return dropped


def _row_keys(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """(cell ids, collection starts in ms) of a KPM table's rows."""
    times = table.column("timestamp").cast(pa.int64()).to_numpy()
    return table.column("cell_id").to_pylist(), np.asarray(times, dtype=np.int64)


def _bound_ms(value: TimeBound | None, default: int) -> int:
    if value is None:
        return default
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value) // 1_000_000


def _read_tables(store: Path, start_ms: int, end_ms: int, cells: Sequence[str] | None = None) -> list[pa.Table]:
    """The parts of the day partitions that overlap [start_ms, end_ms), in entry order; only the rows of `cells`
    when given."""
    tables = []
    for part in _parts(store):
        if part.day_ms + DAY_MS <= start_ms or part.day_ms >= end_ms:
            continue
        try:
            rows = None if cells is None else pc.field("cell_id").isin(list(cells))
            tables.append(pq.read_table(part.path, filters=rows))
        except FileNotFoundError:
            continue  # dropped by retention since it was listed
    return tables


def _read_kpm(
    history_dir: str | Path, start: TimeBound | None, end: TimeBound | None, cells: Sequence[str] | None = None
) -> tuple[pd.DataFrame, set[int]]:
    start_ms, end_ms = _bound_ms(start, -(2**62)), _bound_ms(end, 2**62)
    tables = _read_tables(Path(history_dir) / KPM, start_ms, end_ms, cells)
    periods = {period for table in tables for period in json.loads(table.schema.metadata[PERIODS_KEY])}
    if not tables:
        empty = pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ms, UTC]")})
        return empty.assign(node_id=pd.Series([], dtype=str), cell_id=pd.Series([], dtype=str)), periods
    combined = pa.concat_tables([table.replace_schema_metadata(None) for table in tables], promote_options="default")
    frame = combined.to_pandas()
    ms = frame["timestamp"].astype("int64")
    frame = frame[(ms >= start_ms) & (ms < end_ms)].drop_duplicates(["cell_id", "timestamp"], keep="first")
    return frame.sort_values(["timestamp", "cell_id"], kind="stable").reset_index(drop=True), periods


def read_history(
    history_dir: str | Path,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
    cells: Sequence[str] | None = None,
) -> pd.DataFrame:
    """KPM rows with timestamp in [start, end) in the dataset format, sorted by timestamp then cell; only the
    rows of `cells` when given (filtered as the files are read).

    Columns: timestamp (datetime64[ms, UTC]), node_id, cell_id, then the union of the measurements stored
    (float64, NaN where no value). A (cell, period) stored twice is read once."""
    return _read_kpm(history_dir, start, end, cells)[0]


def history_dataset(
    history_dir: str | Path,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
    units: Mapping[str, str] | None = None,
) -> Dataset:
    """The history in [start, end) as a `Dataset` for training and evaluation.

    period_s is the granularity period the stored rows were reported at; units come from the caller (the
    streams do not carry them), "" for a measurement it does not name. ValueError when the range holds no
    rows, or rows of several periods (a subscription that changed period: pick a range with one)."""
    kpm, periods = _read_kpm(history_dir, start, end)
    if kpm.empty:
        raise ValueError(f"{history_dir}: no KPM history between {start or 'the start'} and {end or 'the end'}")
    if len(periods) != 1:
        raise ValueError(f"{history_dir}: the range mixes granularity periods {sorted(periods)} ms; pick one period")
    given = units or {}
    measurements = [name for name in kpm.columns if name not in KEY_COLUMNS]
    return Dataset(kpm=kpm, period_s=periods.pop() / 1000, units={name: given.get(name, "") for name in measurements})


def read_incidents(
    history_dir: str | Path, start: TimeBound | None = None, end: TimeBound | None = None
) -> list[IncidentEvent]:
    """Incident events whose period starts in [start, end), by period then stream order; repeats read once."""
    start_ms, end_ms = _bound_ms(start, -(2**62)), _bound_ms(end, 2**62)
    events, seen = [], set()
    for table in _read_tables(Path(history_dir) / INCIDENTS, start_ms, end_ms):
        for record in table.to_pylist():
            key = (record["incident_id"], record["event"], record["period_start_ms"])
            if start_ms <= record["period_start_ms"] < end_ms and key not in seen:
                seen.add(key)
                events.append(_incident_event(record))
    return sorted(events, key=lambda event: event.period_start_ms)


class HistoryFolder:
    """The history folder as training reads it (`rapp.jobs.HistorySource`)."""

    def __init__(self, history_dir: str | Path, units: Mapping[str, str] | None = None) -> None:
        self.history_dir = Path(history_dir)
        self.units = dict(units or {})

    def dataset(self) -> Dataset:
        """Every stored KPM row as a dataset."""
        return history_dataset(self.history_dir, units=self.units)

    def incident_windows(self) -> list[tuple[str, int, int]]:
        """(cell, first period ms, last period ms) of every recorded incident; an open one runs to its last event."""
        windows: dict[str, tuple[str, int, int]] = {}
        for event in read_incidents(self.history_dir):
            cell, first, last = windows.get(event.incident_id, (event.cell_id, event.opened_ms, event.opened_ms))
            end = event.closed_ms if event.closed_ms is not None else event.period_start_ms
            windows[event.incident_id] = (cell, first, max(last, end))
        return list(windows.values())
