"""Exporting a torch module to one self-contained ONNX graph with a dynamic batch dimension."""

from __future__ import annotations

import io
import logging
import warnings

import torch

OPSET = 18


def to_onnx_bytes(module: torch.nn.Module, example: tuple[torch.Tensor, ...], inputs: tuple[str, ...],
                  outputs: tuple[str, ...]) -> bytes:  # fmt: skip
    """The module as ONNX bytes (weights inside), dimension 0 of every input named `batch` and dynamic."""
    batch = torch.export.Dim("batch", min=1)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter logs skipped torchvision ops and graph dumps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter internals (deprecations, the reused batch name)
            program = torch.onnx.export(
                module.eval(),
                example,
                input_names=list(inputs),
                output_names=list(outputs),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
                external_data=False,
                dynamic_shapes=tuple({0: batch} for _ in inputs),
            )
    finally:
        exporter_log.setLevel(level)
    if program is None:
        raise RuntimeError("the ONNX exporter returned no program")
    buffer = io.BytesIO()
    program.save(buffer, external_data=False)  # type: ignore[arg-type]  # a stream is accepted too
    return buffer.getvalue()
