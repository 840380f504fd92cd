"""The shared data layer contract: key and stream names, and the payloads written under them.

Both apps import this module; names and encodings are spelled here and nowhere else. The xApp writes,
the rApp reads:

- `STREAM_VERDICTS`: one entry per scoring batch, a `VerdictBatch` (every scored cell-period exactly once).
- `HASH_CELLS`: field cell_id -> the cell's latest `CellState`.
- `STREAM_INCIDENTS`: one entry per `IncidentEvent` (open, update, close).
- `STREAM_KPM`: forwarded KPM batches for the Non-RT side.
- policy types and instances (A1), and the model registry (manifest and ONNX bytes per version, the list of
  promoted versions, the signature record of each version's newest promotion and the promotion counter).
- `STREAM_AUDIT`: written by both apps, one `ranomaly_contracts.auth.audit.AuditRecord` (JSON) per mutating
  HTTP request and per refused credential, bounded by `AUDIT_MAX`.
- `STREAM_POLICY_CHANGES`: one `PolicyChange` per accepted create, replace or delete of a policy type or
  instance, appended in the same transaction as the record; every xApp replica follows it with XREAD from
  its own last id (no consumer group: each replica must see every change) and re-reads the changed records.

Redis Cluster: the keys of each `SAME_SLOT` group share a hash tag (`{ranomaly:a1}`, `{ranomaly:models}`), so
their MULTI transactions and scripts touch one slot; every other key, each stream with its consumer group
inside it, hashes on its own name. A reader of several streams reads each slot's streams in its own command.

Payloads: every stream entry holds one field, `FIELD_DATA`. Verdict batches and KPM forwards are protobuf
(`ranomaly.sdl.v1` in proto/ranomaly_contracts/datalayer/v1/sdl.proto) because of their volume; cell states
and incident events are JSON objects documented beside their encoders below, for the rApp and operators.
Every `decode_*` raises ValueError saying what is malformed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError

from ranomaly_contracts.datalayer.v1 import sdl_pb2 as sdl_pb
from ranomaly_contracts.e2.v1 import e2_pb2 as pb

_T = TypeVar("_T")

PREFIX = "ranomaly"
# Keys that one operation touches together (a MULTI, a script) share a Redis Cluster hash tag, `{<prefix>:<group>}`,
# so that on a cluster they live on one slot; every other key hashes on its whole name and spreads over the
# masters. `SAME_SLOT` lists the groups (tests/test_redis_cluster.py checks them with redis-py's key_slot).
A1_TAG = f"{{{PREFIX}:a1}}"
MODELS_TAG = f"{{{PREFIX}:models}}"
STREAM_VERDICTS = f"{PREFIX}:verdicts"
STREAM_INCIDENTS = f"{PREFIX}:incidents"
STREAM_KPM = f"{PREFIX}:kpm"
HASH_CELLS = f"{PREFIX}:cells"
HASH_POLICY_TYPES = f"{A1_TAG}:types"  # field: policy type id (decimal) -> JSON policy type document
HASH_POLICY_INSTANCES = f"{A1_TAG}:instances"  # field: "<type id>/<instance id>" -> JSON instance record
STREAM_POLICY_CHANGES = f"{A1_TAG}:changes"  # one PolicyChange (JSON) per accepted A1 write, bounded
POLICY_CHANGES_MAX = 10_000  # entries kept (about 100 bytes each); a reader further behind reloads every record
HASH_MODELS_MANIFEST = f"{MODELS_TAG}:manifest"  # field: version -> manifest.json bytes
HASH_MODELS_ONNX = f"{MODELS_TAG}:onnx"  # field: version -> model.onnx bytes
LIST_MODELS_PROMOTED = f"{MODELS_TAG}:promoted"  # promoted versions, oldest first
# signed models (models.signing): the signature record of each version's newest promotion, the promotion
# counter (INCR at every promotion and API rollback), and per xApp consumer the newest promotion it accepted
HASH_MODELS_SIGNATURE = f"{MODELS_TAG}:signature"  # field: version -> signature record (JSON)
KEY_MODELS_COUNTER = f"{MODELS_TAG}:counter"  # integer: the last promotion counter signed
HASH_MODELS_ACCEPTED = f"{MODELS_TAG}:accepted"  # field: consumer -> counter; "<consumer>:version" -> version
# Raises a consumer's accepted promotion (ARGV: consumer, counter, version); a lower or equal counter is kept.
ACCEPT_PROMOTION_SCRIPT = (
    "local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') "
    "if cur and cur >= tonumber(ARGV[2]) then return 0 end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[1] .. ':version', ARGV[3]) return 1"
)
HASH_RAPP_POLICIES = f"{PREFIX}:rapp:policies"  # field: policy id -> JSON record of an operator A1 policy
HASH_RAPP_POLICY_TYPES = f"{PREFIX}:rapp:policy_types"  # field: type id -> JSON type document the rApp restores
HASH_RAPP_SERVICES = f"{PREFIX}:rapp:services"  # field: service id -> JSON registration (rapp.a1.services)
HASH_RAPP_JOBS = f"{PREFIX}:rapp:jobs"  # field: job id -> JSON job record (rapp.jobrecord)
HASH_RAPP_INCIDENT_NOTES = f"{PREFIX}:rapp:incident_notes"  # field: incident id -> operators' notes (JSON)
STREAM_AUDIT = f"{PREFIX}:audit"  # both apps: one JSON entry per mutating request or refused credential
# sharded xApp replicas (docs/scaling.md): each replica's heartbeat, each node's checkpoint, the network summary
HASH_XAPP_REPLICAS = f"{PREFIX}:xapp:replicas"  # field: replica ordinal -> JSON heartbeat (xapp.shard.heartbeat)
HASH_XAPP_CHECKPOINTS = f"{PREFIX}:xapp:checkpoints"  # field: node id -> checkpoint record (xapp.shard.checkpoint)
STREAM_NETWORK_SUMMARY = f"{PREFIX}:network:summary"  # an entry per replica and period (network_summary.py)
NETWORK_SUMMARY_MAX = 10_000  # entries kept (XADD MAXLEN ~)
AUDIT_MAX = 10_000  # audit entries kept (XADD MAXLEN ~: Redis trims whole nodes, so a few more may stay)
# A Redis script that appends a version to LIST_MODELS_PROMOTED unless it is there (run in the artifact's MULTI).
PROMOTE_ONCE_SCRIPT = "if not redis.call('LPOS', KEYS[1], ARGV[1]) then redis.call('RPUSH', KEYS[1], ARGV[1]) end"
RAPP_CONSUMER_GROUP = "ranomaly-rapp"  # the reader whose unread entries trimming counts


class CellStatus(IntEnum):
    """What the xApp concluded about one cell in one period."""

    WARMING_UP = 0  # too little history: neither normal nor anomalous
    NORMAL = 1
    ANOMALOUS = 2
    SILENCED = 3  # scored, but a disabled policy covers the cell (maintenance)


@dataclass(frozen=True, slots=True)
class VerdictBatch:
    """Verdicts of one scoring call: n cell-periods, columnar."""

    model_version: str
    measurements: tuple[str, ...]  # K names, the order of `deviations`
    cell_ids: list[str]
    node_ids: list[str]
    period_start_ms: np.ndarray  # int64 [n], collection start of the scored period
    scores: np.ndarray  # float32 [n]
    statuses: np.ndarray  # uint8 [n], CellStatus values
    deviations: np.ndarray  # float32 [n, K]
    received_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # int64 [n] or empty


@dataclass(frozen=True, slots=True)
class CellState:
    """The latest verdict of one cell (what HASH_CELLS holds per cell)."""

    cell_id: str
    node_id: str
    period_start_ms: int
    score: float
    status: CellStatus
    model_version: str
    incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """How strongly one measurement drives an incident: its share of the excess deviation, in [0, 1], and its
    latest deviation relative to its attribution threshold (1.0: at the threshold)."""

    measurement: str
    share: float
    deviation: float


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """An incident opened, updated or closed on one cell."""

    event: str  # "open" | "update" | "close"
    incident_id: str
    cell_id: str
    node_id: str
    opened_ms: int  # collection start of the first anomalous period of the run
    period_start_ms: int  # the period this event was decided on
    score: float
    peak_score: float
    attribution: tuple[Attribution, ...]
    model_version: str
    closed_ms: int | None = None  # set on close: the last anomalous period's collection start
    reason: str = ""  # on close: "recovered" | "silenced" | "released" | "shutdown"


FIELD_DATA = "data"  # every stream entry carries its payload under this one field


@dataclass(frozen=True, slots=True)
class KpmForward:
    """One KPM stream entry: indications whose records follow `measurements` (subscribed order)."""

    measurements: tuple[str, ...]
    indications: list[pb.Indication]


@dataclass(frozen=True, slots=True)
class SdlKeys:
    """Every key of the data layer under one prefix; `sdl_keys()` gives the names above."""

    verdicts: str
    incidents: str
    kpm: str
    cells: str
    policy_types: str
    policy_instances: str
    policy_changes: str
    models_manifest: str
    models_onnx: str
    models_promoted: str
    models_signature: str
    models_counter: str
    models_accepted: str
    rapp_policies: str
    rapp_policy_types: str
    rapp_services: str
    rapp_jobs: str
    rapp_incident_notes: str
    audit: str
    xapp_replicas: str
    xapp_checkpoints: str
    network_summary: str


# The keys that one operation touches together, by `SdlKeys` field; each group shares a hash tag (one slot).
SAME_SLOT: dict[str, tuple[str, ...]] = {
    "a policy write and its change entry (one MULTI)": ("policy_types", "policy_instances", "policy_changes"),
    "a model's publish, signature and promotion (one MULTI with PROMOTE_ONCE_SCRIPT), its promotion counter and "
    "the consumers' accepted promotion (ACCEPT_PROMOTION_SCRIPT)": (
        "models_manifest", "models_onnx", "models_signature", "models_promoted", "models_counter", "models_accepted",
    ),
}  # fmt: skip


def sdl_keys(prefix: str = PREFIX) -> SdlKeys:
    """The names above with `prefix` in place of PREFIX (a separate namespace, for example per test)."""

    def key(name: str) -> str:
        return name.replace(PREFIX, prefix, 1)  # the first occurrence: the prefix, bare or in the hash tag

    return SdlKeys(
        verdicts=key(STREAM_VERDICTS),
        incidents=key(STREAM_INCIDENTS),
        kpm=key(STREAM_KPM),
        cells=key(HASH_CELLS),
        policy_types=key(HASH_POLICY_TYPES),
        policy_instances=key(HASH_POLICY_INSTANCES),
        policy_changes=key(STREAM_POLICY_CHANGES),
        models_manifest=key(HASH_MODELS_MANIFEST),
        models_onnx=key(HASH_MODELS_ONNX),
        models_promoted=key(LIST_MODELS_PROMOTED),
        models_signature=key(HASH_MODELS_SIGNATURE),
        models_counter=key(KEY_MODELS_COUNTER),
        models_accepted=key(HASH_MODELS_ACCEPTED),
        rapp_policies=key(HASH_RAPP_POLICIES),
        rapp_policy_types=key(HASH_RAPP_POLICY_TYPES),
        rapp_services=key(HASH_RAPP_SERVICES),
        rapp_jobs=key(HASH_RAPP_JOBS),
        rapp_incident_notes=key(HASH_RAPP_INCIDENT_NOTES),
        audit=key(STREAM_AUDIT),
        xapp_replicas=key(HASH_XAPP_REPLICAS),
        xapp_checkpoints=key(HASH_XAPP_CHECKPOINTS),
        network_summary=key(STREAM_NETWORK_SUMMARY),
    )


def as_text(value: bytes | str) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def policy_instance_field(type_id: int, instance_id: str) -> str:
    """The HASH_POLICY_INSTANCES field of an instance: "<type id>/<instance id>"."""
    return f"{type_id}/{instance_id}"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One STREAM_POLICY_CHANGES entry: which record changed; readers re-read it (the entry holds no body).

    JSON `{"op": "put" | "delete", "type_id": int, "instance_id": str | null}`; a null instance id names the
    policy type itself.
    """

    op: str  # "put" | "delete"
    type_id: int
    instance_id: str | None = None


