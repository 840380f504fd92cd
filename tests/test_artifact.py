"""Model artifacts: writing, reading, hash and schema checks, the ONNX interface, time features, torch-freedom."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models.artifact import (
    TIME_FEATURES,
    ArtifactError,
    load_session,
    parse_artifact,
    read_artifact,
    time_features,
    write_artifact,
)

MEASUREMENTS = ["DRB.UEThpDl", "RRU.PrbUsedDl"]
K, T, S = 2, 2, 3
F = TensorProto.FLOAT
Spec = dict[str, tuple[Any, list[Any]]]  # name -> (element type, shape)


def build_model(
    inputs: Spec | None = None,
    outputs: Spec | None = None,
    nodes: list[onnx.NodeProto] | None = None,
) -> bytes:
    """A tiny graph: score = sum(x * mask), deviation = x, state_out = state + 1 unless told otherwise."""
    inputs = inputs or {"x": (F, ["B", K]), "mask": (F, ["B", K]), "time": (F, ["B", T]), "state": (F, ["B", S])}
    outputs = outputs or {"score": (F, ["B"]), "deviation": (F, ["B", K]), "state_out": (F, ["B", S])}
    if nodes is None:
        nodes = [
            helper.make_node("Mul", ["x", "mask"], ["xm"]),
            helper.make_node("ReduceSum", ["xm", "axes"], ["score"], keepdims=0),
            helper.make_node("Identity", ["x"], ["deviation"]),
            helper.make_node("Add", ["state", "one"], ["state_out"]),
        ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(name, kind, shape) for name, (kind, shape) in inputs.items()],
        [helper.make_tensor_value_info(name, kind, shape) for name, (kind, shape) in outputs.items()],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("one", F, [], [1.0]),
            helper.make_tensor("zero", F, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "version": "tiny-1",
        "period_s": 60,
        "measurements": list(MEASUREMENTS),
        "time_features": ["tod_sin", "tod_cos"],
        "state_size": S,
        "warmup_periods": 5,
        "thresholds": {
            "score": 4.0,
            "deviation": dict.fromkeys(MEASUREMENTS, 3.0),
            "score_stats": {"mean": 1.0, "std": 0.5, "quantiles": {"0.99": 2.5, "0.999": 3.5}},
        },
        "training": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-08T00:00:00Z", "cells": 12},
        "evaluation": {},
        "opset": 17,
        "model": {"family": "tiny"},
    }
    fields.update(changes)
    return fields


@pytest.fixture
def written(tmp_path: Path) -> Path:
    folder = tmp_path / "art"
    write_artifact(folder, build_model(), manifest_fields())
    return folder


def test_round_trip(written: Path) -> None:
    onnx_bytes = build_model()
    art = read_artifact(written)
    assert art.onnx == onnx_bytes
    assert art.folder == written
    assert art.manifest.sha256 == hashlib.sha256(onnx_bytes).hexdigest()
    assert art.manifest.measurements == tuple(MEASUREMENTS)
    assert art.manifest.thresholds.score_stats.quantiles == {"0.99": 2.5, "0.999": 3.5}
    assert art.manifest.utc_offset_h == 0.0
    assert art.manifest.model_extra == {"model": {"family": "tiny"}}
    created = datetime.fromisoformat(art.manifest.created)
    assert created.tzinfo is not None and abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert sorted(p.name for p in written.iterdir()) == ["manifest.json", "model.onnx"]  # no temp files left
    on_disk = json.loads((written / "manifest.json").read_text())
    assert on_disk["sha256"] == art.manifest.sha256 and on_disk["model"] == {"family": "tiny"}


def test_registry_bytes_name_the_version() -> None:
    onnx_bytes = build_model()
    fields = manifest_fields(sha256="0" * 64, created="2024-01-01T00:00:00Z")
    with pytest.raises(ArtifactError, match=r"registry tiny-1: sha256 mismatch"):
        parse_artifact(json.dumps(fields), onnx_bytes, "registry tiny-1")
    fields["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
    art = parse_artifact(json.dumps(fields).encode(), onnx_bytes, "registry tiny-1")
    assert art.folder is None and art.where == "artifact version tiny-1"


def test_session_scores_a_batch(written: Path) -> None:
    session = load_session(read_artifact(written), intra_op_threads=1)
    x = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32)
    mask = np.array([[1, 0], [1, 1], [0, 0]], dtype=np.float32)
    state = np.arange(9, dtype=np.float32).reshape(3, 3)
    feeds = {"x": x, "mask": mask, "time": np.zeros((3, T), np.float32), "state": state}
    score, deviation, state_out = session.run(["score", "deviation", "state_out"], feeds)
    np.testing.assert_array_equal(score, [1.0, 7.0, 0.0])
    np.testing.assert_array_equal(deviation, x)
    np.testing.assert_array_equal(state_out, state + 1)


def test_stateless_model_without_time_features(tmp_path: Path) -> None:
    model = build_model(
        inputs={"x": (F, ["B", K]), "mask": (F, ["B", K]), "time": (F, ["B", 0]), "state": (F, ["B", 0])},
        outputs={"score": (F, ["B"]), "deviation": (F, ["B", K]), "state_out": (F, ["B", 0])},
        nodes=[
            helper.make_node("ReduceSum", ["x", "axes"], ["score"], keepdims=0),
            helper.make_node("Identity", ["x"], ["deviation"]),
            helper.make_node("Identity", ["state"], ["state_out"]),
        ],
    )
    art = write_artifact(tmp_path / "a", model, manifest_fields(time_features=[], state_size=0))
    session = load_session(art)
    feeds = {"x": np.ones((4, K), np.float32), "mask": np.ones((4, K), np.float32)}
    feeds |= {"time": np.zeros((4, 0), np.float32), "state": np.zeros((4, 0), np.float32)}
    np.testing.assert_array_equal(session.run(["score"], feeds)[0], [2.0] * 4)


def test_flipped_byte_is_refused_with_both_hashes(written: Path) -> None:
    path = written / "model.onnx"
    data = bytearray(path.read_bytes())
    expected = hashlib.sha256(data).hexdigest()
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch") as info:
        read_artifact(written)
    assert str(written) in str(info.value)
    assert expected in str(info.value) and hashlib.sha256(data).hexdigest() in str(info.value)


@pytest.mark.parametrize(
    "key",
    [
        "version",
        "created",
        "period_s",
        "measurements",
        "time_features",
        "state_size",
        "warmup_periods",
        "thresholds",
        "training",
        "evaluation",
        "opset",
        "sha256",
    ],
)
def test_missing_manifest_key_is_refused(written: Path, key: str) -> None:
    path = written / "manifest.json"
    fields = json.loads(path.read_text())
    del fields[key]
    path.write_text(json.dumps(fields))
    with pytest.raises(ArtifactError, match=rf"field '{key}': Field required") as info:
        read_artifact(written)
    assert str(written) in str(info.value)


def test_bad_json_is_refused(written: Path) -> None:
    (written / "manifest.json").write_text('{"version": "tiny-1",')
    with pytest.raises(ArtifactError, match=r"manifest.json is not readable JSON"):
        read_artifact(written)
    (written / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match=r"must hold a JSON object, not list"):
        read_artifact(written)


@pytest.mark.parametrize("name", ["manifest.json", "model.onnx"])
def test_missing_file_is_refused(written: Path, name: str) -> None:
    (written / name).unlink()
    with pytest.raises(ArtifactError, match=rf"cannot read {name}"):
        read_artifact(written)


def deviation_without_last() -> dict[str, Any]:
    thresholds = copy.deepcopy(manifest_fields()["thresholds"])
    del thresholds["deviation"][MEASUREMENTS[-1]]
    return thresholds


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        (
            {"time_features": ["tod_sin", "moon_phase"]},
            r"field 'time_features'.*unknown time features \['moon_phase'\]",
        ),
        ({"thresholds": deviation_without_last()}, r"field 'thresholds'.*deviation.*missing \['RRU.PrbUsedDl'\]"),
        ({"measurements": ["A", "A"]}, r"field 'measurements'.*repeated: \['A'\]"),
        ({"measurements": []}, r"field 'measurements'"),
        ({"period_s": 0}, r"field 'period_s'"),
        ({"period_s": "60"}, r"field 'period_s'"),
        ({"state_size": -1}, r"field 'state_size'"),
        ({"state_size": True}, r"field 'state_size'"),
        ({"created": "2024-01-01T00:00:00"}, r"field 'created'.*UTC"),
        ({"created": "yesterday"}, r"field 'created'.*ISO 8601"),
        ({"version": "has space"}, r"field 'version'"),
        ({"training": []}, r"field 'training'"),
        ({"utc_offset_h": 20}, r"field 'utc_offset_h'"),
    ],
)
def test_invalid_manifest_is_refused_and_not_written(tmp_path: Path, changes: dict[str, Any], pattern: str) -> None:
    folder = tmp_path / "art"
    with pytest.raises(ArtifactError, match=pattern) as info:
        write_artifact(folder, build_model(), manifest_fields(**changes))
    assert str(folder) in str(info.value)
    assert not folder.exists()


@pytest.mark.parametrize(
    ("stats", "pattern"),
    [
        ({"mean": 1.0, "std": -1.0, "quantiles": {}}, r"thresholds.score_stats.std"),
        ({"mean": 1.0, "std": 1.0, "quantiles": {"high": 1.0}}, r"thresholds.score_stats.quantiles.*'0.99'"),
        ({"mean": 1.0, "std": 1.0, "quantiles": {"1.5": 1.0}}, r"thresholds.score_stats.quantiles.*between 0 and 1"),
        ({"mean": 1.0, "std": 1.0, "quantiles": {"0.9": 3.0, "0.99": 2.0}}, r"must not decrease"),
        ({"mean": 1.0, "quantiles": {}}, r"field 'thresholds.score_stats.std': Field required"),
    ],
)
def test_invalid_score_stats_are_refused(tmp_path: Path, stats: dict[str, Any], pattern: str) -> None:
    thresholds = {**manifest_fields()["thresholds"], "score_stats": stats}
    with pytest.raises(ArtifactError, match=pattern):
        write_artifact(tmp_path / "art", build_model(), manifest_fields(thresholds=thresholds))


def test_write_refuses_a_sha256_that_is_not_the_bytes(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"sha256 mismatch"):
        write_artifact(tmp_path / "art", build_model(), manifest_fields(sha256="a" * 64))


IN: Spec = {"x": (F, ["B", K]), "mask": (F, ["B", K]), "time": (F, ["B", T]), "state": (F, ["B", S])}
OUT: Spec = {"score": (F, ["B"]), "deviation": (F, ["B", K]), "state_out": (F, ["B", S])}


def _renamed_x() -> bytes:
    inputs = {("xx" if k == "x" else k): v for k, v in IN.items()}
    nodes = [
        helper.make_node("Mul", ["xx", "mask"], ["xm"]),
        helper.make_node("ReduceSum", ["xm", "axes"], ["score"], keepdims=0),
        helper.make_node("Identity", ["xx"], ["deviation"]),
        helper.make_node("Add", ["state", "one"], ["state_out"]),
    ]
    return build_model(inputs=inputs, nodes=nodes)


def _double_x() -> bytes:
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=F),
        helper.make_node("Mul", ["xf", "mask"], ["xm"]),
        helper.make_node("ReduceSum", ["xm", "axes"], ["score"], keepdims=0),
        helper.make_node("Identity", ["xf"], ["deviation"]),
        helper.make_node("Add", ["state", "one"], ["state_out"]),
    ]
    return build_model(inputs={**IN, "x": (TensorProto.DOUBLE, ["B", K])}, nodes=nodes)


def _without_score() -> bytes:
    nodes = [
        helper.make_node("Identity", ["x"], ["deviation"]),
        helper.make_node("Add", ["state", "one"], ["state_out"]),
    ]
    return build_model(outputs={k: v for k, v in OUT.items() if k != "score"}, nodes=nodes)


@pytest.mark.parametrize(
    ("model", "changes", "pattern"),
    [
        (_without_score, {}, r"outputs must be .*missing \['score'\]"),
        (_renamed_x, {}, r"inputs must be .*missing \['x'\], unexpected \['xx'\]"),
        (_double_x, {}, r"input 'x' is tensor\(double\), expected tensor\(float\)"),
        (
            build_model,
            {
                "measurements": [*MEASUREMENTS, "PEE.AvgPower"],
                "thresholds": {
                    **manifest_fields()["thresholds"],
                    "deviation": dict.fromkeys([*MEASUREMENTS, "PEE.AvgPower"], 1.0),
                },
            },
            r"input 'x' has shape \['B', 2\], expected \[B, 3\]",
        ),
        (build_model, {"state_size": 4}, r"input 'state' has shape \['B', 3\], expected \[B, 4\]"),
        (lambda: build_model(inputs={**IN, "mask": (F, [1, K])}), {}, r"input 'mask' has a fixed batch 1"),
        (lambda: build_model(outputs={**OUT, "score": (F, ["B", 1])}), {}, r"output 'score' has shape"),
        (lambda: b"not an onnx model", {}, r"onnxruntime cannot load model.onnx"),
    ],
)
def test_wrong_interface_is_refused(tmp_path: Path, model: Any, changes: dict[str, Any], pattern: str) -> None:
    folder = tmp_path / "art"
    write_artifact(folder, model(), manifest_fields(**changes))
    with pytest.raises(ArtifactError, match=pattern) as info:
        load_session(read_artifact(folder))
    assert str(folder) in str(info.value)


def test_graph_that_returns_other_shapes_than_declared_is_refused(tmp_path: Path) -> None:
    nodes = [  # score keeps only the cells with a measurement: fewer than B rows on an empty batch
        helper.make_node("Mul", ["x", "mask"], ["xm"]),
        helper.make_node("ReduceSum", ["xm", "axes"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axes"], ["present"], keepdims=0),
        helper.make_node("Greater", ["present", "zero"], ["any"]),
        helper.make_node("Compress", ["total", "any"], ["score"], axis=0),
        helper.make_node("Identity", ["x"], ["deviation"]),
        helper.make_node("Add", ["state", "one"], ["state_out"]),
    ]
    art = write_artifact(tmp_path / "art", build_model(nodes=nodes), manifest_fields())
    with pytest.raises(ArtifactError, match=r"output 'score' is float32 \(0,\), expected float32 \(2,\)"):
        load_session(art)


def ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def test_time_features_at_known_instants() -> None:
    names = list(TIME_FEATURES)
    times = [
        ms("2024-01-06T00:00:00Z"),  # Saturday midnight UTC
        ms("2024-01-08T00:00:00Z"),  # Monday midnight: start of the week
        ms("2024-01-10T12:00:00Z"),  # Wednesday noon: 2.5 days into the week
        ms("2024-01-07T23:59:00Z"),  # Sunday, a minute to midnight
    ]
    out = time_features(names, np.array(times, dtype=np.int64))
    assert out.dtype == np.float32 and out.shape == (4, len(names))
    col = {name: out[:, j] for j, name in enumerate(names)}
    np.testing.assert_allclose(col["tod_sin"][:3], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(col["tod_cos"][:3], [1.0, 1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(col["dow_sin"][1], 0.0, atol=1e-6)
    np.testing.assert_allclose(col["dow_cos"][1], 1.0, atol=1e-6)
    angle = 2 * np.pi * 2.5 / 7
    np.testing.assert_allclose([col["dow_sin"][2], col["dow_cos"][2]], [np.sin(angle), np.cos(angle)], atol=1e-6)
    np.testing.assert_array_equal(col["weekend"], [1.0, 0.0, 0.0, 1.0])


def test_time_features_use_the_local_offset() -> None:
    friday_late_utc = ms("2024-01-05T23:00:00Z")
    assert time_features(["weekend"], [friday_late_utc])[0, 0] == 0.0
    local = time_features(["weekend", "tod_sin", "tod_cos"], [friday_late_utc], utc_offset_h=2.0)[0]
    np.testing.assert_allclose(local, [1.0, np.sin(2 * np.pi / 24), np.cos(2 * np.pi / 24)], atol=1e-6)
    assert time_features(["weekend"], [ms("2024-01-08T01:00:00Z")], utc_offset_h=-5.0)[0, 0] == 1.0


def test_time_features_refuse_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown time features \['hour'\]"):
        time_features(["tod_sin", "hour"], [0])


def test_import_is_torch_free() -> None:
    code = (
        "import sys, json, models.artifact\n"
        "print(json.dumps(sorted(m for m in ('torch', 'sklearn', 'onnx', 'pandas') if m in sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
