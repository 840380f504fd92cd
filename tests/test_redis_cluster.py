"""The data layer on a real three-master Redis Cluster (tests/conftest.py's redis_cluster_url): every multi-key
operation's keys share a slot (computed from ranomaly_contracts.sdl), and both apps' code paths run on the cluster
as their ACL users: the xApp's writes, policies with their change stream and the registry it reads; the rApp's
collector reading streams that live on different slots, the model registry's promotion, jobs, notes and audit.
A cluster with TLS only (its bus too) takes the apps' TLS settings. (tests/test_datalayer_contract.py runs the
xApp's whole data layer contract on the cluster too.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from models.artifact import write_artifact
from ranomaly.redis_process import RedisCluster as LoopbackCluster
from ranomaly.redis_process import RedisTls
from ranomaly_contracts.auth.audit import RedisAuditStream
from ranomaly_contracts.redis_acl import RAPP_USER, XAPP_USER, setuser_commands, users
from ranomaly_contracts.redis_auth import RedisAuth
from ranomaly_contracts.redis_client import AsyncRedis, by_slot, redis_client
from ranomaly_contracts.sdl import PREFIX, SAME_SLOT, SdlKeys, sdl_keys
from rapp.a1.policies import PolicyRegistry
from rapp.collector import Collector
from rapp.console.notes import NoteStore
from rapp.jobrecord import Job, JobStore
from rapp.registry import ModelRegistry
from rapp.settings import RappSettings
from tests.signed import KEY
from tests.test_artifact import build_model, manifest_fields
from tests.test_datalayer_contract import indication
from tests.test_sdl_encoding import MEASUREMENTS, make_batch, make_incident
from tests.tlscerts import TlsCerts
from xapp.app import make_datalayer
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings

PASSWORDS = {"xapp": "xapp-secret", "rapp": "rapp-secret"}
PREFIX_ACL = "cluster-acl"  # this module's namespace: the ACL users' rules name its keys
KEYS = sdl_keys(PREFIX_ACL)


@pytest.mark.parametrize("prefix", [PREFIX, PREFIX_ACL, "t-0123456789ab", "bench-41234"])
def test_every_multi_key_operation_touches_one_slot(prefix: str) -> None:
    """A key joining a MULTI, a script or another multi-key command needs its group's hash tag (sdl.SAME_SLOT)."""
    keys = asdict(sdl_keys(prefix))
    for operation, group in SAME_SLOT.items():
        assert set(group) <= keys.keys(), operation
        slots = {name: key_slot(keys[name].encode()) for name in group}
        assert len(set(slots.values())) == 1, f"{operation}: keys on different slots {slots}"


def test_the_other_keys_spread_over_the_slots() -> None:
    """Only the groups share a tag: the rest (the xApp's streams and cells above all) hash on their own names."""
    grouped = {name for group in SAME_SLOT.values() for name in group}
    keys = asdict(sdl_keys())
    slots = {key_slot(keys[f.name].encode()) for f in fields(SdlKeys) if f.name not in grouped}
    assert len(slots) == len(keys) - len(grouped)
    # the names on one Redis stay those of before the tags, but for the groups'
    assert keys["verdicts"] == "ranomaly:verdicts" and keys["policy_changes"] == "{ranomaly:a1}:changes"


@pytest.fixture(scope="module")
def acl_cluster_url(redis_cluster_url: str) -> Iterator[str]:
    """The session's cluster with the apps' ACL users (for this module's keys) on every master; the default user
    stays on for the other tests."""
    app_users = {name: line for name, line in users(PASSWORDS, prefix=PREFIX_ACL).items() if name != "default"}
    cluster = RedisCluster.from_url(redis_cluster_url)
    for node in cluster.get_nodes():
        admin = redis.Redis(host=node.host, port=node.port)
        for command in setuser_commands(app_users):
            admin.execute_command(*command)
        admin.close()
    cluster.close()
    yield redis_cluster_url


