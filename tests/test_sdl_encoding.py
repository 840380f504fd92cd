"""The data layer's payloads: protobuf verdict batches and KPM forwards, JSON cell states and incidents."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from ranomaly_contracts import sdl
from ranomaly_contracts.datalayer.v1 import sdl_pb2 as sdl_pb
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.sdl import Attribution, CellState, CellStatus, IncidentEvent, VerdictBatch

MEASUREMENTS = ("DRB.UEThpDl", "DRB.UEThpUl", "RRU.PrbUsedDl")


def make_batch(n: int = 4, *, received: bool = True, seed: int = 0) -> VerdictBatch:
    rng = np.random.default_rng(seed)
    return VerdictBatch(
        model_version="2026-01-01T00:00:00Z",
        measurements=MEASUREMENTS,
        cell_ids=[f"gnb-{i // 3:03d}-c{i % 3}" for i in range(n)],
        node_ids=[f"gnb-{i // 3:03d}" for i in range(n)],
        period_start_ms=np.arange(n, dtype=np.int64) * 60_000 + 1_767_225_600_000,
        scores=rng.normal(0, 3, n).astype(np.float32),
        statuses=(np.arange(n) % 4).astype(np.uint8),
        deviations=rng.normal(0, 1, (n, len(MEASUREMENTS))).astype(np.float32),
        received_ms=np.arange(n, dtype=np.int64) + 1_767_225_660_005 if received else np.zeros(0, np.int64),
    )


def assert_same_batch(got: VerdictBatch, sent: VerdictBatch) -> None:
    assert (got.model_version, got.measurements) == (sent.model_version, sent.measurements)
    assert (got.cell_ids, got.node_ids) == (sent.cell_ids, sent.node_ids)
    for name in ("period_start_ms", "scores", "statuses", "deviations", "received_ms"):
        np.testing.assert_array_equal(getattr(got, name), getattr(sent, name), err_msg=name)


@pytest.mark.parametrize("received", [True, False])
def test_verdicts_round_trip(received: bool) -> None:
    sent = make_batch(7, received=received)
    got = sdl.decode_verdicts(sdl.encode_verdicts(sent))
    assert_same_batch(got, sent)
    assert got.scores.dtype == np.float32 and got.deviations.shape == (7, 3)


def test_verdicts_round_trip_keeps_nan_and_an_empty_batch() -> None:
    sent = make_batch(3)
    sent.scores[1] = np.nan
    assert_same_batch(sdl.decode_verdicts(sdl.encode_verdicts(sent)), sent)
    empty = make_batch(0)
    assert_same_batch(sdl.decode_verdicts(sdl.encode_verdicts(empty)), empty)


def test_verdicts_encode_exactly_as_protobuf_writes_them() -> None:
    """The numeric columns are written by hand as packed fields: the bytes equal the library's own."""
    batch = make_batch(300, seed=3)
    library = sdl_pb.VerdictBatch(
        model_version=batch.model_version,
        measurements=batch.measurements,
        cell_ids=batch.cell_ids,
        node_ids=batch.node_ids,
        period_start_ms=batch.period_start_ms.tolist(),
        scores=batch.scores.tolist(),
        statuses=batch.statuses.tobytes(),
        deviations=batch.deviations.ravel().tolist(),
        received_ms=batch.received_ms.tolist(),
    ).SerializeToString()
    assert sdl.encode_verdicts(batch) == library


