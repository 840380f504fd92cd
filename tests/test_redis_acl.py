"""The apps' Redis ACL users on a real redis-server loaded with the generated aclfile: the xApp's data layer and
the rApp's collector, model registry, job store, policies and audit stream work as their users; each user is
refused outside its keys and commands; the default user can do nothing; every data layer key is covered."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import NoPermissionError

from models.artifact import write_artifact
from ranomaly.cli import main
from ranomaly.redis_process import RedisServer, free_port, redis_binary
from ranomaly_contracts.auth.audit import RedisAuditStream
from ranomaly_contracts.redis_acl import RAPP_USER, XAPP_USER, aclfile, covered_keys, rules, setuser_commands, users
from ranomaly_contracts.redis_auth import RedisAuth
from ranomaly_contracts.sdl import SdlKeys, sdl_keys
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
from xapp.app import make_datalayer
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings

ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = {"xapp": "xapp-secret", "rapp": "rapp-secret"}
SEEDER = "xapp-seeder"  # the xApp's rules with a seed model, under a user of its own
KEYS = sdl_keys()


def acl_users() -> dict[str, str]:
    """The generated users, and the seeding xApp's rules beside them."""
    return {**users(PASSWORDS), SEEDER: f"reset on >seed {rules('xapp', xapp_seeds=True)}"}


@pytest.fixture(scope="module")
def acl_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own, started with the generated aclfile (as the charts start theirs)."""
    folder = tmp_path_factory.mktemp("acl")
    (folder / "users.acl").write_text(aclfile(acl_users()))
    port = free_port()
    command = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(folder), "--aclfile", str(folder / "users.acl")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, username=XAPP_USER, password=PASSWORDS["xapp"], socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, "redis-server refused the aclfile"
            time.sleep(0.02)  # polling until the server answers, not a fixed wait
        finally:
            probe.close()
    yield url
    process.terminate()
    process.wait(10)


def as_user(url: str, app: str) -> aioredis.Redis:
    """A client authenticated as an app's user."""
    user = {"xapp": XAPP_USER, "rapp": RAPP_USER}[app]
    return aioredis.Redis.from_url(url, username=user, password=PASSWORDS[app])


@pytest.fixture
async def xapp_layer(acl_url: str) -> AsyncIterator[RedisDataLayer]:
    """The xApp's data layer as its user (every write samples the streams' sizes)."""
    layer = RedisDataLayer(acl_url, auth=RedisAuth(XAPP_USER, PASSWORDS["xapp"]), stream_sample_s=1e-6)
    await layer.start()
    yield layer
    await layer.close()


@pytest.fixture
async def rapp_redis(acl_url: str) -> AsyncIterator[aioredis.Redis]:
    """The rApp's shared client as its user."""
    client = as_user(acl_url, "rapp")
    yield client
    await client.aclose()


