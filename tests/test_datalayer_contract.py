"""One contract, three backends: the in-memory data layer and the Redis one, on a real redis-server and on a real
three-master Redis Cluster, behave alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs

from ranomaly.redis_process import free_port
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.redis_client import redis_client
from ranomaly_contracts.sdl import (
    RAPP_CONSUMER_GROUP,
    CellStatus,
    VerdictBatch,
    encode_incident,
    encode_kpm,
    encode_verdicts,
)
from tests.test_sdl_encoding import MEASUREMENTS, assert_same_batch, make_batch, make_incident
from xapp.datalayer.bounds import ENTRY_OVERHEAD_BYTES
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.redis import RedisDataLayer

Layer = MemoryDataLayer | RedisDataLayer
MakeLayer = Callable[..., Layer]


@dataclass(frozen=True)
class Backend:
    """Where the parametrized data layer keeps its data: memory (url None), one Redis, or a Redis Cluster."""

    url: str | None = None
    cluster: bool = False


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The backend (the cluster started only for the tests that run on it)."""
    if request.param == "memory":
        return Backend()
    if request.param == "redis":
        return Backend(request.getfixturevalue("redis_url"))
    return Backend(request.getfixturevalue("redis_cluster_url"), cluster=True)


@pytest.fixture
async def make_layer(backend: Backend) -> AsyncIterator[MakeLayer]:
    """Makes a data layer of the parametrized backend (each Redis one under its own key prefix).

    writable=False gives one whose writer cannot write: a memory layer not started, a Redis layer pointed
    at a port nobody listens on.
    """
    made: list[Layer] = []

    def make(writable: bool = True, **bounds: int) -> Layer:
        layer: Layer
        if backend.url is None:
            layer = MemoryDataLayer(**bounds)
        else:
            url = backend.url if writable else f"redis://127.0.0.1:{free_port()}/0"
            layer = RedisDataLayer(url, prefix=f"t-{uuid.uuid4().hex[:12]}", retry_max_s=0.05, close_timeout_s=0.2,
                                   cluster=backend.cluster, **bounds)  # fmt: skip
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.close()


@pytest.fixture
def default_logging() -> Iterator[None]:
    """structlog's default configuration (no level filter left by another test), restored afterwards."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


async def started(layer: Layer, writable: bool = True) -> Layer:
    if writable or isinstance(layer, RedisDataLayer):
        await layer.start()
    return layer


async def create_group(layer: Layer, backend: Backend) -> None:
    if isinstance(layer, MemoryDataLayer):
        layer.create_kpm_group()
        return
    assert backend.url is not None
    client = redis_client(backend.url, cluster=backend.cluster)
    await client.xgroup_create(layer.keys.kpm, RAPP_CONSUMER_GROUP, id="0", mkstream=True)
    await client.aclose()


async def consume(layer: Layer, backend: Backend, count: int) -> int:
    """Deliver count entries to the rApp's group (XREADGROUP ... >); the number delivered."""
    if isinstance(layer, MemoryDataLayer):
        return len(layer.consume_kpm(count=count))
    assert backend.url is not None
    client: Any = redis_client(backend.url, cluster=backend.cluster)  # raw replies: [[stream, [(id, fields), ...]]]
    read = await client.xreadgroup(RAPP_CONSUMER_GROUP, "reader", {layer.keys.kpm: ">"}, count=count)
    await client.aclose()
    return sum(len(entries) for _, entries in read)


def indication(node: int, sequence: int, cells: int = 2) -> pb.Indication:
    return pb.Indication(
        header=pb.IndicationHeader(
            node_id=f"gnb-{node}",
            collection_start_ms=60_000 * sequence,
            granularity_period_ms=60_000,
            sequence_number=sequence,
        ),
        cell_ids=[f"gnb-{node}-c{c}" for c in range(cells)],
        values=[float(node + sequence + v) for v in range(cells * len(MEASUREMENTS))],
    )


def budget(entries: float, payload: bytes) -> int:
    """A stream budget that holds `entries` entries of this payload (a fraction: room for less than one more)."""
    return int(entries * (len(payload) + ENTRY_OVERHEAD_BYTES))


