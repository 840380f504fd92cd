"""Export of a trained detector step to one self-contained ONNX graph with a dynamic batch dimension."""

from __future__ import annotations

import torch

from models.artifact import GROUP_INPUT
from models.detector.config import TIME_FEATURES
from models.detector.step import DetectorStep
from models.onnx_export import OPSET, to_onnx_bytes

INPUT_NAMES = ("x", "mask", "time", "state", GROUP_INPUT)
OUTPUT_NAMES = ("score", "deviation", "state_out")
__all__ = ["INPUT_NAMES", "OPSET", "OUTPUT_NAMES", "export_onnx"]


def export_onnx(step: DetectorStep) -> bytes:
    """The step as ONNX bytes (weights inside): x, mask, time, state, group -> score, deviation, state_out."""
    k, size = step.n_measurements, step.layout.size
    example = (torch.rand(2, k), torch.ones(2, k), torch.zeros(2, len(TIME_FEATURES)), torch.zeros(2, size),
               torch.zeros(2))  # fmt: skip
    return to_onnx_bytes(step, example, INPUT_NAMES, OUTPUT_NAMES)
