"""The E2 contract: generated stubs are current, the runtime bound is right, messages round-trip."""

from __future__ import annotations

import filecmp
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import __version__ as protobuf_version

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.indications import IndicationError, decode_indication


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _stubs(root: Path, under: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in under.rglob("*_pb2*") if p.suffix in (".py", ".pyi"))


def test_committed_stubs_match_a_fresh_generation(repo_root: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "gen_protos.py"), str(tmp_path)], check=True, capture_output=True
    )
    generated = _stubs(tmp_path, tmp_path)
    assert generated, "the generator wrote nothing"
    committed = _stubs(repo_root, repo_root / "ranomaly_contracts")
    assert generated == committed, "stubs were added or removed; run make proto"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, repo_root / p, shallow=False)]
    assert not stale, f"stale generated code, run make proto: {stale}"


def test_runtime_protobuf_bound_is_at_least_the_generator_version(repo_root: Path) -> None:
    stub = (repo_root / "ranomaly_contracts" / "e2" / "v1" / "e2_pb2.py").read_text()
    generator = re.search(r"Protobuf Python Version: ([\d.]+)", stub)
    assert generator is not None
    dependencies = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    bound = next(d for d in dependencies if d.startswith("protobuf>="))
    assert _version(bound.removeprefix("protobuf>=")) >= _version(generator.group(1))
    assert _version(protobuf_version) >= _version(generator.group(1))


def _indication(values: list[float], no_value: list[int], cells: list[str]) -> pb.Indication:
    return pb.Indication(
        header=pb.IndicationHeader(node_id="gnb-001", collection_start_ms=1_000, granularity_period_ms=60_000),
        cell_ids=cells,
        values=values,
        no_value=no_value,
    )


def test_indication_round_trip_keeps_values_and_no_value() -> None:
    sent = _indication([1.5, 0.0, 3.0, 4.0], [1], ["gnb-001-c0", "gnb-001-c1"])
    received = pb.IndicationBatch.FromString(pb.IndicationBatch(indications=[sent]).SerializeToString())
    decoded = decode_indication(received.indications[0], n_measurements=2)
    assert decoded.cell_ids == ["gnb-001-c0", "gnb-001-c1"]
    np.testing.assert_array_equal(decoded.values, np.array([[1.5, np.nan], [3.0, 4.0]], dtype=np.float32))
    assert decoded.collection_start_ms == 1_000 and decoded.period_ms == 60_000


def test_indication_is_compact() -> None:
    """Names travel once per subscription: a 3-cell, 12-measurement record costs about 4 bytes a value."""
    values = np.random.default_rng(0).uniform(0, 1e5, 36).astype(np.float32).tolist()
    size = len(_indication(values, [], ["gnb-001-c0", "gnb-001-c1", "gnb-001-c2"]).SerializeToString())
    assert size < 36 * 4 + 3 * 12 + 40


@pytest.mark.parametrize(
    ("values", "gaps", "reason"),
    [
        ([1.0, 2.0, 3.0], [], "3 values for 1 cells x 2 measurements"),
        ([1.0, float("nan")], [], "NaN or infinite"),
        ([1.0, 2.0], [5], "no_value index 5"),
    ],
)
def test_malformed_indication_is_refused_naming_node_and_reason(
    values: list[float], gaps: list[int], reason: str
) -> None:
    with pytest.raises(IndicationError, match="gnb-001") as refused:
        decode_indication(_indication(values, gaps, ["gnb-001-c0"]), n_measurements=2)
    assert reason in str(refused.value)