@pytest.fixture
async def rapp_redis(acl_cluster_url: str) -> AsyncIterator[AsyncRedis]:
    """The rApp's shared client on the cluster, as its user."""
    client = redis_client(acl_cluster_url, cluster=True, auth=RedisAuth(RAPP_USER, PASSWORDS["rapp"]))
    yield client
    await client.aclose()


async def test_both_apps_work_on_the_cluster_as_their_users(
    acl_cluster_url: str, rapp_redis: AsyncRedis, tmp_path: Path
) -> None:
    url = acl_cluster_url
    assert key_slot(KEYS.kpm.encode()) != key_slot(KEYS.incidents.encode())  # the collector reads two slots
    layer = RedisDataLayer(url, prefix=PREFIX_ACL, cluster=True, auth=RedisAuth(XAPP_USER, PASSWORDS["xapp"]),
                           stream_sample_s=1e-6)  # fmt: skip
    await layer.start()
    collector = Collector(url, tmp_path / "history", prefix=PREFIX_ACL, cluster=True, block_ms=50,
                          auth=RedisAuth(RAPP_USER, PASSWORDS["rapp"]))  # fmt: skip
    try:
        assert (await collector.collect_once()).entries == 0  # groups made; an empty read waits on every slot
        layer.write_verdicts(make_batch(3, seed=1))
        for sequence in range(3):  # one KPM entry per drain
            layer.write_incident(make_incident())
            layer.forward_kpm(MEASUREMENTS, [indication(0, sequence)])
            assert await layer.flush(5)
        health = layer.health()
        assert health.connected and health.errors == 0 and sum(health.dropped.values()) == 0

        # A1 policies: each write is one MULTI of the record and its change entry
        await layer.put_policy_type(7, b'{"name": "t"}')
        await layer.put_policy_instance(7, "p/1", b"{}")
        assert set(await layer.policy_instances()) == {(7, "p/1")}
        changes = await layer.read_policy_changes("0-0", 10)
        assert len(changes.entries) == 2 and not changes.trimmed
        await layer.delete_policy_instance(7, "p/1")
        assert (await layer.read_policy_changes(changes.entries[-1][0], 10)).entries[0][1].startswith(b'{"op": "del')
        await layer.append_audit(b'{"who": "xapp"}')

        # the rApp's collector: both streams, on their two slots, every entry once
        totals = (0, 0)
        for _ in range(10):
            cycle = await collector.collect_once()
            totals = (totals[0] + cycle.entries, totals[1] + cycle.acked)
            if totals[0] >= 6:
                break
        assert totals == (6, 6) and collector.stats.totals.incidents == 3 and collector.stats.totals.malformed == 0
        assert (await collector.collect_once()).entries == 0
    finally:
        await collector.close()

    # the model registry: publish and promote (one MULTI with the promotion script), sign at the next counter
    registry = ModelRegistry(rapp_redis, KEYS, KEY)
    write_artifact(tmp_path / "model", build_model(), manifest_fields(version="cluster-1"))
    assert await registry.publish(tmp_path / "model") == "cluster-1"
    await registry.promote_again("cluster-1")
    assert await registry.promoted() == ["cluster-1"] and await registry.get("cluster-1") is not None
    assert await layer.promoted_models() == ["cluster-1"] and await layer.get_model("cluster-1") is not None
    assert await layer.model_signature("cluster-1") is not None
    await layer.accept_promotion("xapp-1", 2, "cluster-1")
    await layer.accept_promotion("xapp-1", 1, "older")
    assert await layer.accepted_promotion("xapp-1") == (2, "cluster-1")
    await layer.close()

    # jobs (a MULTI), notes (WATCH ... MULTI), policies and audit
    jobs = JobStore(rapp_redis, KEYS.rapp_jobs)
    await jobs.save([Job("j1", "train", "test")], forget=["j0"])
    assert [job.id for job in await jobs.load(10)] == ["j1"]
    notes = NoteStore(rapp_redis, KEYS.rapp_incident_notes)
    await notes.annotate("inc-1", "operator", "looked at it")
    await notes.acknowledge("inc-1", "operator")
    assert (await notes.get("inc-1")).review() == "acknowledged"
    policies = PolicyRegistry(cast(Any, None), rapp_redis, KEYS.rapp_policies, "ric-1",
                              types_key=KEYS.rapp_policy_types)  # fmt: skip
    await policies.load()
    await RedisAuditStream(rapp_redis, KEYS.audit).append_audit(b'{"who": "rapp"}')
    assert len(await rapp_redis.hgetall(KEYS.cells)) == 3


