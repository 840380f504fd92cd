"""The rApp's history folder: day partitions, durable batches, pending checks, retention, reading."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ranomaly_contracts.sdl import Attribution, IncidentEvent, KpmForward
from rapp.history import (
    INCIDENT_SCHEMA,
    INCIDENTS,
    KPM,
    HistoryStore,
    KpmRows,
    history_dataset,
    kpm_rows,
    read_history,
    read_incidents,
)
from tests.xapp_helpers import MEASUREMENTS, PERIOD_MS, T0, indication

NAN = math.nan
MIDNIGHT = 1440  # the period index of 2026-01-06 00:00 UTC


def rows(*indications_: object, measurements: Sequence[str] = MEASUREMENTS) -> KpmRows:
    return kpm_rows(KpmForward(tuple(measurements), list(indications_)))  # type: ignore[arg-type]


def part_names(root: Path, store: str = KPM) -> list[str]:
    return sorted(str(path.relative_to(root / store)) for path in (root / store).rglob("part-*"))


def incident(period: int, event: str = "update", **changes: object) -> IncidentEvent:
    fields: dict[str, object] = {
        "event": event,
        "incident_id": f"c1/{T0}",
        "cell_id": "c1",
        "node_id": "n1",
        "opened_ms": T0,
        "period_start_ms": T0 + period * PERIOD_MS,
        "score": 7.5,
        "peak_score": 9.0,
        "attribution": (Attribution("m.a", 0.75, 6.0), Attribution("m.b", 0.25, 2.0)),
        "model_version": "v1",
    }
    return IncidentEvent(**{**fields, **changes})  # type: ignore[arg-type]


def test_kpm_rows_turn_no_value_records_into_nan_and_refuse_indices_out_of_range() -> None:
    got = rows(indication("n1", 0, {"c1": [1.0, NAN, 0.1], "c2": [NAN, 2.0, 3.0]}))
    assert got.cell_ids == ["c1", "c2"] and got.node_ids == ["n1", "n1"]
    assert got.times_ms.tolist() == [T0, T0] and got.periods_ms == {PERIOD_MS}
    np.testing.assert_array_equal(got.values, [[1.0, NAN, np.float32(0.1)], [NAN, 2.0, 3.0]])
    bad = indication("n9", 0, {"c1": [1.0, 2.0, 3.0]})
    bad.no_value.append(3)
    with pytest.raises(ValueError, match="node n9: no-value index 3 beyond 3 records"):
        rows(bad)


def test_batches_split_by_day_and_read_back_as_the_union_of_their_columns(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    first = rows(indication("n1", MIDNIGHT - 1, {"c1": [1, 2, 3]}), indication("n1", MIDNIGHT, {"c1": [4, 5, 6]}))
    second = rows(indication("n2", MIDNIGHT, {"c9": [7, NAN]}), measurements=("m.a", "m.z"))
    assert store.write_kpm(["100-0", "100-1"], [first]) == 2
    assert store.write_kpm(["200-0"], [second]) == 1
    assert part_names(tmp_path) == [
        "date=2026-01-05/part-100-0_100-1.1of2.parquet",
        "date=2026-01-06/part-100-0_100-1.2of2.parquet",
        "date=2026-01-06/part-200-0_200-0.1of1.parquet",
    ]
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind

    frame = read_history(tmp_path)
    assert list(frame.columns) == ["timestamp", "node_id", "cell_id", "m.a", "m.b", "m.c", "m.z"]
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert (
        frame["timestamp"].astype("int64").tolist()
        == [T0 + (MIDNIGHT - 1) * PERIOD_MS] + [T0 + MIDNIGHT * PERIOD_MS] * 2
    )
    assert frame["cell_id"].tolist() == ["c1", "c1", "c9"] and frame["node_id"].tolist() == ["n1", "n1", "n2"]
    np.testing.assert_array_equal(frame[["m.a", "m.b", "m.c", "m.z"]].to_numpy(),
                                  [[1, 2, 3, NAN], [4, 5, 6, NAN], [7, NAN, NAN, NAN]])  # fmt: skip


def test_read_takes_start_inclusive_end_exclusive_and_reads_a_repeated_cell_period_once(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    store.write_kpm(["1-0"], [rows(*(indication("n1", p, {"c1": [p, p, p], "c0": [0, 0, 0]}) for p in range(4)))])
    store.write_kpm(["2-0"], [rows(indication("n1", 2, {"c1": [99, 99, 99]}))])  # a repeat the xApp may resend
    frame = read_history(tmp_path, start=pd.Timestamp(T0 + PERIOD_MS, unit="ms", tz="UTC"), end="2026-01-05T00:03:00")
    assert frame["cell_id"].tolist() == ["c0", "c1", "c0", "c1"]
    assert frame["m.a"].tolist() == [0, 1, 0, 2]  # the first stored copy wins
    assert read_history(tmp_path, start="2026-02-01").empty
    assert list(read_history(tmp_path / "nothing").columns) == ["timestamp", "node_id", "cell_id"]


def test_history_dataset_carries_the_period_and_the_units_given(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    store.write_kpm(["1-0"], [rows(*(indication("n1", p, {"c1": [p, 1, 2]}) for p in range(3)))])
    dataset = history_dataset(tmp_path, units={"m.a": "Mbit/s"})
    assert dataset.period_s == PERIOD_MS / 1000 and dataset.measurements == list(MEASUREMENTS)
    assert dataset.units == {"m.a": "Mbit/s", "m.b": "", "m.c": ""} and len(dataset.kpm) == 3
    with pytest.raises(ValueError, match="no KPM history"):
        history_dataset(tmp_path, start="2027-01-01")
    other = indication("n1", 5, {"c2": [1, 2, 3]})
    other.header.granularity_period_ms = 30_000
    store.write_kpm(["2-0"], [rows(other)])
    with pytest.raises(ValueError, match=r"mixes granularity periods \[30000, 60000\]"):
        history_dataset(tmp_path)


def test_written_names_the_ids_of_complete_batches_and_removes_incomplete_ones(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    across = rows(indication("n1", MIDNIGHT - 1, {"c1": [1, 2, 3]}), indication("n1", MIDNIGHT, {"c1": [4, 5, 6]}))
    store.write_kpm(["10-0", "10-1", "10-5"], [across])  # 10-1: a malformed entry acknowledged with the batch
    store.write_kpm(["20-0"], [rows(indication("n1", 0, {"c2": [1, 2, 3]}))])
    assert store.written(KPM, ["10-1", "10-5", "10-3", "20-0", "30-0"]) == {"10-1", "10-5", "20-0"}

    (tmp_path / KPM / "date=2026-01-06" / "part-10-0_10-5.2of2.parquet").unlink()  # killed before part 2
    assert store.written(KPM, ["10-0", "10-1", "10-5"]) == set()
    assert part_names(tmp_path) == ["date=2026-01-05/part-20-0_20-0.1of1.parquet"]


def test_retention_drops_whole_days_older_than_the_limit_before_the_newest(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    for day in range(5):
        store.write_kpm([f"{day + 1}-0"], [rows(indication("n1", day * MIDNIGHT, {"c1": [1, 2, 3]}))])
    store.write_incidents(["1-0"], [incident(0)])
    assert store.drop_expired(10) == []
    assert sorted(store.drop_expired(2.5)) == [
        "incidents/date=2026-01-05",
        "kpm/date=2026-01-05",
        "kpm/date=2026-01-06",
    ]
    assert [name.split("/")[0] for name in part_names(tmp_path)] == [
        "date=2026-01-07",
        "date=2026-01-08",
        "date=2026-01-09",
    ]
    assert read_incidents(tmp_path) == [] and read_history(tmp_path)["timestamp"].min() == pd.Timestamp(
        "2026-01-07", tz="UTC"
    )


def test_leftovers_of_a_killed_process_are_removed_and_never_read(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    store.write_kpm(["1-0"], [rows(indication("n1", 0, {"c1": [1, 2, 3]}))])
    partition = tmp_path / KPM / "date=2026-01-05"
    (partition / ".part-2-0_2-0.1of1.parquet.tmp").write_bytes(b"half a file")
    (tmp_path / KPM / ".drop-date=2025-01-01").mkdir()
    assert len(read_history(tmp_path)) == 1
    assert store.remove_leftovers() == 2
    assert sorted(path.name for path in (tmp_path / KPM).rglob("*")) == ["date=2026-01-05", "part-1-0_1-0.1of1.parquet"]


def test_incidents_keep_every_field_and_read_by_period(tmp_path: Path) -> None:
    assert INCIDENT_SCHEMA.names == [f.name for f in dataclasses.fields(IncidentEvent)]
    store = HistoryStore(tmp_path)
    events = [
        incident(0, "open", score=NAN, attribution=(Attribution("m.a", 1.0, NAN),)),
        incident(1),
        incident(MIDNIGHT, "close", closed_ms=T0 + PERIOD_MS, reason="recovered", attribution=()),
    ]
    assert store.write_incidents(["5-0", "5-1", "5-2"], events) == 3
    store.write_incidents(["6-0"], [events[1]])  # a repeat on the stream
    assert part_names(tmp_path, INCIDENTS) == [
        "date=2026-01-05/part-5-0_5-2.1of2.parquet",
        "date=2026-01-05/part-6-0_6-0.1of1.parquet",
        "date=2026-01-06/part-5-0_5-2.2of2.parquet",
    ]
    got = read_incidents(tmp_path)
    assert len(got) == 3 and math.isnan(got[0].score) and got[1:] == events[1:]
    assert math.isnan(got[0].attribution[0].deviation)
    assert dataclasses.replace(got[0], score=0.0, attribution=()) == dataclasses.replace(
        events[0], score=0.0, attribution=()
    )
    assert read_incidents(tmp_path, start="2026-01-05T00:01:00", end="2026-01-06") == [events[1]]
    metadata = pq.read_schema(tmp_path / INCIDENTS / "date=2026-01-06" / "part-5-0_5-2.2of2.parquet").metadata
    assert metadata[b"ranomaly.entry_ids"] == b'["5-0", "5-1", "5-2"]'
