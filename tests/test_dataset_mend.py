"""What real exports contain, read or refused with a message that names it and the option that mends it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.score_file import scores_frame
from ranomaly.cli import main
from ranomaly_contracts.dataset import (
    DatasetError,
    ReadOptions,
    epoch_ms,
    label_mask,
    read_dataset,
    to_arrays,
)


def _folder(tmp_path: Path, kpm: str, meta: dict[str, object], labels: str | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "kpm.csv").write_text(kpm)
    (folder / "meta.json").write_text(json.dumps(meta))
    if labels is not None:
        (folder / "labels.csv").write_text(labels)
    return folder


def _series(times: list[str], ids: bool = True) -> str:
    head = "timestamp,node_id,cell_id,value\n" if ids else "timestamp,value\n"
    rows = [f"{t},n,c,{i}" if ids else f"{t},{i}" for i, t in enumerate(times)]
    return head + "\n".join(rows) + "\n"


METERS = {"period_s": 3600, "units": {"value": "1"}}


def test_naive_timestamps_are_read_as_utc_with_a_note(tmp_path: Path) -> None:
    dataset = read_dataset(_folder(tmp_path, _series(["2026-03-01 00:00", "2026-03-01 01:00"]), METERS))
    assert str(dataset.kpm["timestamp"].iloc[0]) == "2026-03-01 00:00:00+00:00"
    assert any("carry no zone; read as UTC" in note for note in dataset.notes)


def test_a_zone_given_converts_naive_times_and_tells_the_repeated_daylight_saving_hour_apart(tmp_path: Path) -> None:
    # Europe/Paris leaves summer time on 2026-10-25: 02:00 local comes twice, first at 00:00 UTC, then 01:00 UTC
    local = ["2026-10-25 01:00", "2026-10-25 02:00", "2026-10-25 02:00", "2026-10-25 03:00"]
    folder = _folder(tmp_path, _series(local), METERS)
    with pytest.raises(DatasetError, match=r"repeats cell 'c'.*--on-duplicate first\|last.*--timezone"):
        read_dataset(folder)
    dataset = read_dataset(folder, ReadOptions(timezone="Europe/Paris"))
    hours = [t.strftime("%H:%M") for t in dataset.kpm["timestamp"]]
    assert hours == ["23:00", "00:00", "01:00", "02:00"] and dataset.kpm["value"].tolist() == [0, 1, 2, 3]
    assert any("read in Europe/Paris" in note for note in dataset.notes)


def test_an_unknown_zone_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _series(["2026-03-01 00:00"]), METERS)
    with pytest.raises(DatasetError, match="'Mars/Olympus' is not an IANA zone"):
        read_dataset(folder, ReadOptions(timezone="Mars/Olympus"))


def test_zoned_and_naive_timestamps_mixed_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _series(["2026-03-01T00:00:00Z", "2026-03-01 01:00"]), METERS)
    with pytest.raises(DatasetError, match=r"row 1 \('2026-03-01 01:00'\) has no zone while row 0"):
        read_dataset(folder)


@pytest.mark.parametrize(("keep", "value"), [("first", 1.0), ("last", 2.0)])
def test_repeated_rows_are_mended_only_when_asked_and_counted(tmp_path: Path, keep: str, value: float) -> None:
    kpm = "timestamp,node_id,cell_id,value\n2026-03-01T00:00Z,n,c,0\n2026-03-01T01:00Z,n,c,1\n2026-03-01T01:00Z,n,c,2\n"
    folder = _folder(tmp_path, kpm, METERS)
    with pytest.raises(DatasetError, match=r"row 2 repeats cell 'c' .*\(1 repeated rows in all\)"):
        read_dataset(folder)
    dataset = read_dataset(folder, ReadOptions(on_duplicate=keep))  # type: ignore[arg-type]
    assert dataset.kpm["value"].tolist() == [0.0, value]
    assert f"1 repeated cell-timestamp rows dropped, the {keep} of each kept" in " ".join(dataset.notes)


def test_a_single_series_without_ids_or_units_takes_defaults(tmp_path: Path) -> None:
    labels = "kind,start,end\nother,2026-03-01T01:00:00Z,2026-03-01T01:00:00Z\n"
    folder = _folder(
        tmp_path, _series(["2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"], ids=False), {"period_s": 3600}, labels
    )
    dataset = read_dataset(folder)
    assert set(dataset.kpm["cell_id"]) == {"cell-0"} and set(dataset.kpm["node_id"]) == {"node-0"}
    assert dataset.units == {"value": "1"}
    notes = " ".join(dataset.notes)
    assert "no node_id or cell_id column" in notes and "no unit in meta.json for value; taken as '1'" in notes
    assert label_mask(to_arrays(dataset), dataset.labels)[:, 0].tolist() == [False, True]


def test_cells_at_their_own_phase_share_one_grid_and_keep_their_times(tmp_path: Path) -> None:
    kpm = (
        "timestamp,node_id,cell_id,value\n"
        "2026-03-01T00:00:00Z,n,a,1\n2026-03-01T01:00:00Z,n,a,2\n2026-03-01T02:00:00Z,n,a,3\n"
        "2026-03-01T00:30:00Z,n,b,4\n2026-03-01T01:30:00Z,n,b,5\n"
    )
    labels = "node_id,cell_id,kind,start,end\nn,b,other,2026-03-01T01:30:00Z,2026-03-01T01:30:00Z\n"
    dataset = read_dataset(_folder(tmp_path, kpm, METERS, labels))
    arrays = to_arrays(dataset)
    assert arrays.values[:, 1, 0].tolist()[:2] == [4.0, 5.0] and arrays.phase_ms is not None
    assert arrays.phase_ms.tolist() == [0, 30 * 60_000]
    assert label_mask(arrays, dataset.labels)[:, 1].tolist() == [False, True, False]
    rows, cols = np.nonzero(arrays.reported)
    times = arrays.cell_times_ms(rows, cols)
    assert sorted(times.tolist()) == sorted(epoch_ms(dataset.kpm["timestamp"]).tolist())


def test_a_cell_off_its_own_grid_names_both_anchors_and_cells(tmp_path: Path) -> None:
    kpm = (
        "timestamp,node_id,cell_id,value\n"
        "2026-03-01T00:00:00Z,n,a,1\n2026-03-01T00:30:00Z,n,b,2\n2026-03-01T01:30:00Z,n,a,3\n"
    )
    with pytest.raises(DatasetError) as error:
        read_dataset(_folder(tmp_path, kpm, METERS))
    message = str(error.value)
    assert "off the 3600.0 s grid of cell 'a', anchored at its first row 2026-03-01 00:00:00+00:00" in message
    assert "on the grid of cell 'b', anchored at 2026-03-01 00:30:00+00:00" in message


def test_labels_of_unknown_cause_are_accepted_and_unknown_words_refused(tmp_path: Path) -> None:
    labels = "node_id,cell_id,kind,start,end\nn,c,unknown,2026-03-01T00:00:00Z,2026-03-01T00:00:00Z\n"
    folder = _folder(tmp_path, _series(["2026-03-01T00:00:00Z"]), METERS, labels)
    with pytest.raises(DatasetError, match=r"kind 'unknown'; known: .*, other \(other: an anomaly of unknown cause\)"):
        read_dataset(folder)


def test_scores_carry_each_cells_own_timestamps(tmp_path: Path) -> None:
    kpm = "timestamp,node_id,cell_id,value\n2026-03-01T00:00:00Z,n,a,1\n2026-03-01T00:20:00Z,n,b,2\n"
    arrays = to_arrays(read_dataset(_folder(tmp_path, kpm, METERS)))

    class _Result:
        scores = np.zeros(arrays.reported.shape)
        deviations = np.zeros((*arrays.reported.shape, 1), dtype=np.float32)

        def verdicts(self, threshold: float) -> np.ndarray:
            return np.zeros(arrays.reported.shape, dtype=np.int64)

    class _Manifest:
        measurements = ("value",)

        class thresholds:  # noqa: N801
            score = 1.0

    frame = scores_frame(arrays, _Result(), _Manifest())  # type: ignore[arg-type]
    assert dict(zip(frame["cell_id"], frame["timestamp"], strict=True)) == {
        "a": "2026-03-01T00:00:00Z",
        "b": "2026-03-01T00:20:00Z",
    }


def test_data_check_prints_what_it_found_and_mended(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, _series(["2026-03-01 00:00", "2026-03-01 01:00", "2026-03-01 01:00"]), METERS)
    assert main(["data", "check", str(folder)]) == 2
    assert "--on-duplicate first|last" in capsys.readouterr().err
    assert main(["data", "check", str(folder), "--on-duplicate", "last", "--timezone", "UTC"]) == 0
    out = capsys.readouterr().out
    assert "2 rows, 1 nodes, 1 cells, 1 measurements, period 3600 s" in out
    assert "1 repeated cell-timestamp rows dropped, the last of each kept" in out and "read in UTC" in out


def test_naive_parquet_times_take_the_given_zone(tmp_path: Path) -> None:
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2026-03-01 00:00"]), "value": [1.0]})
    folder = tmp_path / "pq"
    folder.mkdir()
    frame.to_parquet(folder / "kpm.parquet")
    (folder / "meta.json").write_text(json.dumps(METERS))
    dataset = read_dataset(folder, ReadOptions(timezone="Asia/Tokyo"))
    assert str(dataset.kpm["timestamp"].iloc[0]) == "2026-02-28 15:00:00+00:00"


def test_vendor_counter_names_are_renamed_with_their_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kpm = "timestamp,node_id,cell_id,pmDlThp,pmPrbUsed\n2026-03-01T00:00:00Z,n,c,10,3\n"
    folder = _folder(tmp_path, kpm, {"period_s": 900, "units": {"pmDlThp": "kbit/s", "pmPrbUsed": "PRB"}})
    mapping = tmp_path / "names.json"
    mapping.write_text(json.dumps({"pmDlThp": "DRB.UEThpDl", "pmPrbUsed": "RRU.PrbUsedDl", "pmAbsent": "X"}))
    assert main(["data", "check", str(folder), "--rename", str(mapping)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"DRB.UEThpDl +kbit/s", out) and re.search(r"RRU.PrbUsedDl +PRB", out)
    assert "2 column(s) renamed (pmDlThp -> DRB.UEThpDl, pmPrbUsed -> RRU.PrbUsedDl)" in out
    clash = ReadOptions(rename={"pmDlThp": "pmPrbUsed"})
    with pytest.raises(DatasetError, match="several columns the name 'pmPrbUsed'"):
        read_dataset(folder, clash)
    mapping.write_text("[1, 2]")
    assert main(["data", "check", str(folder), "--rename", str(mapping)]) == 2
    assert "expected a JSON object mapping export column names" in capsys.readouterr().err
