"""Model artifacts: a folder with `model.onnx` and `manifest.json`; writing, reading and checking them.

Torch-free on purpose: this is the only module of `models` the Near-RT xApp imports (numpy, onnxruntime and
pydantic only). The ONNX interface every artifact implements, for a batch of B cells:
inputs `x` [B, K], `mask` [B, K], `time` [B, T], `state` [B, S]; outputs `score` [B], `deviation` [B, K],
`state_out` [B, S]; all float32, B dynamic, K, T and S fixed by the manifest (measurements, time_features,
state_size). A manifest with `context: "node-period"` declares one more input, `group` [B] (`context_groups()`:
the network context). `time_features()` is the single definition of the time inputs, for training and scoring
alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"

_DAY_MS = 86_400_000
_TAU = 2.0 * math.pi
_Feature = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (day fraction, week fraction, weekday)
_FEATURES: dict[str, _Feature] = {
    "tod_sin": lambda day, week, dow: np.sin(_TAU * day),  # time of day on a 24 h circle, local midnight = 0
    "tod_cos": lambda day, week, dow: np.cos(_TAU * day),
    "dow_sin": lambda day, week, dow: np.sin(_TAU * week),  # position in the week, Monday 00:00 local = 0
    "dow_cos": lambda day, week, dow: np.cos(_TAU * week),
    "weekend": lambda day, week, dow: (dow >= 5).astype(np.float64),  # Saturday and Sunday, local time
    "tod": lambda day, week, dow: day,  # time of day as a fraction in [0, 1), local midnight = 0
}
TIME_FEATURES: tuple[str, ...] = tuple(_FEATURES)
"""The names a manifest's `time_features` may use."""


def time_features(names: Sequence[str], times_ms: Any, utc_offset_h: float = 0.0) -> np.ndarray:
    """Time features float32 [B, len(names)] of collection start times (int64 ms since the epoch, UTC).

    Local time is UTC plus the fixed `utc_offset_h` (no daylight saving). The week position is continuous
    (day of week plus time of day, over 7), so it has no step at midnight.
    """
    unknown = [name for name in names if name not in _FEATURES]
    if unknown:
        raise ValueError(f"unknown time features {unknown}; known: {list(TIME_FEATURES)}")
    local = np.asarray(times_ms, dtype=np.int64).reshape(-1) + round(utc_offset_h * 3_600_000)
    days, ms = np.divmod(local, _DAY_MS)
    day = ms / _DAY_MS
    dow = (days + 3) % 7  # 0 Monday .. 6 Sunday; 1970-01-01 was a Thursday
    week = (dow + day) / 7.0
    out = np.empty((local.shape[0], len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        out[:, j] = _FEATURES[name](day, week, dow)
    return out


NODE_PERIOD = "node-period"
"""The network context a model may declare: which rows of a batch are cells of one node in one period."""
GROUP_INPUT = "group"


def context_groups(node: np.ndarray, collected_ms: np.ndarray) -> np.ndarray:
    """The `group` input of a batch: float32 [B], the rows of one node (any integer id) collected at one time
    numbered alike, from 0 in order of (node, time). The model pools what the other cells of a row's group
    did in the same period; a row alone in its group has no network context."""
    node, stamp = np.asarray(node, dtype=np.int64), np.asarray(collected_ms, dtype=np.int64)
    order = np.lexsort((stamp, node))
    node, stamp = node[order], stamp[order]
    starts = np.ones(len(order), dtype=bool)  # the first row of each group in sorted order
    starts[1:] = (node[1:] != node[:-1]) | (stamp[1:] != stamp[:-1])
    groups = np.empty(len(order), dtype=np.float32)
    groups[order] = np.cumsum(starts) - 1
    return groups


def artifact_bytes_digest(data: bytes) -> str:
    """Lower-case hex SHA-256 of bytes (what a manifest's `sha256` holds for model.onnx)."""
    return hashlib.sha256(data).hexdigest()


class ArtifactError(ValueError):
    """An artifact refused: the message names where it came from and exactly what is wrong."""


FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # a JSON number, never a string or a bool
Count = Annotated[int, Field(strict=True, ge=0)]


class ScoreStats(BaseModel):
    """Statistics of the score on normal training data, for the A1 threshold modes sigma and quantile."""

    model_config = ConfigDict(extra="allow", frozen=True)
    mean: FiniteFloat
    std: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0)]
    quantiles: dict[str, FiniteFloat]

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: dict[str, float]) -> dict[str, float]:
        try:
            levels = [float(key) for key in value]
        except ValueError as exc:
            raise ValueError(f"quantile keys must be numbers such as '0.99': {exc}") from None
        if any(not 0.0 < q < 1.0 for q in levels):
            raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {list(value)}")
        ordered = [v for _, v in sorted(zip(levels, value.values(), strict=True))]
        if any(b < a for a, b in zip(ordered, ordered[1:], strict=False)):
            raise ValueError("quantile values must not decrease as the level grows")
        return value