def cells_batch(cells: list[str], period: int, scores: list[float], statuses: list[CellStatus]) -> VerdictBatch:
    n = len(cells)
    return VerdictBatch(
        model_version="v1",
        measurements=MEASUREMENTS,
        cell_ids=cells,
        node_ids=[c.rsplit("-", 1)[0] for c in cells],
        period_start_ms=np.full(n, period, dtype=np.int64),
        scores=np.array(scores, dtype=np.float32),
        statuses=np.array(statuses, dtype=np.uint8),
        deviations=np.zeros((n, len(MEASUREMENTS)), dtype=np.float32),
    )


async def test_verdict_batches_read_back_exactly(make_layer: MakeLayer) -> None:
    layer = await started(make_layer())
    sent = [make_batch(n, seed=n) for n in (1, 5, 40)]
    for batch in sent:
        layer.write_verdicts(batch)
    assert await layer.flush(5)
    read = await layer.read_verdicts()
    assert sum(len(batch.cell_ids) for _, batch in read) == 46
    for (_, got), batch in zip(read, sent, strict=True):
        assert_same_batch(got, batch)
    first_id = read[0][0]
    assert [entry_id for entry_id, _ in await layer.read_verdicts(first_id)] == [e for e, _ in read[1:]]
    health = layer.health()
    assert (health.connected, health.degraded, health.buffered) == (True, False, 0)


async def test_cell_state_is_the_newest_with_the_incident_open_on_it(make_layer: MakeLayer) -> None:
    layer = await started(make_layer())
    a, b = "gnb-1-c0", "gnb-1-c1"
    layer.write_verdicts(cells_batch([a, b], 60_000, [0.5, 1.5], [CellStatus.NORMAL, CellStatus.NORMAL]))
    assert await layer.flush(5)
    layer.write_verdicts(cells_batch([a], 120_000, [8.0], [CellStatus.ANOMALOUS]))
    layer.write_incident(make_incident("open", incident_id="inc-a", cell_id=a))
    layer.write_verdicts(cells_batch([a], 180_000, [9.5], [CellStatus.ANOMALOUS]))  # same drain: newest wins
    assert await layer.flush(5)
    state = await layer.cell_state(a)
    assert state is not None
    assert (state.period_start_ms, state.score, state.status, state.incident_id) == (
        180_000,
        9.5,
        CellStatus.ANOMALOUS,
        "inc-a",
    )
    other = await layer.cell_state(b)
    assert other is not None and (other.period_start_ms, other.node_id, other.incident_id) == (60_000, "gnb-1", None)
    layer.write_incident(make_incident("close", incident_id="inc-a", cell_id=a, closed_ms=180_000, reason="recovered"))
    layer.write_verdicts(cells_batch([a], 240_000, [0.25], [CellStatus.NORMAL]))
    assert await layer.flush(5)
    closed = await layer.cell_state(a)
    assert closed is not None and (closed.status, closed.incident_id) == (CellStatus.NORMAL, None)
    assert await layer.cell_state("gnb-9-c9") is None


async def test_incidents_read_back_in_order(make_layer: MakeLayer) -> None:
    layer = await started(make_layer())
    sent = [make_incident("open", incident_id=f"inc-{i}", period_start_ms=i) for i in range(5)]
    sent.append(make_incident("close", incident_id="inc-4", closed_ms=4, reason="shutdown"))
    for event in sent:
        layer.write_incident(event)
    assert await layer.flush(5)
    assert [event for _, event in await layer.read_incidents()] == sent


async def test_kpm_forward_round_trips_in_order(make_layer: MakeLayer) -> None:
    layer = await started(make_layer())
    first = [indication(n, 1) for n in range(3)]
    second = [indication(n, 2) for n in range(3)]
    other_names = ("DRB.UEThpDl",)
    odd = [pb.Indication(header=pb.IndicationHeader(node_id="gnb-9"), cell_ids=["gnb-9-c0"], values=[1.0])]
    layer.forward_kpm(list(MEASUREMENTS), first)
    layer.forward_kpm(MEASUREMENTS, second)  # same names: shares the entry
    layer.forward_kpm(other_names, odd)
    assert await layer.flush(5)
    entries = [forward for _, forward in await layer.read_kpm()]
    assert [forward.measurements for forward in entries] == [MEASUREMENTS, other_names]
    assert entries[0].indications == first + second and entries[1].indications == odd


