"""The streaming detector: one model for all cells, scoring each new period from compact per-cell state.

`StreamingDetector` trains it (torch), exports it to ONNX with its manifest and scores datasets through
ONNX Runtime, so what is evaluated is what the xApp runs. See `step` for the model itself.
"""

from models.detector.config import TIME_FEATURES, DetectorConfig
from models.detector.model import StreamingDetector

__all__ = ["TIME_FEATURES", "DetectorConfig", "StreamingDetector"]