class Thresholds(BaseModel):
    """The model's own thresholds: on the score and per measurement on the deviation."""

    model_config = ConfigDict(extra="allow", frozen=True)
    score: FiniteFloat
    deviation: dict[str, FiniteFloat]
    score_stats: ScoreStats


class Manifest(BaseModel):
    """manifest.json: what the model expects and how to judge its outputs. Extra keys are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)
    version: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")]
    created: Annotated[str, Field(strict=True)]  # ISO 8601 with an explicit UTC offset of zero
    period_s: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0.0)]
    measurements: tuple[Annotated[str, Field(strict=True, min_length=1)], ...] = Field(min_length=1)
    time_features: tuple[Annotated[str, Field(strict=True)], ...]
    state_size: Count  # 0 for a stateless model: onnxruntime takes [B, 0] tensors
    warmup_periods: Count
    thresholds: Thresholds
    training: dict[str, Any]
    evaluation: dict[str, Any]
    opset: Annotated[int, Field(strict=True, ge=1)]
    sha256: Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")]
    utc_offset_h: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-14.0, le=14.0)] = 0.0
    context: Literal["node-period"] | None = None  # NODE_PERIOD: the model takes the input `group`

    @field_validator("created")
    @classmethod
    def _created(cls, value: str) -> str:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from None
        if stamp.utcoffset() != timedelta(0):
            raise ValueError(f"must be UTC with an explicit offset (Z or +00:00): {value!r}")
        return value

    @field_validator("measurements", "time_features")
    @classmethod
    def _names(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"names repeated: {repeated}")
        unknown = [name for name in value if name not in _FEATURES]
        if info.field_name == "time_features" and unknown:
            raise ValueError(f"unknown time features {unknown}; known: {list(TIME_FEATURES)}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _deviation_covers_measurements(cls, value: Thresholds, info: ValidationInfo) -> Thresholds:
        measurements = info.data.get("measurements")
        if measurements is None:  # already refused on its own
            return value
        missing = [m for m in measurements if m not in value.deviation]
        extra = sorted(set(value.deviation) - set(measurements))
        if missing or extra:
            raise ValueError(f"deviation must map exactly the measurements: missing {missing}, extra {extra}")
        return value


@dataclass(frozen=True)
class Artifact:
    """A checked artifact: its manifest, the ONNX bytes, and the folder it was read from or written to."""

    manifest: Manifest
    onnx: bytes
    folder: Path | None = None

    @property
    def where(self) -> str:
        """How error messages name this artifact."""
        return f"artifact {self.folder}" if self.folder is not None else f"artifact version {self.manifest.version}"


def _validate(fields: Any, where: str) -> Manifest:
    try:
        return Manifest.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, err['loc']))}': {err['msg']}" for err in exc.errors())
        raise ArtifactError(f"{where}: invalid {MANIFEST_FILE}: {problems}") from None


def parse_artifact(manifest_json: bytes | str, onnx_bytes: bytes, where: str, folder: Path | None = None) -> Artifact:
    """Check a manifest's JSON text and the ONNX bytes (schema, sha256); `where` names the source in errors."""
    try:
        fields = json.loads(manifest_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{where}: {MANIFEST_FILE} is not readable JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise ArtifactError(f"{where}: {MANIFEST_FILE} must hold a JSON object, not {type(fields).__name__}")
    manifest = _validate(fields, where)
    actual = artifact_bytes_digest(onnx_bytes)
    if actual != manifest.sha256:
        raise ArtifactError(f"{where}: sha256 mismatch: manifest says {manifest.sha256}, {MODEL_FILE} is {actual}")
    return Artifact(manifest, onnx_bytes, folder)


def read_artifact(folder: str | os.PathLike[str]) -> Artifact:
    """Read an artifact folder and check its files, manifest schema and sha256."""
    path = Path(folder)
    where = f"artifact {path}"
    if not path.is_dir():
        raise ArtifactError(f"{where}: not a folder")
    try:
        manifest_json, onnx_bytes = (path / MANIFEST_FILE).read_bytes(), (path / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{where}: cannot read {Path(exc.filename).name}: {exc.strerror}") from None
    return parse_artifact(manifest_json, onnx_bytes, where, path)


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; readers (the xApp's user) must see it
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifact(folder: str | os.PathLike[str], onnx_bytes: bytes, manifest_fields: dict[str, Any]) -> Artifact:
    """Validate and write an artifact: sha256 computed, `created` filled if absent, each file atomically.

    model.onnx is replaced before manifest.json, so a reader in between sees a hash mismatch, never a
    mismatched pair that passes.
    """
    path = Path(folder)
    where = f"artifact {path}"
    digest = artifact_bytes_digest(onnx_bytes)
    given = manifest_fields.get("sha256")
    if given is not None and given != digest:
        raise ArtifactError(f"{where}: sha256 mismatch: manifest_fields say {given}, the ONNX bytes are {digest}")
    fields = {**manifest_fields, "sha256": digest}
    fields.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    manifest = _validate(fields, where)
    path.mkdir(parents=True, exist_ok=True)
    _write_atomic(path / MODEL_FILE, onnx_bytes)
    _write_atomic(path / MANIFEST_FILE, (manifest.model_dump_json(indent=2) + "\n").encode())
    return Artifact(manifest, onnx_bytes, path)


def _interface(manifest: Manifest) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """Expected inputs and outputs: name -> fixed second dimension (None for rank 1)."""
    k, t, s = len(manifest.measurements), len(manifest.time_features), manifest.state_size
    inputs: dict[str, int | None] = {"x": k, "mask": k, "time": t, "state": s}
    if manifest.context == NODE_PERIOD:
        inputs[GROUP_INPUT] = None
    return inputs, {"score": None, "deviation": k, "state_out": s}


def _check_args(args: Sequence[Any], expected: Mapping[str, int | None], kind: str, where: str) -> None:
    names = [arg.name for arg in args]
    missing = [n for n in expected if n not in names]
    unexpected = [n for n in names if n not in expected]
    if missing or unexpected:
        raise ArtifactError(f"{where}: {kind}s must be {list(expected)}; missing {missing}, unexpected {unexpected}")
    for arg in args:
        dim = expected[arg.name]
        want = "[B]" if dim is None else f"[B, {dim}]"
        shape = list(arg.shape) if isinstance(arg.shape, list | tuple) else None
        if arg.type != "tensor(float)":
            raise ArtifactError(f"{where}: {kind} '{arg.name}' is {arg.type}, expected tensor(float) (float32)")
        if shape is None or len(shape) != (1 if dim is None else 2):
            raise ArtifactError(f"{where}: {kind} '{arg.name}' has shape {shape}, expected rank {want}")
        if isinstance(shape[0], int):
            raise ArtifactError(f"{where}: {kind} '{arg.name}' has a fixed batch {shape[0]}, expected dynamic {want}")
        if dim is not None and shape[1] != dim:
            raise ArtifactError(f"{where}: {kind} '{arg.name}' has shape {shape}, expected {want} from the manifest")


def load_session(artifact: Artifact, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session for the artifact, its interface checked against the manifest.

    Besides the declared names, types and shapes, one run on a zero batch of two cells checks the shapes
    and types the graph actually returns.
    """
    where = artifact.where
    if "CPUExecutionProvider" not in ort.get_available_providers():
        raise ArtifactError(f"{where}: onnxruntime offers no CPUExecutionProvider: {ort.get_available_providers()}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(artifact.onnx, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unparsable or invalid models
        raise ArtifactError(f"{where}: onnxruntime cannot load {MODEL_FILE}: {exc}") from None
    inputs, outputs = _interface(artifact.manifest)
    _check_args(session.get_inputs(), inputs, "input", where)
    _check_args(session.get_outputs(), outputs, "output", where)
    feeds = {name: np.zeros((2,) if dim is None else (2, dim), dtype=np.float32) for name, dim in inputs.items()}
    try:
        results = session.run(list(outputs), feeds)
    except Exception as exc:  # a graph that declares the interface but fails on it
        raise ArtifactError(f"{where}: {MODEL_FILE} fails on a zero batch of two cells: {exc}") from None
    for (name, dim), value in zip(outputs.items(), results, strict=True):
        want = (2,) if dim is None else (2, dim)
        if value.dtype != np.float32 or value.shape != want:
            raise ArtifactError(f"{where}: output '{name}' is {value.dtype} {value.shape}, expected float32 {want}")
    return session