async def test_policy_types_and_instances_are_stored_and_removed(make_layer: MakeLayer) -> None:
    layer = make_layer()  # written through: no writer needed
    await layer.put_policy_type(20100, b'{"name": "ranomaly-anomaly-detection"}')
    await layer.put_policy_type(20008, b"{}")
    await layer.put_policy_instance(20100, "ranomaly-model", b'{"enabled": true}')
    await layer.put_policy_instance(20100, "ops/night", b'{"enabled": false}')
    await layer.delete_policy_type(20008)
    await layer.delete_policy_instance(20100, "ranomaly-model")
    await layer.delete_policy_instance(20100, "never-there")
    assert await layer.policy_types() == {20100: b'{"name": "ranomaly-anomaly-detection"}'}
    assert await layer.policy_instances() == {(20100, "ops/night"): b'{"enabled": false}'}


async def test_model_registry_promotes_a_version_once(make_layer: MakeLayer) -> None:
    layer = make_layer()
    await layer.publish_model("v1", b'{"version": "v1"}', b"onnx-1")
    await layer.publish_model("v2", b'{"version": "v2"}', b"onnx-2", promote=False)
    await layer.publish_model("v1", b'{"version": "v1"}', b"onnx-1b")
    assert await layer.promoted_models() == ["v1"]
    await layer.publish_model("v2", b'{"version": "v2"}', b"onnx-2")
    assert await layer.promoted_models() == ["v1", "v2"]
    assert await layer.get_model("v1") == (b'{"version": "v1"}', b"onnx-1b")
    assert await layer.get_model("v3") is None


async def test_model_signatures_and_the_accepted_promotion_only_rises(make_layer: MakeLayer) -> None:
    layer = make_layer()
    await layer.publish_model("v1", b'{"version": "v1"}', b"onnx-1", signature=b'{"signed": 1}')
    await layer.publish_model("v2", b'{"version": "v2"}', b"onnx-2")
    assert (await layer.model_signature("v1"), await layer.model_signature("v2")) == (b'{"signed": 1}', None)
    assert await layer.accepted_promotion("xapp-1") is None
    await layer.accept_promotion("xapp-1", 5, "v2")
    await layer.accept_promotion("xapp-1", 3, "v1")  # lower: kept at 5
    await layer.accept_promotion("xapp-1", 5, "v1")  # equal: kept as it was
    await layer.accept_promotion("xapp-2", 1, "v1")
    assert await layer.accepted_promotion("xapp-1") == (5, "v2")
    assert await layer.accepted_promotion("xapp-2") == (1, "v1")


@pytest.mark.usefixtures("default_logging")
async def test_full_buffers_drop_and_count_per_kind(make_layer: MakeLayer) -> None:
    layer = await started(make_layer(writable=False, verdict_buffer=10, incident_buffer=3, kpm_buffer=4), False)
    with capture_logs() as logs:
        for _ in range(4):
            layer.write_verdicts(make_batch(3))  # 3 batches fit in 10 cell-periods, the 4th is dropped
        for _ in range(5):
            layer.write_incident(make_incident())
        for sequence in range(3):
            layer.forward_kpm(MEASUREMENTS, [indication(0, sequence), indication(1, sequence)])
    health = layer.health()
    assert health.dropped == {"verdicts": 3, "incidents": 2, "kpm": 2}
    assert health.degraded and health.buffered == 3 + 3 + 2
    assert len([line for line in logs if line["event"] == "sdl_write_dropped"]) == 1  # rate-limited
    assert not await layer.flush(0.05)


async def test_incidents_keep_their_own_bound_under_a_verdict_flood(make_layer: MakeLayer) -> None:
    layer = await started(make_layer(writable=False, verdict_buffer=5, incident_buffer=2), False)
    layer.write_incident(make_incident())
    for _ in range(100):
        layer.write_verdicts(make_batch(2))
    layer.write_incident(make_incident("close", closed_ms=1, reason="recovered"))
    assert layer.health().dropped == {"verdicts": 196, "incidents": 0, "kpm": 0}


async def test_streams_are_trimmed_to_their_bounds(make_layer: MakeLayer) -> None:
    verdict_bytes, incident_bytes = (
        budget(3.5, encode_verdicts(make_batch(1))),
        budget(4.5, encode_incident(make_incident())),
    )
    layer = await started(make_layer(verdict_stream_bytes=verdict_bytes, incident_stream_bytes=incident_bytes))
    for i in range(5):
        layer.write_verdicts(make_batch(1, seed=i))
        layer.write_incident(make_incident(period_start_ms=i))
        assert await layer.flush(5)
    verdicts = [batch for _, batch in await layer.read_verdicts()]
    assert len(verdicts) == 3
    assert_same_batch(verdicts[-1], make_batch(1, seed=4))
    assert [event.period_start_ms for _, event in await layer.read_incidents()] == [1, 2, 3, 4]
    health = layer.health()
    assert health.trimmed_unread == 0  # only the KPM stream has a reader whose loss counts
    assert (health.streams["verdicts"].entry_limit, health.streams["incidents"].entry_limit) == (3, 4)


