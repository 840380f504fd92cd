"""Export of a trained forecaster to one self-contained ONNX file with a dynamic batch dimension."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch

from models.forecaster.features import INPUT_NAMES, N_TIME_FEATURES, OUTPUT_NAMES
from models.forecaster.training import Forecaster
from models.onnx_export import to_onnx_bytes

FORMAT = "ranomaly-forecaster/1"


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
    model = onnx.load_from_string(to_onnx_bytes(net, example, INPUT_NAMES, OUTPUT_NAMES))
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