POLICY_CHANGE_OPS = ("put", "delete")


def encode_policy_change(change: PolicyChange) -> bytes:
    """The stream entry of a change."""
    return json.dumps({"op": change.op, "type_id": change.type_id, "instance_id": change.instance_id}).encode()


def decode_policy_change(data: bytes | str) -> PolicyChange:
    """A change read back; ValueError saying what is malformed."""
    what = "policy change"
    obj = _json_object(data, what)
    op = _string(obj, "op", what)
    if op not in POLICY_CHANGE_OPS:
        raise ValueError(f"{what}: field 'op' must be one of {POLICY_CHANGE_OPS}, got {op!r}")
    return PolicyChange(op, _integer(obj, "type_id", what), _optional(obj, "instance_id", str, what))


def parse_policy_instance_field(name: str) -> tuple[int, str]:
    """(type id, instance id) of a HASH_POLICY_INSTANCES field; the instance id may itself hold '/'."""
    type_id, slash, instance_id = name.partition("/")
    if not slash or not type_id.isdigit():
        raise ValueError(f"policy instance field {name!r} is not '<type id>/<instance id>'")
    return int(type_id), instance_id


# Verdict batches: protobuf ranomaly.sdl.v1.VerdictBatch (proto/ranomaly_contracts/datalayer/v1/sdl.proto).
# The names go through the protobuf library; the numeric columns are packed fixed-width fields, written here
# as one little-endian copy each (tag, length, bytes: the wire format protobuf itself writes for them).
_TAG_PERIOD_START, _TAG_SCORES, _TAG_STATUSES, _TAG_DEVIATIONS, _TAG_RECEIVED = 0x2A, 0x32, 0x3A, 0x42, 0x4A


