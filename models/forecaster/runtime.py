"""Forecasting with an exported ONNX file and ONNX Runtime only (no torch), as the xApp does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.forecaster.features import INPUT_NAMES, OUTPUT_NAMES, ModelInputs, prepare_inputs


class OnnxForecaster:
    """An exported forecaster: the same predict() as the torch one."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.period_ms = int(meta["period_ms"])
        self._window = int(meta["window"])
        self._horizon = int(meta["horizon"])
        self.measurements: tuple[str, ...] = tuple(json.loads(meta["measurements"]))

    @property
    def window(self) -> int:
        """History periods the network reads."""
        return self._window

    @property
    def horizon(self) -> int:
        """Periods forecast, H."""
        return self._horizon

    def run(self, inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Every graph output (see features.OUTPUT_NAMES) for prepared inputs."""
        feeds = dict(zip(INPUT_NAMES, (inputs.values, inputs.mask, inputs.time_features), strict=True))
        return dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), feeds), strict=True))

    def predict(self, values: np.ndarray, times_ms: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Raw-unit forecasts float32 [B, H, K] of histories values [B, L, K] (NaN where missing) at times_ms [B, L]."""
        inputs = prepare_inputs(values, times_ms, mask, self.window, self.horizon, self.period_ms)
        return self.run(inputs)["forecast"]