async def test_the_xapp_and_the_rapp_work_as_their_users(
    xapp_layer: RedisDataLayer, rapp_redis: aioredis.Redis, acl_url: str, tmp_path: Path
) -> None:
    layer = xapp_layer
    # the rApp's collector makes its group first, so the xApp's KPM trim reads the group's position
    rapp_auth = RedisAuth(RAPP_USER, PASSWORDS["rapp"])
    collector = Collector(acl_url, tmp_path / "history", block_ms=0, auth=rapp_auth)
    assert (await collector.collect_once()).entries == 0

    layer.write_verdicts(make_batch(3, seed=1))
    layer.write_incident(make_incident())
    layer.forward_kpm(MEASUREMENTS, [indication(0, 1)])
    assert await layer.flush(5)
    health = layer.health()
    assert health.connected and health.errors == 0 and sum(health.dropped.values()) == 0

    # A1 policies and their change stream
    await layer.put_policy_type(7, b'{"name": "t"}')
    await layer.put_policy_instance(7, "p/1", b"{}")
    assert set(await layer.policy_types()) == {7} and set(await layer.policy_instances()) == {(7, "p/1")}
    assert (await layer.read_policy_types([7]))[7] and (await layer.read_policy_instances([(7, "p/1")]))[(7, "p/1")]
    head = await layer.policy_changes_head()
    assert len((await layer.read_policy_changes("0-0", 10)).entries) == 2 and head != "0-0"
    await layer.delete_policy_instance(7, "p/1")
    await layer.delete_policy_type(7)
    await layer.append_audit(b'{"who": "xapp"}')

    # the rApp: collect both streams, publish and promote a signed model, jobs, policies, audit
    cycle = await collector.collect_once()
    assert (cycle.entries, cycle.acked, cycle.malformed) == (2, 2, 0)
    await collector.close()
    registry = ModelRegistry(rapp_redis, KEYS, KEY)
    write_artifact(tmp_path / "model", build_model(), manifest_fields(version="acl-1"))
    assert await registry.publish(tmp_path / "model") == "acl-1"
    assert await registry.promoted() == ["acl-1"] and await registry.get("acl-1") is not None
    await registry.promote_again("acl-1")
    jobs = JobStore(rapp_redis, KEYS.rapp_jobs)
    await jobs.save([Job("j1", "train", "test")], forget=["j0"])
    assert [job.id for job in await jobs.load(10)] == ["j1"]
    policies = PolicyRegistry(
        cast(Any, None), rapp_redis, KEYS.rapp_policies, "ric-1", types_key=KEYS.rapp_policy_types
    )
    await policies.load()
    await RedisAuditStream(rapp_redis, KEYS.audit).append_audit(b'{"who": "rapp"}')
    notes = NoteStore(rapp_redis, KEYS.rapp_incident_notes)
    await notes.annotate("inc-1", "operator", "looked at it")
    assert set(await notes.all()) == {"inc-1"}
    assert len(await rapp_redis.hgetall(KEYS.cells)) == 3  # what the console's network view reads

    # the xApp reads the registry and records the promotion it accepted
    assert await layer.promoted_models() == ["acl-1"]
    assert await layer.get_model("acl-1") is not None and await layer.model_signature("acl-1") is not None
    await layer.accept_promotion("xapp-1", 2, "acl-1")
    assert await layer.accepted_promotion("xapp-1") == (2, "acl-1")

    # sharded replicas: heartbeats, node checkpoints, the network summary (xapp/datalayer/redis_replicas.py)
    replicas = layer.replica_data()
    await replicas.put_heartbeat(0, b"beat")
    assert await replicas.heartbeats() == {0: b"beat"}
    await replicas.remove_heartbeat(0)
    await replicas.put_checkpoints({"gnb-1": b"state"})
    assert await replicas.checkpoints(["gnb-1", "gnb-2"]) == {"gnb-1": b"state"}
    await replicas.append_summary(b"{}")
    newest = await replicas.verdict_position()  # what a taken node's holder wrote after its checkpoint
    assert [entry_id for entry_id, _ in await replicas.verdicts_after("0-0", 10)] == [newest]


async def test_only_a_seeding_xapp_may_publish_and_promote(xapp_layer: RedisDataLayer, acl_url: str) -> None:
    with pytest.raises(DataLayerUnavailable, match="NOPERM|no permissions"):
        await xapp_layer.publish_model("seed-1", b"{}", b"onnx")
    seeder = RedisDataLayer(acl_url, auth=RedisAuth(SEEDER, "seed"))
    await seeder.publish_model("seed-1", b"{}", b"onnx", signature=b"{}")
    assert "seed-1" in await seeder.promoted_models()
    await seeder.close()


@pytest.mark.parametrize(
    ("app", "command"),
    [
        ("xapp", ["RPUSH", KEYS.models_promoted, "forged"]),  # promotion is the rApp's
        ("xapp", ["HSET", KEYS.models_onnx, "forged", "x"]),
        ("xapp", ["HSET", KEYS.rapp_jobs, "j", "{}"]),
        ("xapp", ["XREADGROUP", "GROUP", "g", "c", "STREAMS", KEYS.kpm, ">"]),
        ("xapp", ["HGETALL", KEYS.cells]),  # written, never read back
        ("xapp", ["DEL", KEYS.policy_types]),
        ("rapp", ["FLUSHALL"]),
        ("rapp", ["CONFIG", "GET", "*"]),
        ("rapp", ["KEYS", "*"]),
        ("rapp", ["ACL", "LIST"]),
        ("rapp", ["XADD", KEYS.kpm, "*", "data", "forged"]),  # the Near-RT side's streams are read only
        ("rapp", ["HSET", KEYS.policy_instances, "1/x", "{}"]),  # A1 goes over A1-P, not into the xApp's keys
        ("rapp", ["HSET", KEYS.cells, "c", "{}"]),
        ("rapp", ["DEL", KEYS.models_promoted]),
        ("rapp", ["SET", "other", "x"]),
        ("rapp", ["PUBLISH", "channel", "x"]),
        ("xapp", ["SUBSCRIBE", "channel"]),
    ],
)
async def test_each_user_is_refused_outside_its_keys_and_commands(acl_url: str, app: str, command: list[str]) -> None:
    client = as_user(acl_url, app)
    with pytest.raises(NoPermissionError):
        await client.execute_command(*command)
    await client.aclose()


async def test_the_default_user_is_off(acl_url: str) -> None:
    client = aioredis.Redis.from_url(acl_url)
    with pytest.raises(redis.exceptions.AuthenticationError):
        await client.ping()
    await client.aclose()
    for password in ("", "xapp-secret"):
        client = aioredis.Redis.from_url(acl_url, username="default", password=password or None)
        with pytest.raises(redis.exceptions.AuthenticationError):
            await client.ping()
        await client.aclose()