def test_verdicts_cost_about_four_bytes_a_number() -> None:
    n, k = 1000, len(MEASUREMENTS)
    size = len(sdl.encode_verdicts(make_batch(n)))
    names = sum(len(c) + len(node) + 4 for c, node in zip(make_batch(n).cell_ids, make_batch(n).node_ids, strict=True))
    assert size < names + n * (4 * k + 4 + 1 + 8 + 8) + 200


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: m.node_ids.append("gnb-x"), "5 node_ids for 4 cells"),
        (lambda m: m.deviations.append(1.0), "13 deviations for 4 cells x 3 measurements"),
        (lambda m: setattr(m, "statuses", b"\x00\x01\x09\x00"), "status 9 is not a CellStatus"),
        (lambda m: m.received_ms.append(1), "1 received_ms for 4 cells"),
    ],
)
def test_malformed_verdicts_are_refused_naming_what_is_wrong(mutate: object, reason: str) -> None:
    message = sdl_pb.VerdictBatch.FromString(sdl.encode_verdicts(make_batch(4, received=False)))
    mutate(message)  # type: ignore[operator]
    with pytest.raises(ValueError, match=reason):
        sdl.decode_verdicts(message.SerializeToString())


def test_garbage_is_not_a_verdict_batch() -> None:
    with pytest.raises(ValueError, match="not a ranomaly.sdl.v1.VerdictBatch"):
        sdl.decode_verdicts(b"\xff\xff\xff")


def test_encoding_refuses_a_batch_whose_columns_disagree() -> None:
    good = make_batch(3)
    bad = dataclasses.replace(good, scores=good.scores[:2])
    with pytest.raises(ValueError, match="2 scores for 3 cells"):
        sdl.encode_verdicts(bad)


def test_kpm_forward_round_trips_indications_and_names() -> None:
    indications = [
        pb.Indication(
            header=pb.IndicationHeader(node_id=f"gnb-{i}", collection_start_ms=60_000, granularity_period_ms=60_000),
            cell_ids=[f"gnb-{i}-c0", f"gnb-{i}-c1"],
            values=[float(v) for v in range(6)],
            no_value=[4],
        )
        for i in range(3)
    ]
    got = sdl.decode_kpm(sdl.encode_kpm(MEASUREMENTS, indications))
    assert got.measurements == MEASUREMENTS
    assert got.indications == indications


def test_kpm_forward_whose_records_do_not_fit_is_refused_naming_the_node() -> None:
    bad = pb.Indication(header=pb.IndicationHeader(node_id="gnb-7"), cell_ids=["gnb-7-c0"], values=[1.0, 2.0])
    with pytest.raises(ValueError, match="node gnb-7: 2 values for 1 cells x 3 measurements"):
        sdl.decode_kpm(sdl.encode_kpm(MEASUREMENTS, [bad]))
    with pytest.raises(ValueError, match="not a ranomaly.sdl.v1.KpmForward"):
        sdl.decode_kpm(b"\x0a\xff")


def test_cell_state_is_the_documented_json() -> None:
    state = CellState("gnb-001-c0", "gnb-001", 1_767_225_600_000, 5.25, CellStatus.ANOMALOUS, "v7", "inc-1")
    document = json.loads(sdl.encode_cell_state(state))
    assert document == {
        "cell_id": "gnb-001-c0",
        "node_id": "gnb-001",
        "period_start_ms": 1_767_225_600_000,
        "score": 5.25,
        "status": "anomalous",
        "model_version": "v7",
        "incident_id": "inc-1",
    }
    assert sdl.decode_cell_state(sdl.encode_cell_state(state)) == state


