"""StreamingDetector: fit, export as an artifact, score (the models.api.Detector protocol)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import NODE_PERIOD, Artifact, artifact_bytes_digest, load_session, parse_artifact, write_artifact
from models.detector.config import TIME_FEATURES, DetectorConfig
from models.detector.export import OPSET, export_onnx
from models.detector.step import DetectorStep
from models.detector.train import Thresholds, fit_step
from models.scoring import StreamScores, score_arrays
from ranomaly_contracts.dataset import KpmArrays

FAMILY = "ranomaly-streaming-detector/1"


def period_of(arrays: KpmArrays) -> float:
    """The period of the arrays' grid, in seconds."""
    if len(arrays.times_ms) < 2:
        raise ValueError("at least two periods are needed to know the reporting period")
    return float(arrays.times_ms[1] - arrays.times_ms[0]) / 1000.0


class StreamingDetector:
    """The main detector. fit() trains and exports; score() runs the exported graph in ONNX Runtime."""

    name = "streaming-detector"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.step: DetectorStep | None = None
        self.thresholds: Thresholds | None = None
        self.notes: list[dict[str, str]] = []
        self.artifact: Artifact | None = None
        self._session: Any = None
        self.fit_seconds = 0.0

    def fit(self, train: KpmArrays) -> None:
        """Train on every cell and period of train, export, and load the exported graph."""
        began = time.perf_counter()
        period_s = period_of(train)
        fitted = fit_step(train, period_s, self.config)
        self.step, self.thresholds, self.notes = fitted.step, fitted.thresholds, fitted.notes
        self.fit_seconds = time.perf_counter() - began
        onnx_bytes = export_onnx(self.step)
        fields = self.manifest_fields(train, period_s, onnx_bytes)
        self.artifact = parse_artifact(json.dumps(fields), onnx_bytes, "trained detector")
        self._session = load_session(self.artifact, intra_op_threads=1)

    def manifest_fields(self, train: KpmArrays, period_s: float, onnx_bytes: bytes) -> dict[str, Any]:
        """The manifest of the trained model (ARCHITECTURE.md, Models contract)."""
        assert self.step is not None and self.thresholds is not None
        created = datetime.now(UTC)
        digest = artifact_bytes_digest(onnx_bytes)
        iso = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "version": f"{created:%Y%m%d-%H%M%S}-{digest[:8]}",
            "created": created.strftime(iso),
            "period_s": period_s,
            "measurements": list(train.measurements),
            "time_features": list(TIME_FEATURES),
            "state_size": self.step.layout.size,
            "warmup_periods": self.config.warmup_periods,
            "context": NODE_PERIOD,
            "thresholds": {
                "score": self.thresholds.score,
                "deviation": self.thresholds.deviation,
                "score_stats": self.thresholds.score_stats,
                "rule": self.thresholds.rule,
            },
            "training": {
                "start": datetime.fromtimestamp(int(train.times_ms[0]) / 1000, UTC).strftime(iso),
                "end": datetime.fromtimestamp(int(train.times_ms[-1]) / 1000, UTC).strftime(iso),
                "periods": len(train.times_ms),
                "cells": len(train.cell_ids),
                "seconds": round(self.fit_seconds, 1),
                "config": asdict(self.config),
                "measurement_notes": self.notes,
                "context_gain": dict(zip(train.measurements, self.step.context_gain.tolist(), strict=True)),
            },
            "evaluation": {},
            "opset": OPSET,
            "sha256": digest,
            "model": {"family": FAMILY, "state_bytes_per_cell": 4 * self.step.layout.size},
        }

    def stream(self, data: KpmArrays) -> StreamScores:
        """Scores, deviations and warm-up flags of every reported cell-period, through ONNX Runtime."""
        if self.artifact is None:
            raise RuntimeError("the streaming detector is not fitted")
        return score_arrays(self.artifact, self._session, data)

    def score(self, data: KpmArrays) -> np.ndarray:
        """Scores [T, N]; NaN where a cell did not report or was warming up."""
        streamed = self.stream(data)
        return np.where(streamed.warm, streamed.scores, np.nan)

    def save(self, folder: str | Path) -> Artifact:
        """Write the artifact folder (model.onnx and manifest.json)."""
        if self.artifact is None:
            raise RuntimeError("the streaming detector is not fitted")
        fields = self.artifact.manifest.model_dump()
        return write_artifact(folder, self.artifact.onnx, fields)
