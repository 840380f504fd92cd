"""Signed models with real Ed25519 keys and a real Redis: the rApp's registry signs promotions, the xApp loads
only what a trusted key signed at a newer promotion counter, and counts what it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from models.artifact import artifact_bytes_digest, write_artifact
from models.signing import (
    REASONS,
    SIGNATURE_FILE,
    SigningKey,
    generate_key_pair,
    load_signing_key,
    load_trusted_keys,
    sign,
    verify,
)
from models.trivial import trivial_artifact
from ranomaly.cli import main
from ranomaly.redis_process import free_port
from ranomaly_contracts.sdl import sdl_keys
from rapp.app import RappService
from rapp.registry import ModelRegistry
from rapp.settings import RappSettings
from rapp.signing import signing_key
from tests.auth_helpers import app_key
from tests.signed import record as session_record
from tests.test_xapp_hardening_service import MODEL_POLICY, PERIOD_MS, Running, indication
from tests.waiting import until
from tests.xapp_helpers import MEASUREMENTS, accepted
from xapp.datalayer.memory import MemoryDataLayer
from xapp.datalayer.redis import RedisDataLayer


def artifact(root: Path, version: str) -> Path:
    """An unsigned trivial artifact folder."""
    fields, onnx = trivial_artifact(MEASUREMENTS, PERIOD_MS / 1000, version=version, warmup_periods=1)
    write_artifact(root / version, onnx, fields)
    return root / version


def stored(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "manifest.json").read_bytes(), (folder / "model.onnx").read_bytes()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[SigningKey, Path]:
    """The rApp's key pair of this test (the xApp trusts its public key; the session's key is untrusted here)."""
    private, public = generate_key_pair(tmp_path / "keys")
    return load_signing_key(private), public


@pytest.fixture
async def registry(redis_url: str, keys: tuple[SigningKey, Path]) -> AsyncIterator[tuple[ModelRegistry, str]]:
    """The rApp's model registry under a prefix of this test's own, and the prefix."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(redis_url)
    yield ModelRegistry(client, sdl_keys(prefix), keys[0]), prefix
    await client.aclose()


def untrusted(xapp: Running, reason: str) -> int:
    return int(xapp.service.metrics.model_untrusted.labels(reason)._value.get())


async def keeps_scoring(xapp: Running, period: int) -> None:
    """One more row scored by the model in use."""
    engine = xapp.service.engine
    assert engine is not None
    before = engine.scored_rows
    engine.on_batch(indication("n1", period, ["c1"]))
    await until(lambda: engine.scored_rows > before, f"period {period} scored")


