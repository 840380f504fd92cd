"""`ranomaly train`: the detector (and the forecaster) from a dataset, written as an artifact folder."""

from __future__ import annotations

import time
from pathlib import Path

from models.artifact import Artifact, artifact_bytes_digest, write_artifact
from models.detector import DetectorConfig, StreamingDetector
from models.forecaster.config import ForecasterConfig
from models.forecaster.export import export_onnx as export_forecaster
from models.forecaster.training import train_forecaster
from ranomaly_contracts.dataset import Dataset, to_arrays

FORECASTER_FILE = "forecaster.onnx"


def train_artifact(
    dataset: Dataset, folder: str | Path, seed: int = 0, forecaster: bool = True
) -> tuple[Artifact, float]:
    """Train on every cell and period of the dataset; write model.onnx, manifest.json and, unless told
    not to, forecaster.onnx; return the artifact and the training time in seconds (the manifest's `training`
    also holds the detector's and the forecaster's apart)."""
    began = time.perf_counter()
    arrays = to_arrays(dataset)
    detector = StreamingDetector(DetectorConfig(seed=seed))
    detector.fit(arrays)
    detector_seconds = time.perf_counter() - began
    assert detector.artifact is not None
    fields = detector.artifact.manifest.model_dump()
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    if forecaster:
        trained = train_forecaster(arrays, ForecasterConfig(seed=seed))
        path = export_forecaster(trained, target / FORECASTER_FILE)
        fields["forecaster"] = {
            "file": FORECASTER_FILE,
            "sha256": artifact_bytes_digest(path.read_bytes()),
            "window": trained.window,
            "horizon": trained.horizon,
        }
    seconds = time.perf_counter() - began
    timing = {"seconds": round(seconds, 1), "detector_seconds": round(detector_seconds, 1)}
    if forecaster:
        timing["forecaster_seconds"] = round(seconds - detector_seconds, 1)
    fields["training"] = {**fields["training"], **timing}
    return write_artifact(target, detector.artifact.onnx, fields), seconds
