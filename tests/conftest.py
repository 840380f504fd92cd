"""Shared fixtures: a real Redis, small simulated networks and an in-process E2 server on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import structlog

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly.redis_process import RedisCluster, RedisServer
from tests.signed import trust_test_key
from tests.tlscerts import TlsCerts, make_certs

trust_test_key()  # every xApp and rApp the tests start signs with and trusts the session's key


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: REDIS_URL when set, else a private redis-server started for the session."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Seed URL of a real Redis Cluster: REDIS_CLUSTER_URL when set, else three private masters for the session."""
    given = os.environ.get("REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TlsCerts:
    """A test PKI made for the session (tests/tlscerts.py)."""
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """Each test leaves structlog as it found it: a test that runs a command (which configures logging, at
    WARNING say) must not hide the events a later test captures."""
    config = structlog.get_config()
    yield
    structlog.configure(**config)


@pytest.fixture(autouse=True)
def xapp_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's apps keep their files (the generated API keys) in folders of the test's own (unless a test
    names others), and its rApps authenticate to its xApps with the xApp's key, as a deployment does."""
    folder = tmp_path / "xapp-state"
    monkeypatch.setenv("RANOMALY_XAPP_STATE_DIR", str(folder))
    monkeypatch.setenv("RANOMALY_RAPP_WORK_DIR", str(tmp_path / "rapp-work"))
    monkeypatch.setenv("RANOMALY_RAPP_A1_API_KEY_FILE", str(folder / "api-key"))
    return folder


@pytest.fixture(scope="session")
def small_world() -> World:
    """A 12-cell network, shared read-only by tests."""
    return World(WorldConfig(seed=11, n_cells=12))


async def start_sim(source: object, options: StreamOptions) -> tuple[SimServer, grpc.aio.Channel]:
    """An E2 server on a free loopback port and a channel to it."""
    server = SimServer(source, options)  # type: ignore[arg-type]
    port = await server.start("127.0.0.1", 0)
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


@pytest.fixture
async def accelerated_sim(small_world: World) -> AsyncIterator[tuple[SimServer, grpc.aio.Channel]]:
    """The small world served accelerated, 30 periods per subscription."""
    server, channel = await start_sim(small_world, StreamOptions(realtime=False, periods=30))
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.stop(0)


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder."""
    return Path(__file__).resolve().parent.parent