def varint(value: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _packed(tag: int, column: np.ndarray, dtype: str) -> bytes:
    if column.size == 0:
        return b""
    raw = np.ascontiguousarray(column, dtype=dtype).tobytes()
    return bytes((tag,)) + varint(len(raw)) + raw


def check_verdicts(batch: VerdictBatch) -> int:
    """The number of cell-periods of a well-formed batch; ValueError naming the column that disagrees."""
    n = len(batch.cell_ids)
    k = len(batch.measurements)
    columns = {
        "node_ids": len(batch.node_ids),
        "period_start_ms": np.size(batch.period_start_ms),
        "scores": np.size(batch.scores),
        "statuses": np.size(batch.statuses),
    }
    for name, size in columns.items():
        if size != n:
            raise ValueError(f"verdict batch: {size} {name} for {n} cells")
    if np.shape(batch.deviations) != (n, k):
        raise ValueError(f"verdict batch: deviations of shape {np.shape(batch.deviations)}, expected ({n}, {k})")
    if np.size(batch.received_ms) not in (0, n):
        raise ValueError(f"verdict batch: {np.size(batch.received_ms)} received_ms for {n} cells (0 or {n})")
    if n:
        for status in (int(np.min(batch.statuses)), int(np.max(batch.statuses))):
            if not min(CellStatus) <= status <= max(CellStatus):
                raise ValueError(f"verdict batch: status {status} is not a CellStatus")
    return n


def encode_verdicts(batch: VerdictBatch) -> bytes:
    """A verdict stream entry's payload; ValueError if the batch's columns disagree (see check_verdicts)."""
    check_verdicts(batch)
    names = sdl_pb.VerdictBatch(
        model_version=batch.model_version,
        measurements=batch.measurements,
        cell_ids=batch.cell_ids,
        node_ids=batch.node_ids,
    ).SerializeToString()
    return b"".join(
        (
            names,
            _packed(_TAG_PERIOD_START, batch.period_start_ms, "<i8"),
            _packed(_TAG_SCORES, batch.scores, "<f4"),
            _packed(_TAG_STATUSES, batch.statuses, "u1"),
            _packed(_TAG_DEVIATIONS, batch.deviations, "<f4"),
            _packed(_TAG_RECEIVED, batch.received_ms, "<i8"),
        )
    )


def decode_verdicts(data: bytes) -> VerdictBatch:
    """A verdict batch from a stream entry's payload; ValueError saying what is malformed."""
    try:
        message = sdl_pb.VerdictBatch.FromString(data)
    except DecodeError as error:
        raise ValueError(f"verdict batch: not a ranomaly.sdl.v1.VerdictBatch ({error})") from error
    n, k = len(message.cell_ids), len(message.measurements)
    if len(message.deviations) != n * k:
        raise ValueError(f"verdict batch: {len(message.deviations)} deviations for {n} cells x {k} measurements")
    batch = VerdictBatch(
        model_version=message.model_version,
        measurements=tuple(message.measurements),
        cell_ids=list(message.cell_ids),
        node_ids=list(message.node_ids),
        period_start_ms=np.array(message.period_start_ms, dtype=np.int64),
        scores=np.array(message.scores, dtype=np.float32),
        statuses=np.frombuffer(message.statuses, dtype=np.uint8).copy(),
        deviations=np.array(message.deviations, dtype=np.float32).reshape(n, k),
        received_ms=np.array(message.received_ms, dtype=np.int64),
    )
    check_verdicts(batch)
    return batch


# KPM forward: protobuf ranomaly.sdl.v1.KpmForward, the received indications as they came, names once.


def encode_kpm(measurements: Sequence[str], indications: Iterable[pb.Indication]) -> bytes:
    """A KPM stream entry's payload."""
    return sdl_pb.KpmForward(measurements=measurements, indications=indications).SerializeToString()


def decode_kpm(data: bytes) -> KpmForward:
    """A KPM stream entry; ValueError naming the node whose records do not fit the measurements."""
    try:
        message = sdl_pb.KpmForward.FromString(data)
    except DecodeError as error:
        raise ValueError(f"KPM forward: not a ranomaly.sdl.v1.KpmForward ({error})") from error
    m = len(message.measurements)
    for indication in message.indications:
        cells, values = len(indication.cell_ids), len(indication.values)
        if values != cells * m:
            node = indication.header.node_id or "<no node_id>"
            raise ValueError(f"KPM forward: node {node}: {values} values for {cells} cells x {m} measurements")
    return KpmForward(measurements=tuple(message.measurements), indications=list(message.indications))


# Cell states (HASH_CELLS values) are JSON objects, one per cell:
#   {"cell_id": str, "node_id": str, "period_start_ms": int, "score": number | null, "status": str,
#    "model_version": str, "incident_id": str | null}
# status is the CellStatus name in lower case ("warming_up", "normal", "anomalous", "silenced"); score has
# float32 precision (nine significant digits) and is null when it is not finite. The newest verdict written
# wins; incident_id is the incident open on the cell when that verdict was written (incident events written
# before it, or with it in one drain of the xApp's writer, count).
_STATUS_JSON = tuple(f',"status":"{status.name.lower()}","model_version":' for status in CellStatus)
_STATUS_BY_NAME = {status.name.lower(): status for status in CellStatus}


@lru_cache(maxsize=1 << 16)
def _cell_json_head(cell_id: str, node_id: str) -> str:
    return f'{{"cell_id":{json.dumps(cell_id)},"node_id":{json.dumps(node_id)},"period_start_ms":'


def _float32_texts(values: np.ndarray) -> list[str]:
    texts = [f"{value:.9g}" for value in values.tolist()]
    for index in np.flatnonzero(~np.isfinite(values)).tolist():
        texts[index] = "null"
    return texts


def _cell_json(head: str, period_start_ms: int, score: str, status: int, model: str, incident: str | None) -> bytes:
    tail = "null}" if incident is None else f"{json.dumps(incident)}}}"
    return f'{head}{period_start_ms},"score":{score}{_STATUS_JSON[status]}{model},"incident_id":{tail}'.encode()


def encode_cell_state(state: CellState) -> bytes:
    """A HASH_CELLS value."""
    return _cell_json(
        _cell_json_head(state.cell_id, state.node_id),
        state.period_start_ms,
        _float32_texts(np.array([state.score], dtype=np.float32))[0],
        int(state.status),
        json.dumps(state.model_version),
        state.incident_id,
    )


def encode_cell_states(
    batch: VerdictBatch, incidents: Mapping[str, str], rows: Sequence[int] | None = None
) -> dict[str, bytes]:
    """HASH_CELLS fields for the given rows of a batch (default: all), with the incident open on each cell."""
    model = json.dumps(batch.model_version)
    picked = range(len(batch.cell_ids)) if rows is None else rows
    index = np.asarray(picked, dtype=np.intp)
    columns = zip(
        [batch.cell_ids[i] for i in picked],
        [batch.node_ids[i] for i in picked],
        batch.period_start_ms[index].tolist(),
        _float32_texts(batch.scores[index]),
        batch.statuses[index].tolist(),
        strict=True,
    )
    return {
        cell: _cell_json(_cell_json_head(cell, node), start, score, status, model, incidents.get(cell))
        for cell, node, start, score, status in columns
    }


def decode_cell_state(data: bytes | str) -> CellState:
    """A cell state from its HASH_CELLS value; ValueError naming the field that is wrong."""
    what = "cell state"
    obj = _json_object(data, what)
    status = _string(obj, "status", what)
    if status not in _STATUS_BY_NAME:
        raise ValueError(f"{what}: status {status!r} is not one of {sorted(_STATUS_BY_NAME)}")
    return CellState(
        cell_id=_string(obj, "cell_id", what),
        node_id=_string(obj, "node_id", what),
        period_start_ms=_integer(obj, "period_start_ms", what),
        score=float(np.float32(_number(obj, "score", what))),
        status=_STATUS_BY_NAME[status],
        model_version=_string(obj, "model_version", what),
        incident_id=_optional(obj, "incident_id", str, what),
    )


# Incident events (STREAM_INCIDENTS entries) are JSON objects:
#   {"event": "open" | "update" | "close", "incident_id": str, "cell_id": str, "node_id": str,
#    "opened_ms": int, "period_start_ms": int, "score": number | null, "peak_score": number | null,
#    "attribution": [{"measurement": str, "share": number, "deviation": number | null}, ...],
#    "model_version": str, "closed_ms": int | null, "reason": str}
# Numbers that are not finite are written as null and read back as NaN.
INCIDENT_EVENTS = ("open", "update", "close")


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def encode_incident(event: IncidentEvent) -> bytes:
    """An incident stream entry's payload."""
    document = {
        "event": event.event,
        "incident_id": event.incident_id,
        "cell_id": event.cell_id,
        "node_id": event.node_id,
        "opened_ms": int(event.opened_ms),
        "period_start_ms": int(event.period_start_ms),
        "score": _finite(event.score),
        "peak_score": _finite(event.peak_score),
        "attribution": [
            {"measurement": a.measurement, "share": _finite(a.share), "deviation": _finite(a.deviation)}
            for a in event.attribution
        ],
        "model_version": event.model_version,
        "closed_ms": None if event.closed_ms is None else int(event.closed_ms),
        "reason": event.reason,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode_incident(data: bytes | str) -> IncidentEvent:
    """An incident event from its stream entry's payload; ValueError naming the field that is wrong."""
    what = "incident event"
    obj = _json_object(data, what)
    kind = _string(obj, "event", what)
    if kind not in INCIDENT_EVENTS:
        raise ValueError(f"{what}: event {kind!r} is not one of {INCIDENT_EVENTS}")
    parts = obj.get("attribution")
    if not isinstance(parts, list):
        raise ValueError(f"{what}: field 'attribution' must be a list, got {parts!r}")
    attribution = []
    for index, part in enumerate(parts):
        where = f"{what}: attribution[{index}]"
        if not isinstance(part, dict):
            raise ValueError(f"{where}: expected a JSON object, got {part!r}")
        attribution.append(
            Attribution(
                measurement=_string(part, "measurement", where),
                share=_number(part, "share", where),
                deviation=_number(part, "deviation", where),
            )
        )
    return IncidentEvent(
        event=kind,
        incident_id=_string(obj, "incident_id", what),
        cell_id=_string(obj, "cell_id", what),
        node_id=_string(obj, "node_id", what),
        opened_ms=_integer(obj, "opened_ms", what),
        period_start_ms=_integer(obj, "period_start_ms", what),
        score=_number(obj, "score", what),
        peak_score=_number(obj, "peak_score", what),
        attribution=tuple(attribution),
        model_version=_string(obj, "model_version", what),
        closed_ms=_optional(obj, "closed_ms", int, what),
        reason=_string(obj, "reason", what),
    )


def _json_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError alike
        raise ValueError(f"{what}: not JSON ({error})") from error
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _field(obj: dict[str, Any], key: str, what: str) -> Any:
    if key not in obj:
        raise ValueError(f"{what}: missing field {key!r}")
    return obj[key]


def _string(obj: dict[str, Any], key: str, what: str) -> str:
    value = _field(obj, key, what)
    if not isinstance(value, str):
        raise ValueError(f"{what}: field {key!r} must be a string, got {value!r}")
    return value


def _integer(obj: dict[str, Any], key: str, what: str) -> int:
    value = _field(obj, key, what)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what}: field {key!r} must be an integer, got {value!r}")
    return value


def _number(obj: dict[str, Any], key: str, what: str) -> float:
    value = _field(obj, key, what)
    if value is None:
        return math.nan
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{what}: field {key!r} must be a number or null, got {value!r}")
    return float(value)


def _optional(obj: dict[str, Any], key: str, kind: type[_T], what: str) -> _T | None:
    value = _field(obj, key, what)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"{what}: field {key!r} must be a {kind.__name__} or null, got {value!r}")
    return value
