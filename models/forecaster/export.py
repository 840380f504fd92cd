"""Export of a trained forecaster to one self-contained ONNX file with a dynamic batch dimension."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from models.forecaster.features import INPUT_NAMES, N_TIME_FEATURES, OUTPUT_NAMES
from models.forecaster.training import Forecaster

FORMAT = "ranomaly-forecaster/1"
OPSET = 18


def export_onnx(forecaster: Forecaster, path: str | Path) -> Path:
    """Write the forecaster to path (weights inside the file); return the path.

    Inputs: values and mask float32 [B, W, K], time_features float32 [B, W + H, 4]. Outputs: see
    features.OUTPUT_NAMES. The metadata holds the format, period_ms, window, horizon and measurements.
    """
    target = Path(path)
    net, k = forecaster.net.eval(), len(forecaster.measurements)
    generator = np.random.default_rng(0)
    example = (
        torch.from_numpy(generator.random((2, forecaster.window, k), dtype=np.float32)),
        torch.ones(2, forecaster.window, k),
        torch.zeros(2, forecaster.window + forecaster.horizon, N_TIME_FEATURES),
    )
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():  # torch warns that the shared batch name is not reused, then uses it
        warnings.filterwarnings("ignore", message="# The axis name: batch")
        torch.onnx.export(
            net,
            example,
            str(target),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            external_data=False,
            dynamic_shapes=tuple({0: batch} for _ in INPUT_NAMES),
        )
    model = onnx.load(str(target))
    onnx.helper.set_model_props(
        model,
        {
            "format": FORMAT,
            "period_ms": str(forecaster.period_ms),
            "window": str(forecaster.window),
            "horizon": str(forecaster.horizon),
            "measurements": json.dumps(list(forecaster.measurements)),
        },
    )
    onnx.save(model, str(target))
    return target
