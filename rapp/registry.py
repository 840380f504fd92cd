"""The model registry in the data layer, as the rApp uses it: publish and promote artifacts, list and read them.

Names come from `ranomaly_contracts.sdl` (manifest and ONNX bytes per version, the list of promoted
versions, signature records, the promotion counter); every read is checked with
`models.artifact.parse_artifact` (schema and sha256). Every promotion, and every rollback through the API,
takes the next promotion counter (Redis INCR, atomic) and stores the version's signature record over it
(`models.signing`), replacing the version's older one: the xApps load only a newer promotion than they ran.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from models.artifact import MANIFEST_FILE, Artifact, parse_artifact, read_artifact
from models.signing import SigningKey, sign
from ranomaly_contracts.redis_client import AsyncRedis
from ranomaly_contracts.sdl import PROMOTE_ONCE_SCRIPT, SdlKeys, as_text

log = structlog.get_logger(__name__)


class ModelRegistry:
    """Artifacts under their version in Redis."""

    def __init__(self, redis: AsyncRedis, keys: SdlKeys, signer: SigningKey) -> None:
        self._redis = redis
        self._keys = keys
        self._signer = signer

    async def promoted(self) -> list[str]:
        """Promoted versions, oldest first."""
        return [as_text(v) for v in await self._redis.lrange(self._keys.models_promoted, 0, -1)]

    async def get(self, version: str) -> Artifact | None:
        """A version's checked artifact, or None if the registry lacks it."""
        manifest = await self._redis.hget(self._keys.models_manifest, version)
        onnx = await self._redis.hget(self._keys.models_onnx, version)
        if manifest is None or onnx is None:
            return None
        if not isinstance(onnx, bytes):
            raise TypeError("the model registry needs a Redis client that returns bytes (decode_responses off)")
        return parse_artifact(manifest, onnx, f"registry model {version}")

    async def publish(self, folder: Path, promote: bool = True) -> str:
        """Store an artifact folder under its version (checked first); promote it once, signed at the next
        promotion counter; return the version."""
        artifact = read_artifact(folder)
        version, manifest_json = artifact.manifest.version, (folder / MANIFEST_FILE).read_bytes()
        signature = await self._signed(version, manifest_json, artifact.manifest.sha256) if promote else None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.models_manifest, version, manifest_json)
            pipe.hset(self._keys.models_onnx, version, artifact.onnx)
            if signature is not None:
                pipe.hset(self._keys.models_signature, version, signature)
                pipe.eval(PROMOTE_ONCE_SCRIPT, 1, self._keys.models_promoted, version)
            await pipe.execute()
        return version

    async def promote_again(self, version: str) -> None:
        """Sign a stored version anew at the next promotion counter (a rollback), so xApps take it once more."""
        manifest = await self._redis.hget(self._keys.models_manifest, version)
        artifact = await self.get(version)
        if not isinstance(manifest, bytes) or artifact is None:
            raise KeyError(f"model version {version} is not in the registry")
        signature = await self._signed(version, manifest, artifact.manifest.sha256)
        await self._redis.hset(self._keys.models_signature, version, signature)

    async def _signed(self, version: str, manifest_json: bytes, onnx_sha256: str) -> bytes:
        counter = int(await self._redis.incr(self._keys.models_counter))
        log.info("model_signed", version=version, counter=counter, key_id=self._signer.key_id)
        return sign(self._signer, version, manifest_json, onnx_sha256, counter)
