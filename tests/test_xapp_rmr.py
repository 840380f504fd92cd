"""The xApp inside a (simulated) O-RAN SC RIC: E2SM-KPM in E2AP over the fake RMR, subscriptions through the
subscription manager's REST API (a fake on loopback), A1 policies from the A1 mediator over RMR."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import structlog

from e2sim.ric import RIC_INDICATION, RicE2Nodes
from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly_contracts.e2sm.e2ap import RicIndication, encode_ric_indication
from ranomaly_contracts.e2sm.fast import KpmValues, decode_kpm
from ranomaly_contracts.e2sm.kpm import encode_indication_header, encode_indication_message_format1
from ranomaly_contracts.ratelog import RateLimitedLog
from tests.submgr_fake import SubmgrFake
from tests.test_xapp_service import Running, model_folder, start_xapp, until
from xapp import e2raw
from xapp.app import XappService
from xapp.datalayer.memory import MemoryDataLayer
from xapp.metrics import XappMetrics
from xapp.policy.rmr import A1_POLICY_QUERY, A1_POLICY_REQ, A1_POLICY_RESP
from xapp.ric.cells import RicCell, parse_ric_cell, parse_ric_cells
from xapp.ric.fakermr import FakeRmrEndpoint, FakeRmrRouter
from xapp.ric.kpm import KpmIntake
from xapp.settings import XappSettings
from xapp.shard.assign import share

PERIOD_MS = 60_000
CELLS = 6
POLICY = {"enabled": True, "scope": {"cells": ["c-1"]}, "threshold": {"mode": "sigma", "value": 3.5}}


@dataclass
class Ric:
    """The RIC around one xApp: the RMR fabric, E2 nodes behind the E2 termination, the mediator, the manager."""

    router: FakeRmrRouter
    mediator: FakeRmrEndpoint
    nodes: RicE2Nodes
    submgr: SubmgrFake
    xapp: Running
    layer: MemoryDataLayer

    async def close(self) -> None:
        await self.xapp.stop()
        await self.submgr.stop()
        self.router.close()

    def mediator_got(self, mtype: int) -> list[dict[str, object]]:
        return [json.loads(m.payload) for m in self.mediator.receive_many(100) if m.mtype == mtype]


async def start_ric(tmp_path: Path, cells: int, **settings: object) -> Ric:
    """An xApp (trivial model, in-memory data layer) in a RIC of `cells` simulated cells."""
    router = FakeRmrRouter()
    xapp_side, e2term, mediator = router.endpoint("xapp"), router.endpoint("e2term"), router.endpoint("a1mediator")
    for mtype in (RIC_INDICATION, A1_POLICY_REQ):
        router.route(mtype, to="xapp")
    router.route(A1_POLICY_QUERY, to="a1mediator")
    nodes = RicE2Nodes(World(WorldConfig(seed=5, n_cells=cells)), e2term)
    submgr = SubmgrFake(notify_retry_s=0.05)
    submgr.on_subscribe = lambda meid, function, trigger, actions, instance: nodes.subscribe(
        meid, function, trigger, [(a.action_id, a.definition) for a in actions], instance
    )
    await submgr.start()
    fields: dict[str, object] = {
        "transport": "rmr", "ric_cells": nodes.ric_cells(), "submgr_url": submgr.base_url,
        "advertise_host": "127.0.0.1", "http_host": "127.0.0.1", "a1_port": 0, "period_ms": PERIOD_MS,
        "seed_model_dir": model_folder(tmp_path, "t1", PERIOD_MS), "model_poll_s": 0.2,
    }  # fmt: skip
    layer = MemoryDataLayer()
    xapp = Running(XappService(XappSettings(**(fields | settings)), layer, rmr=xapp_side))  # type: ignore[arg-type]
    return Ric(router, mediator, nodes, submgr, xapp, layer)


@pytest.fixture
async def ric(tmp_path: Path) -> AsyncIterator[Ric]:
    ric = await start_ric(tmp_path, CELLS, max_lateness_periods=0)
    yield ric
    await ric.close()


def recent_first_period(periods: int) -> int:
    """A period index whose run of `periods` ends now (collection times pass the decoder's sanity check)."""
    return time.time_ns() // 1_000_000 // PERIOD_MS - periods


async def test_kpm_reports_delivered_as_rmr_are_subscribed_decoded_and_scored(ric: Ric) -> None:
    service = ric.xapp.service
    await service.scoring.wait()
    assert service.ric is not None and service.ric.intake is not None
    intake = service.ric.intake
    await until(lambda: len(intake.bound) == CELLS, what="every cell subscribed through the manager")
    assert len(ric.submgr.subscriptions) == CELLS
    periods = 8
    first = recent_first_period(periods)
    assert ric.nodes.emit(first, periods, PERIOD_MS) == CELLS * periods
    engine = service.engine
    assert engine is not None
    await until(lambda: engine.scored_rows >= CELLS * periods, what="every cell-period scored")
    assert engine.scored_rows == CELLS * periods
    await ric.layer.flush()
    forwarded = [ind for _, entry in await ric.layer.read_kpm() for ind in entry.indications]
    world = ric.nodes.source.block(first, periods, PERIOD_MS)
    cell_index = {cell: i for i, cell in enumerate(ric.nodes.source.cell_ids)}
    catalogue = [m.name for m in ric.nodes.source.measurements]
    columns = [catalogue.index(name) for name in engine.measurements]
    seen = 0
    for indication in forwarded:
        t = (indication.header.collection_start_ms // PERIOD_MS) - first
        values = np.array(indication.values, dtype=np.float32)
        values[list(indication.no_value)] = np.nan  # a record with no value stays one
        for row, cell in zip(values.reshape(len(indication.cell_ids), -1), indication.cell_ids, strict=True):
            np.testing.assert_allclose(row, world.values[t, cell_index[cell], columns], rtol=1e-6, equal_nan=True)
            seen += 1
    assert seen == CELLS * periods, "every report forwarded with the values the node measured"
    assert int(service.metrics.decode_errors.labels("malformed")._value.get()) == 0
    health = (await ric.xapp.http("GET", "/healthz")).json()["ric"]
    assert health["subscribed_cells"] == CELLS and health["rmr_received"] == CELLS * periods


async def test_policies_arrive_from_the_mediator_over_rmr_with_its_quirks(ric: Ric) -> None:
    service = ric.xapp.service
    await service.started.wait()
    await until(lambda: service.ric is not None and service.ric.query_sent.is_set(), what="the policy query")
    assert ric.mediator_got(A1_POLICY_QUERY) == [{"policy_type_id": 20100}], "the type id as a number"
    request = {"operation": "CREATE", "policy_type_id": "20100", "policy_instance_id": "ops-1",
               "payload": json.dumps(POLICY)}  # fmt: skip
    assert ric.mediator.send(A1_POLICY_REQ, json.dumps(request).encode())
    replies: list[dict[str, object]] = []

    def answered() -> bool:
        replies.extend(ric.mediator_got(A1_POLICY_RESP))
        return bool(replies)

    await until(answered, what="the 20011 reply")
    assert replies == [{"policy_type_id": 20100, "policy_instance_id": "ops-1", "handler_id": "ranomaly-xapp",
                        "status": "OK"}]  # fmt: skip
    held = await ric.xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/ops-1")
    assert held.status_code == 200 and held.json() == POLICY, "the same policy store as A1-P over HTTP"
    await service.scoring.wait()

    async def enforced() -> bool:
        status = await ric.xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/ops-1/status")
        return bool(status.json()["enforceStatus"] == "ENFORCED")

    await until(enforced, what="the scoring engine applying the policy")
    bad = {**request, "policy_instance_id": "ops-2", "payload": json.dumps({"enabled": "yes"})}
    assert ric.mediator.send(A1_POLICY_REQ, json.dumps(bad).encode())
    replies.clear()
    await until(answered, what="the refusal")
    assert replies[0]["status"] == "ERROR", "schema validation as over HTTP"
    assert (await ric.xapp.http("GET", "/A1-P/v2/policytypes/20100/policies/ops-2")).status_code == 404


async def test_a_restarted_subscription_manager_gets_the_subscriptions_again(tmp_path: Path) -> None:
    ric = await start_ric(tmp_path, 2, resubscribe_check_s=0.2)
    submgr = ric.submgr
    try:
        await until(lambda: len(submgr.subscriptions) == 2, what="both cells subscribed")
        submgr.restart()
        await until(lambda: len(submgr.subscriptions) == 2, what="both cells subscribed again")
    finally:
        await ric.xapp.stop()
    assert submgr.subscriptions == {}, "deleted on shutdown"
    await submgr.stop()
    ric.router.close()


async def test_a_replica_subscribes_through_the_manager_to_its_share_of_the_nodes_only(tmp_path: Path) -> None:
    ric = await start_ric(tmp_path, 12, replica_index=1, replica_count=2)
    cells = parse_ric_cells(ric.nodes.ric_cells())
    mine = set(share(sorted({cell.meid for cell in cells}), 1, 2))
    assert mine and mine != {cell.meid for cell in cells}
    try:
        await ric.xapp.service.scoring.wait()
        wanted = sum(cell.meid in mine for cell in cells)
        await until(lambda: len(ric.submgr.subscriptions) == wanted, what="a subscription per cell of its nodes")
        assert {sub.meid for sub in ric.submgr.subscriptions.values()} == mine
    finally:
        await ric.close()


# --- the intake on its own ------------------------------------------------------------------------------------


def payload(instance: int, names: list[str], values: list[float | int | None], start_ms: int, sn: int = 0) -> bytes:
    """One RICindication of a one-cell format 1 report."""
    return encode_ric_indication(
        RicIndication(requestor_id=1, instance_id=instance, ran_function_id=2, action_id=1, sequence=sn,
                      indication_type="report", header=encode_indication_header(start_ms),
                      message=encode_indication_message_format1(names, values, PERIOD_MS), call_process_id=None)
    )  # fmt: skip


def intake_of(measurements: list[str]) -> tuple[KpmIntake, XappMetrics]:
    metrics = XappMetrics()
    intake = KpmIntake(measurements, PERIOD_MS, 3, metrics, RateLimitedLog(structlog.get_logger(), 60))
    return intake, metrics


def test_cells_of_one_node_and_period_become_one_indication_in_model_order_with_no_value_kept() -> None:
    intake, metrics = intake_of(["A.x", "B.y", "C.z"])
    cell_1, cell_2 = parse_ric_cell("c1=gnb_1/00101/1"), parse_ric_cell("c2=gnb_1/00101/2")
    intake.bind(7, cell_1)
    intake.bind(8, cell_2)
    start = recent_first_period(1) * PERIOD_MS
    batch = intake.batch([
        payload(7, ["A.x", "B.y", "C.z"], [1, 2.5, None], start),
        payload(8, ["C.z", "A.x"], [30, 10], start),  # named in another order, B.y absent
        payload(9, ["A.x", "B.y", "C.z"], [1, 2, 3], start),  # no subscription of ours
        b"\x00\x05garbage",
    ])  # fmt: skip
    (indication,) = batch.indications
    assert indication.header.node_id == "gnb_1" and indication.header.collection_start_ms == start
    assert list(indication.cell_ids) == ["c1", "c2"]
    assert list(indication.values) == [1.0, 2.5, 0.0, 10.0, 0.0, 30.0]
    assert list(indication.no_value) == [2, 4], "no value is marked, never a zero"
    assert int(metrics.decode_errors.labels("malformed")._value.get()) == 1
    assert int(metrics.decode_errors.labels("unknown_subscription")._value.get()) == 1


def test_sequence_gaps_are_counted_per_subscription_across_the_wrap() -> None:
    intake, metrics = intake_of(["A.x"])
    intake.bind(3, RicCell("c1", "gnb_1", "00101", 1))
    start = recent_first_period(4) * PERIOD_MS
    intake.batch([payload(3, ["A.x"], [1], start, sn=65_534), payload(3, ["A.x"], [1], start + PERIOD_MS, sn=1)])
    assert int(metrics.sequence_gaps._value.get()) == 2  # 65535 and 0 missing
    intake.batch([payload(3, ["A.x"], [1], start + 2 * PERIOD_MS, sn=1)])  # a repeat is no gap
    assert int(metrics.sequence_gaps._value.get()) == 2


def test_a_resubscribed_cell_is_named_by_its_new_instance_only() -> None:
    intake, metrics = intake_of(["A.x"])
    cell = RicCell("c1", "gnb_1", "00101", 1)
    intake.bind(3, cell)
    intake.bind(4, cell)
    start = recent_first_period(1) * PERIOD_MS
    assert len(intake.batch([payload(3, ["A.x"], [1], start)]).indications) == 0
    assert len(intake.batch([payload(4, ["A.x"], [1], start)]).indications) == 1
    intake.unbind(cell)
    assert len(intake.batch([payload(4, ["A.x"], [1], start)]).indications) == 0
    assert int(metrics.decode_errors.labels("unknown_subscription")._value.get()) == 2


async def test_a1_before_any_model_is_answered(tmp_path: Path) -> None:
    """A1 over RMR serves from the start, as A1-P over HTTP does, even while no model can score."""
    router = FakeRmrRouter()
    router.route(A1_POLICY_REQ, to="xapp")
    mediator = router.endpoint("a1mediator")
    router.route(A1_POLICY_QUERY, to="a1mediator")
    settings = XappSettings(transport="rmr", http_host="127.0.0.1", a1_port=0, period_ms=PERIOD_MS, model_poll_s=0.2)
    xapp = Running(XappService(settings, MemoryDataLayer(), rmr=router.endpoint("xapp")))
    try:
        await xapp.service.started.wait()
        request = {"operation": "CREATE", "policy_type_id": "20100", "policy_instance_id": "early", "payload": POLICY}
        await asyncio.sleep(0.1)
        assert mediator.send(A1_POLICY_REQ, json.dumps(request).encode())
        got: list[object] = []
        await until(lambda: got.extend(m.payload for m in mediator.receive_many(10) if m.mtype == A1_POLICY_RESP)
                    or bool(got), what="the reply")  # fmt: skip
        assert json.loads(got[0])["status"] == "OK"  # type: ignore[arg-type]
        assert xapp.service.engine is None, "no model: nothing scores, A1 still answers"
    finally:
        await xapp.stop()
        router.close()


# --- E2SM-KPM bytes on the gRPC contract ----------------------------------------------------------------------


async def forwarded_rows(raw: bool, tmp_path: Path, periods: int, cells: int) -> dict[tuple[str, int], list[float]]:
    """What an xApp subscribed to the simulator (compact or raw E2SM-KPM) forwards: values by (cell, period)."""
    server = SimServer(World(WorldConfig(seed=5, n_cells=cells)), StreamOptions(realtime=False, periods=periods))
    port = await server.start("127.0.0.1", 0)
    layer = MemoryDataLayer()
    model = model_folder(tmp_path / str(raw), "t1", PERIOD_MS)
    xapp = await start_xapp(layer, [f"127.0.0.1:{port}"], model, PERIOD_MS, raw_e2sm_kpm=raw)
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None
        await until(lambda: engine.scored_rows >= cells * periods, what="every cell-period scored")
        await layer.flush()
        rows: dict[tuple[str, int], list[float]] = {}
        for _, entry in await layer.read_kpm():
            for indication in entry.indications:
                values = np.array(indication.values, dtype=np.float64)
                values[list(indication.no_value)] = np.nan
                k = len(entry.measurements)
                for c, cell in enumerate(indication.cell_ids):
                    rows[(cell, indication.header.collection_start_ms)] = values[c * k : (c + 1) * k].tolist()
        assert int(xapp.service.metrics.decode_errors.labels("malformed")._value.get()) == 0
        return rows
    finally:
        await xapp.stop()
        await server.stop(0)


async def test_raw_e2sm_kpm_over_grpc_gives_what_the_compact_form_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compact = await forwarded_rows(False, tmp_path, periods=5, cells=4)
    decoded: list[bytes] = []

    def counted(header: bytes, message: bytes, version: int = 3) -> KpmValues:
        decoded.append(message)
        return decode_kpm(header, message, version)

    monkeypatch.setattr(e2raw, "decode_kpm", counted)
    raw = await forwarded_rows(True, tmp_path, periods=5, cells=4)
    assert len(decoded) == 4 * 5, "every report came as E2SM-KPM bytes"
    assert len(compact) == 4 * 5
    assert raw.keys() == compact.keys()
    for key, values in compact.items():
        np.testing.assert_allclose(raw[key], values, rtol=1e-6, err_msg=str(key))


def test_without_the_rmr_library_the_xapp_stops_with_a_message_naming_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "RANOMALY_XAPP_RMR_LIBRARY": str(tmp_path / "librmr_si.so"),
           "RANOMALY_XAPP_HTTP_HOST": "127.0.0.1", "RANOMALY_XAPP_A1_PORT": "0"}  # fmt: skip
    command = [sys.executable, "-m", "ranomaly", "xapp", "--transport", "rmr"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot load the RMR library '{tmp_path / 'librmr_si.so'}'" in result.stderr