def test_keygen_writes_a_private_key_only_its_owner_reads_and_sign_writes_a_record_that_verifies(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    assert main(["keygen", "--out", str(keys)]) == 0
    assert stat.S_IMODE(os.stat(keys / "model-signing.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(keys / "model-signing.pub").st_mode) & 0o044 == 0o044  # the public key is public
    assert main(["keygen", "--out", str(keys)]) == 2, "an existing key pair is never overwritten"
    folder = artifact(tmp_path, "local-1")
    assert main(["sign", "--key", str(keys / "model-signing.key"), str(folder)]) == 0
    manifest, onnx = stored(folder)
    promotion = verify((folder / SIGNATURE_FILE).read_bytes(), manifest, onnx, "local-1", load_trusted_keys([keys]))
    assert (promotion.version, promotion.counter) == ("local-1", 0)
    generated = signing_key(None, tmp_path / "work")  # an rApp without a key file makes a pair on first start
    assert stat.S_IMODE(os.stat(tmp_path / "work" / "model-signing" / "model-signing.key").st_mode) == 0o600
    assert signing_key(None, tmp_path / "work").key_id == generated.key_id, "and keeps it"


def forgeries(root: Path, key: SigningKey) -> dict[str, tuple[str, bytes, bytes, bytes | None]]:
    """version -> (the reason it is refused, manifest, ONNX, signature record) of forged registry entries."""
    out: dict[str, tuple[str, bytes, bytes, bytes | None]] = {}
    manifest, onnx = stored(artifact(root, "f-unsigned"))
    out["f-unsigned"] = ("unsigned", manifest, onnx, None)
    manifest, onnx = stored(artifact(root, "f-untrusted"))
    out["f-untrusted"] = ("untrusted_key", manifest, onnx, session_record("f-untrusted", manifest, onnx, 50))
    manifest, onnx = stored(artifact(root, "f-onnx"))
    signature = sign(key, "f-onnx", manifest, artifact_bytes_digest(onnx), 50)
    onnx += b"\x00"  # other ONNX bytes, the manifest's sha256 made to match them
    fields = json.loads(manifest) | {"sha256": artifact_bytes_digest(onnx)}
    out["f-onnx"] = ("digest_mismatch", json.dumps(fields).encode(), onnx, signature)
    manifest, onnx = stored(artifact(root, "f-manifest"))
    signature = sign(key, "f-manifest", manifest, artifact_bytes_digest(onnx), 50)
    fields = json.loads(manifest)
    fields["thresholds"]["score"] = 1e30  # a threshold no alarm ever crosses
    out["f-manifest"] = ("digest_mismatch", json.dumps(fields).encode(), onnx, signature)
    manifest, onnx = stored(artifact(root, "f-payload"))
    doc = json.loads(sign(key, "f-payload", manifest, artifact_bytes_digest(onnx), 50))
    doc["payload"]["counter"] = 99  # raised to a newer counter, the signature kept
    out["f-payload"] = ("bad_signature", manifest, onnx, json.dumps(doc).encode())
    return out


async def test_forged_models_written_into_redis_are_refused_and_counted_while_the_model_keeps_scoring(
    redis_url: str,
    registry: tuple[ModelRegistry, str],
    keys: tuple[SigningKey, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models, prefix = registry
    await models.publish(artifact(tmp_path, "t1"))  # promotion 1
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = Running(layer, trusted_model_keys=[keys[1]])
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None and engine.model.version == "t1"
        opened = accepted({"n1": ["c1"]})
        opened.reporting_period_ms = PERIOD_MS
        engine.on_accepted(opened)
        await keeps_scoring(xapp, 0)
        forged = forgeries(tmp_path / "forged", keys[0])
        for period, (version, (reason, manifest, onnx, signature)) in enumerate(forged.items(), start=1):
            await layer.publish_model(version, manifest, onnx, signature=signature)  # straight into Redis
            named = await xapp.http("PUT", MODEL_POLICY, {"enabled": True, "model_version": version})
            assert named.status_code == 202
            await until(lambda v=version: v in xapp.service.health()["refused_models"], f"{version} refused")  # type: ignore[misc]
            assert untrusted(xapp, reason) >= 1, xapp.service.health()["refused_models"][version]
            assert engine.model.version == "t1"
            await keeps_scoring(xapp, period)
        counts = {reason: untrusted(xapp, reason) for reason in REASONS}
        assert counts == {"unsigned": 1, "bad_signature": 1, "untrusted_key": 1, "replayed": 0, "digest_mismatch": 2}
        logged = capsys.readouterr()
        refusals = [line for line in (logged.out + logged.err).splitlines() if "model_refused" in line]
        for version, (reason, *_) in forged.items():  # one line each, with its reason
            assert len([line for line in refusals if f"version={version}" in line and f"reason={reason}" in line]) == 1
        scrape = (await xapp.http("GET", "/metrics")).text
        assert 'ranomaly_xapp_model_untrusted_total{reason="digest_mismatch"} 2.0' in scrape

        await models.publish(artifact(tmp_path, "t2"))  # a real promotion (2) loads
        assert (await xapp.http("PUT", MODEL_POLICY, {"enabled": True, "model_version": "t2"})).status_code == 202
        await until(lambda: engine.model.version == "t2", "t2 swapped in")
    finally:
        await xapp.stop()
        await layer.close()


async def test_a_replayed_older_promotion_is_refused_also_after_a_restart_until_a_rollback_signs_it_again(
    redis_url: str, registry: tuple[ModelRegistry, str], keys: tuple[SigningKey, Path], tmp_path: Path
) -> None:
    models, prefix = registry
    await models.publish(artifact(tmp_path, "t1"))  # promotion 1
    await models.publish(artifact(tmp_path, "t2"))  # promotion 2: the newest promoted scores
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = Running(layer, trusted_model_keys=[keys[1]])
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None and engine.model.version == "t2"
        assert (await xapp.http("PUT", MODEL_POLICY, {"enabled": True, "model_version": "t1"})).status_code == 202
        await until(lambda: "t1" in xapp.service.health()["refused_models"], "t1 refused")
        assert "not newer than the accepted promotion 2" in xapp.service.health()["refused_models"]["t1"]
        assert untrusted(xapp, "replayed") == 1 and engine.model.version == "t2"
    finally:
        await xapp.stop()
        await layer.close()
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = Running(layer, trusted_model_keys=[keys[1]])  # restarted: the policy still names t1
    try:
        await until(lambda: "t1" in xapp.service.health()["refused_models"], "t1 refused after the restart")
        assert untrusted(xapp, "replayed") == 1 and xapp.service.engine is None
        await models.promote_again("t1")  # what a rollback through the rApp's API does: promotion 3
        await asyncio.wait_for(xapp.service.scoring.wait(), 10)
        assert xapp.service.engine is not None and xapp.service.engine.model.version == "t1"
        assert await xapp.service.trust.newest() == (3, "t1")
    finally:
        await xapp.stop()
        await layer.close()


async def test_an_unsigned_seed_model_loads_only_when_allowed_with_a_warning_at_every_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = artifact(tmp_path, "seed-1")
    xapp = Running(MemoryDataLayer(), seed_model_dir=seed)
    try:
        await until(lambda: untrusted(xapp, "unsigned") == 1, "the unsigned seed refused")
        assert "no signature record" in (xapp.service.model_problem or "") and xapp.service.engine is None
    finally:
        await xapp.stop()
    for _start in range(2):
        xapp = Running(MemoryDataLayer(), seed_model_dir=seed, allow_unsigned_models=True)
        try:
            await asyncio.wait_for(xapp.service.scoring.wait(), 10)
        finally:
            await xapp.stop()
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("unsigned_models_allowed") == 2


async def test_a_rollback_through_the_rapp_api_signs_the_older_version_again_and_the_xapp_takes_it(
    redis_url: str, keys: tuple[SigningKey, Path], tmp_path: Path
) -> None:
    prefix, a1_port = f"test-{uuid.uuid4().hex[:8]}", free_port()
    settings = RappSettings(
        redis_url=redis_url, http_host="127.0.0.1", port=0, a1_base_url=f"http://127.0.0.1:{a1_port}",
        history_dir=tmp_path / "history", work_dir=tmp_path / "work", collect_block_ms=100, enforce_timeout_s=20,
        model_signing_key_file=keys[1].with_suffix(".key"),
    )  # fmt: skip
    rapp = RappService(settings, prefix=prefix)
    for version in ("t1", "t2"):  # promotions 1 and 2, as training jobs publish them
        await rapp.registry.publish(artifact(tmp_path, version))
    layer = RedisDataLayer(redis_url, prefix=prefix)
    xapp = Running(layer, trusted_model_keys=[keys[1].parent], a1_port=a1_port)  # a folder of *.pub
    rapp_task = asyncio.create_task(rapp.run())
    try:
        await xapp.service.scoring.wait()
        engine = xapp.service.engine
        assert engine is not None and engine.model.version == "t2"
        await rapp.started.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rapp.http_port}", headers=app_key(settings)) as api:
            job = (await api.post("/api/v1/models/t1/rollback", json={"reason": "signed rollback"})).json()
            await until(lambda: rapp.jobs.jobs[job["id"]].state not in ("queued", "running"), "the rollback job")
            assert rapp.jobs.jobs[job["id"]].state == "succeeded", rapp.jobs.jobs[job["id"]].log
        assert engine.model.version == "t1" and await xapp.service.trust.newest() == (3, "t1")
        assert untrusted(xapp, "replayed") == 0
    finally:
        rapp.stop()
        await asyncio.wait_for(rapp_task, 30)
        await xapp.stop()
        await layer.close()
