"""A trivial model with the Models contract's interface, for hot-path tests and benchmarks.

It scores how far each measurement moved since the cell's previous report: deviation = |x - last| where
present, score = the largest deviation, state = the last value of each measurement. It detects jumps and
nothing else; its point is to cost almost nothing, so what is measured around it is the xApp itself.
Built with the `onnx` helper API (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.artifact import Artifact, parse_artifact

OPSET = 18


def trivial_onnx(n_measurements: int, n_time: int) -> bytes:
    """ONNX bytes of the trivial model for K measurements and T time features."""
    import onnx
    from onnx import TensorProto, helper

    k = n_measurements

    def tensor(name: str, dims: list[Any]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Sub", ["x", "state"], ["moved"]),
        helper.make_node("Abs", ["moved"], ["distance"]),
        helper.make_node("Mul", ["distance", "mask"], ["deviation"]),
        helper.make_node("ReduceMax", ["deviation", "axes"], ["score"], keepdims=0),
        helper.make_node("Sub", ["one", "mask"], ["absent"]),
        helper.make_node("Mul", ["x", "mask"], ["kept_new"]),
        helper.make_node("Mul", ["state", "absent"], ["kept_old"]),
        helper.make_node("Add", ["kept_new", "kept_old"], ["state_out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "trivial",
        [tensor("x", ["B", k]), tensor("mask", ["B", k]), tensor("time", ["B", n_time]), tensor("state", ["B", k])],
        [tensor("score", ["B"]), tensor("deviation", ["B", k]), tensor("state_out", ["B", k])],
        initializer=[one, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def trivial_artifact(
    measurements: Sequence[str],
    period_s: float,
    version: str = "trivial-1",
    threshold: float = 1e9,
    warmup_periods: int = 1,
    time_features: Sequence[str] = ("tod",),
) -> tuple[dict[str, Any], bytes]:
    """Manifest fields and ONNX bytes of a trivial model (write them with write_artifact, or parse them)."""
    from models.artifact import artifact_bytes_digest

    onnx_bytes = trivial_onnx(len(measurements), len(time_features))
    fields = {
        "version": version,
        "created": "2026-01-01T00:00:00Z",
        "period_s": float(period_s),
        "measurements": list(measurements),
        "time_features": list(time_features),
        "state_size": len(measurements),
        "warmup_periods": warmup_periods,
        "thresholds": {
            "score": threshold,
            "deviation": dict.fromkeys(measurements, threshold),
            "score_stats": {"mean": 0.0, "std": 1.0, "quantiles": {"0.99": threshold}},
        },
        "training": {"model": "trivial: largest move since the previous report"},
        "evaluation": {},
        "opset": OPSET,
        "sha256": artifact_bytes_digest(onnx_bytes),
    }
    return fields, onnx_bytes


def parsed_trivial(measurements: Sequence[str], period_s: float, **kwargs: Any) -> Artifact:
    """The trivial model as a checked in-memory Artifact."""
    import json

    fields, onnx_bytes = trivial_artifact(measurements, period_s, **kwargs)
    return parse_artifact(json.dumps(fields), onnx_bytes, f"trivial model {fields['version']}")