def test_every_data_layer_key_is_granted_to_some_app() -> None:
    """A key added to ranomaly_contracts.sdl needs a grant in ranomaly_contracts.redis_acl (or no app can use it)."""
    assert {f.name for f in fields(SdlKeys)} - covered_keys() == set()


def test_setuser_commands_leave_the_same_users_and_the_default_off(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        admin = redis.Redis.from_url(server.url)  # the default user, until the last command turns it off
        for command in setuser_commands(users(PASSWORDS)):
            admin.execute_command(*command)
        admin.close()
        anonymous = redis.Redis.from_url(server.url)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        xapp = redis.Redis.from_url(server.url, username=XAPP_USER, password=PASSWORDS["xapp"])
        xapp.xadd(KEYS.incidents, {"data": b"x"})
        with pytest.raises(NoPermissionError):
            xapp.xrange(KEYS.incidents)
        xapp.close()
    finally:
        server.stop()


def test_the_command_prints_the_aclfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for app, password in PASSWORDS.items():
        (tmp_path / app).write_text(password + "\n")
    argv = ["redis-acl", "--xapp-password-file", str(tmp_path / "xapp"), "--rapp-password-file", str(tmp_path / "rapp")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed == aclfile(users(PASSWORDS))
    assert "xapp-secret" not in printed  # the aclfile holds hashes, not passwords
    assert main([*argv, "--setuser"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("ACL SETUSER default reset off")


async def test_the_apps_take_their_user_from_settings(acl_url: str, tmp_path: Path) -> None:
    (tmp_path / "xapp").write_text(PASSWORDS["xapp"] + "\n")  # as a Secret's file may end
    (tmp_path / "rapp").write_text(PASSWORDS["rapp"])
    xapp = XappSettings(datalayer="redis", redis_url=acl_url, redis_username=XAPP_USER,
                        redis_password_file=tmp_path / "xapp")  # fmt: skip
    layer = make_datalayer(xapp)
    assert await layer.promoted_models() is not None
    await layer.close()
    rapp = RappSettings(redis_url=acl_url, redis_username=RAPP_USER, redis_password_file=tmp_path / "rapp",
                        history_dir=tmp_path / "history", collect_block_ms=0)  # fmt: skip
    collector = Collector.from_settings(rapp)
    await collector.collect_once()
    await collector.close()


def test_settings_refuse_credentials_that_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="redis_username needs redis_password_file"):
        XappSettings(redis_username=XAPP_USER)
    with pytest.raises(ValidationError, match="keep one of them"):
        RappSettings(redis_url="redis://u:pw@host:6379/0", redis_password_file=tmp_path / "pw")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        XappSettings(redis_password_file=tmp_path / "empty").redis_auth()


def _commands_called(folder: str) -> dict[str, set[str]]:
    """ACL command name -> modules, for every redis-py command method that the modules of a folder importing
    redis call on a Redis client or pipeline (named _client, _redis, redis or pipe, as this code names them)."""
    defined_in = {
        name: getattr(getattr(aioredis.Redis, name), "__module__", None) or "" for name in dir(aioredis.Redis)
    }
    methods = {name for name, module in defined_in.items() if module.startswith("redis.commands")}
    methods |= {"watch", "unwatch"}  # pipeline methods that send a command
    aliases = {"incr": "incrby", "decr": "decrby"}  # redis-py sends these
    called: dict[str, set[str]] = {}
    for module in (ROOT / folder).rglob("*.py"):
        text = module.read_text()
        if not re.search(r"^(import|from) (redis\b|ranomaly_contracts\.redis_client\b)", text, flags=re.MULTILINE):
            continue
        for name in re.findall(r"\b(?:self\.)?(?:_client|_redis|redis|pipe)\.([a-z_]+)\(", text):
            if name in methods:
                called.setdefault(aliases.get(name, name.replace("_", "|")), set()).add(module.name)
    return called


@pytest.mark.parametrize(
    ("folder", "apps"), [("xapp", ["xapp"]), ("rapp", ["rapp"]), ("ranomaly_contracts", ["xapp", "rapp"])]
)
def test_every_command_the_code_calls_is_granted(folder: str, apps: list[str]) -> None:
    """A Redis command that an app's code starts to call fails here until its user is granted it (on the right
    keys: the tests above run the code paths)."""
    called = _commands_called(folder)
    assert "xadd" in called or "hset" in called  # the scan sees the calls
    for app in apps:
        granted = set(re.findall(r"\+([a-z|]+)", rules(app, xapp_seeds=True)))
        assert {command: sorted(where) for command, where in called.items() if command not in granted} == {}, app