def test_cell_states_of_a_batch_are_the_single_encoding_with_open_incidents() -> None:
    batch = make_batch(6)
    batch.scores[2] = np.inf
    fields = sdl.encode_cell_states(batch, {"gnb-000-c1": "inc-9", "gnb-x": "inc-0"})
    assert list(fields) == batch.cell_ids
    for i, cell in enumerate(batch.cell_ids):
        state = CellState(
            cell_id=cell,
            node_id=batch.node_ids[i],
            period_start_ms=int(batch.period_start_ms[i]),
            score=float(batch.scores[i]),
            status=CellStatus(int(batch.statuses[i])),
            model_version=batch.model_version,
            incident_id="inc-9" if cell == "gnb-000-c1" else None,
        )
        assert fields[cell] == sdl.encode_cell_state(state)
        decoded = sdl.decode_cell_state(fields[cell])
        assert decoded.score == state.score or (i == 2 and math.isnan(decoded.score))
    assert json.loads(fields["gnb-000-c2"])["score"] is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "cell state: not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"cell_id": "c"}', "missing field 'status'"),
        (b'{"status": "broken"}', "status 'broken' is not one of"),
        (
            b'{"cell_id": "c", "node_id": "n", "period_start_ms": "soon", "score": 1, "status": "normal",'
            b' "model_version": "v", "incident_id": null}',
            "field 'period_start_ms' must be an integer",
        ),
    ],
)
def test_malformed_cell_state_is_refused_naming_the_field(payload: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        sdl.decode_cell_state(payload)


def make_incident(event: str = "open", **changes: object) -> IncidentEvent:
    fields: dict[str, object] = {
        "event": event,
        "incident_id": "gnb-001-c0/1767225600000",
        "cell_id": "gnb-001-c0",
        "node_id": "gnb-001",
        "opened_ms": 1_767_225_600_000,
        "period_start_ms": 1_767_225_660_000,
        "score": 7.5,
        "peak_score": 9.125,
        "attribution": (Attribution("DRB.UEThpDl", 0.75, 6.0), Attribution("RRU.PrbUsedDl", 0.25, 2.0)),
        "model_version": "v7",
    }
    return IncidentEvent(**{**fields, **changes})  # type: ignore[arg-type]


def test_incident_round_trips_as_documented_json() -> None:
    for event in (make_incident(), make_incident("close", closed_ms=1_767_225_720_000, reason="recovered")):
        payload = sdl.encode_incident(event)
        assert sdl.decode_incident(payload) == event
        assert set(json.loads(payload)) == {
            "event", "incident_id", "cell_id", "node_id", "opened_ms", "period_start_ms", "score",
            "peak_score", "attribution", "model_version", "closed_ms", "reason",
        }  # fmt: skip


def test_incident_with_numpy_numbers_and_nan_encodes() -> None:
    event = make_incident(score=np.float32(np.nan), opened_ms=np.int64(5), attribution=())
    decoded = sdl.decode_incident(sdl.encode_incident(event))
    assert math.isnan(decoded.score) and decoded.opened_ms == 5
    assert json.loads(sdl.encode_incident(event))["score"] is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event": "reopen"}, "event 'reopen' is not one of"),
        ({"attribution": {"a": 1}}, "field 'attribution' must be a list"),
        ({"attribution": [{"measurement": "m", "share": "most"}]}, r"attribution\[0\]: field 'share' must be a number"),
        ({"closed_ms": 1.5}, "field 'closed_ms' must be a int or null"),
        ({"score": True}, "field 'score' must be a number or null"),
    ],
)
def test_malformed_incident_is_refused_naming_the_field(change: dict[str, object], reason: str) -> None:
    document = {**json.loads(sdl.encode_incident(make_incident())), **change}
    with pytest.raises(ValueError, match=reason):
        sdl.decode_incident(json.dumps(document))
    document.pop("reason")
    with pytest.raises(ValueError, match="incident event"):
        sdl.decode_incident(json.dumps(document).encode())


def test_keys_default_to_the_contract_names_and_move_with_a_prefix() -> None:
    keys = sdl.sdl_keys()
    assert (keys.verdicts, keys.cells, keys.models_promoted) == (
        sdl.STREAM_VERDICTS,
        sdl.HASH_CELLS,
        sdl.LIST_MODELS_PROMOTED,
    )
    assert sdl.sdl_keys("t1").kpm == "t1:kpm"


def test_policy_instance_field_keeps_slashes_in_the_instance_id() -> None:
    name = sdl.policy_instance_field(20100, "ops/cell-7")
    assert name == "20100/ops/cell-7"
    assert sdl.parse_policy_instance_field(name) == (20100, "ops/cell-7")
    with pytest.raises(ValueError, match="not '<type id>/<instance id>'"):
        sdl.parse_policy_instance_field("ranomaly-model")