async def test_the_apps_choose_the_cluster_client_in_settings(redis_cluster_url: str, tmp_path: Path) -> None:
    layer = make_datalayer(XappSettings(datalayer="redis", redis_url=redis_cluster_url, redis_cluster=True))
    assert isinstance(layer, RedisDataLayer)
    await layer.start()
    layer.forward_kpm(MEASUREMENTS, [indication(1, 1)])
    assert await layer.flush(5) and len(await layer.read_kpm()) >= 1
    await layer.close()
    settings = RappSettings(redis_url=redis_cluster_url, redis_cluster=True, history_dir=tmp_path / "history",
                            collect_block_ms=0)  # fmt: skip
    collector = Collector.from_settings(settings, prefix="cluster-settings")
    await collector.collect_once()
    assert collector.stats.connected
    assert len(by_slot(collector._client, [collector.keys.kpm, collector.keys.incidents])) == 2
    await collector.close()


async def test_the_xapp_reaches_a_tls_cluster_with_its_settings(tls_certs: TlsCerts, tmp_path: Path) -> None:
    client = tls_certs.client_tls()
    cluster = LoopbackCluster(tmp_path, tls=RedisTls(tls_certs.server.cert, tls_certs.server.key, tls_certs.ca, client))
    try:
        cluster.start()
        settings = XappSettings(datalayer="redis", redis_url=cluster.url, redis_cluster=True,
                                redis_tls_ca_file=tls_certs.ca, redis_tls_cert_file=tls_certs.client.cert,
                                redis_tls_key_file=tls_certs.client.key)  # fmt: skip
        assert cluster.url.startswith("rediss://")
        layer = make_datalayer(settings)
        assert isinstance(layer, RedisDataLayer)
        await layer.start()
        await layer.put_policy_type(7, b'{"name": "t"}')  # a MULTI on one node
        layer.forward_kpm(MEASUREMENTS, [indication(2, 1)])
        assert await layer.flush(5) and len(await layer.read_kpm()) == 1 and layer.health().connected
        await layer.close()
        # the nodes ask for a client certificate: without one, nothing is reached
        bare = RedisDataLayer(cluster.url, cluster=True, tls=tls_certs.client_tls(with_cert=False), timeout_s=2.0)
        with pytest.raises(DataLayerUnavailable):
            await bare.promoted_models()
        await bare.close()
    finally:
        cluster.stop()


async def test_an_idle_stream_does_not_hold_back_a_busy_one_on_another_slot(
    redis_cluster_url: str, tmp_path: Path
) -> None:
    prefix = "cluster-idle"
    keys = sdl_keys(prefix)
    assert key_slot(keys.kpm.encode()) != key_slot(keys.incidents.encode())
    layer = RedisDataLayer(redis_cluster_url, prefix=prefix, cluster=True)
    await layer.start()
    layer.forward_kpm(MEASUREMENTS, [indication(3, 1)])
    assert await layer.flush(5)
    await layer.close()
    collector = Collector(redis_cluster_url, tmp_path / "history", prefix=prefix, cluster=True, block_ms=120_000)
    try:
        assert (await collector.collect_once()).entries == 0  # groups made; this consumer had nothing pending
        # new entries on the KPM stream's slot only: the read answers without waiting out the incidents' block
        cycle = await asyncio.wait_for(collector.collect_once(), 60)
        assert (cycle.entries, cycle.acked) == (1, 1)
    finally:
        await collector.close()