async def test_a_stream_keeps_fewer_entries_as_they_grow(make_layer: MakeLayer) -> None:
    small, large = make_batch(1), make_batch(40)
    layer = await started(make_layer(verdict_stream_bytes=budget(10.5, encode_verdicts(small))))
    for _ in range(12):
        layer.write_verdicts(small)
        assert await layer.flush(5)
    assert len(await layer.read_verdicts()) == layer.health().streams["verdicts"].entry_limit == 10
    for _ in range(12):
        layer.write_verdicts(large)
        assert await layer.flush(5)
    stream = layer.health().streams["verdicts"]
    # the mean follows the entries written: the limit comes down towards the budget over the large entry
    assert stream.entry_limit == int(budget(10.5, encode_verdicts(small)) // stream.entry_bytes) < 10
    assert stream.entry_bytes > len(encode_verdicts(large)) / 2
    assert len(await layer.read_verdicts()) == stream.entry_limit
    assert stream.memory_bytes > 0


async def test_trimmed_kpm_entries_all_count_as_unread_without_the_group(make_layer: MakeLayer) -> None:
    layer = await started(make_layer(kpm_stream_bytes=budget(3.5, encode_kpm(MEASUREMENTS, [indication(0, 1)]))))
    for sequence in range(7):
        layer.forward_kpm(MEASUREMENTS, [indication(0, sequence)])
        assert await layer.flush(5)  # one entry per drain
    entries = await layer.read_kpm()
    assert [forward.indications[0].header.sequence_number for _, forward in entries] == [4, 5, 6]
    assert layer.health().trimmed_unread == 4


async def test_trimmed_kpm_entries_count_only_what_the_group_had_not_read(
    make_layer: MakeLayer, backend: Backend
) -> None:
    layer = await started(make_layer(kpm_stream_bytes=budget(3.5, encode_kpm(MEASUREMENTS, [indication(0, 1)]))))
    for sequence in range(3):
        layer.forward_kpm(MEASUREMENTS, [indication(0, sequence)])
        assert await layer.flush(5)
    await create_group(layer, backend)
    assert await consume(layer, backend, 2) == 2  # entries 0 and 1 delivered, 2 not
    for sequence in range(3, 8):
        layer.forward_kpm(MEASUREMENTS, [indication(0, sequence)])
        assert await layer.flush(5)
    # 8 written, 3 kept: 0..4 trimmed, of which 0 and 1 had been delivered
    assert layer.health().trimmed_unread == 3
    assert await consume(layer, backend, 10) == 3


async def test_close_writes_what_is_buffered(make_layer: MakeLayer) -> None:
    layer = await started(make_layer())
    layer.write_verdicts(make_batch(2))
    layer.write_incident(make_incident())
    await layer.close()
    assert layer.health().buffered == 0 and sum(layer.health().dropped.values()) == 0
    assert len(await layer.read_verdicts()) == 1 and len(await layer.read_incidents()) == 1


async def test_close_drops_and_counts_what_cannot_be_written(make_layer: MakeLayer) -> None:
    layer = await started(make_layer(writable=False), False)
    layer.write_incident(make_incident())
    layer.write_verdicts(make_batch(4))
    await layer.close()
    assert layer.health().dropped == {"verdicts": 4, "incidents": 1, "kpm": 0}


@pytest.mark.usefixtures("default_logging")
async def test_a_malformed_batch_is_refused_counted_and_the_writer_goes_on(make_layer: MakeLayer) -> None:
    layer = await started(make_layer())
    bad = make_batch(3)
    bad.cell_ids.append("gnb-x-c0")
    with capture_logs() as logs:
        layer.write_verdicts(bad)
        assert await layer.flush(5)
    assert [line["event"] for line in logs] == ["sdl_write_refused"]
    layer.write_verdicts(make_batch(2))
    assert await layer.flush(5)
    assert layer.health().dropped == {"verdicts": 4, "incidents": 0, "kpm": 0}
    assert len(await layer.read_verdicts()) == 1
