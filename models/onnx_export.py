"""Exporting a torch module to one self-contained ONNX graph with a dynamic batch dimension.

The TorchScript-based exporter traces the module in about half a second, where the dynamo exporter takes
8 to 15 s for the detector's step (graph capture, decompositions, its own optimisation); the trace,
optimised by onnxscript as the dynamo exporter's graph is, runs as fast in ONNX Runtime. Training exports
several graphs (its own passes run in ONNX Runtime), so the difference is most of a small model's training.
"""

from __future__ import annotations

import io
import logging
import warnings

import onnx
import onnxscript.optimizer
import torch

OPSET = 18


def to_onnx_bytes(module: torch.nn.Module, example: tuple[torch.Tensor, ...], inputs: tuple[str, ...],
                  outputs: tuple[str, ...], optimise: bool = True) -> bytes:  # fmt: skip
    """The module as ONNX bytes (weights inside), dimension 0 of every input and output named `batch` and
    dynamic; optimised by onnxscript (constants folded, shapes simplified: a third fewer nodes) unless told
    not to, as for a graph only ONNX Runtime, which optimises on loading, will run."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter logs graph dumps
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter internals (its deprecation, tracer notes)
            torch.onnx.export(
                module.eval(),
                example,
                buffer,  # type: ignore[arg-type]  # a stream is accepted too
                input_names=list(inputs),
                output_names=list(outputs),
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes={name: {0: "batch"} for name in (*inputs, *outputs)},
            )
    finally:
        exporter_log.setLevel(level)
    model = onnx.load_from_string(buffer.getvalue())
    if optimise:
        model = onnxscript.optimizer.optimize(model)
    with torch.no_grad():
        produced = module(*example)
    produced = produced if isinstance(produced, tuple) else (produced,)
    for output, tensor in zip(model.graph.output, produced, strict=True):
        _fixed_beyond_batch(output, tuple(tensor.shape))
    return model.SerializeToString()


def _fixed_beyond_batch(output: onnx.ValueInfoProto, shape: tuple[int, ...]) -> None:
    """Declare the output's dimensions after the batch as the example produced them: the tracer leaves a
    concatenation's size symbolic though it never depends on the batch."""
    dims = output.type.tensor_type.shape.dim
    for dim, size in zip(list(dims)[1:], shape[1:], strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = size
