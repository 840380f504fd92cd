"""Export of a trained detector step to one self-contained ONNX graph with a dynamic batch dimension."""

from __future__ import annotations

import io
import logging
import warnings

import torch

from models.detector.step import DetectorStep

OPSET = 18
INPUT_NAMES = ("x", "mask", "time", "state")
OUTPUT_NAMES = ("score", "deviation", "state_out")


def export_onnx(step: DetectorStep, n_time_features: int) -> bytes:
    """The step as ONNX bytes (weights inside): x, mask, time, state -> score, deviation, state_out."""
    step = step.eval()
    k, size = step.n_measurements, step.layout.size
    example = (torch.rand(2, k), torch.ones(2, k), torch.zeros(2, n_time_features), torch.zeros(2, size))
    batch = torch.export.Dim("batch", min=1)
    buffer = io.BytesIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter logs skipped torchvision ops and graph dumps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter internals (deprecations, the reused batch name)
        program = torch.onnx.export(
            step,
            example,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            external_data=False,
            dynamic_shapes=tuple({0: batch} for _ in INPUT_NAMES),
        )
    quiet.setLevel(level)
    assert program is not None
    program.save(buffer, external_data=False)  # type: ignore[arg-type]  # a stream is accepted too
    return buffer.getvalue()
