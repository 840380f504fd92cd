"""The model registry in the data layer, as the rApp uses it: publish and promote artifacts, list and read them.

Names come from `ranomaly_contracts.sdl` (manifest and ONNX bytes per version, the list of promoted
versions); every read is checked with `models.artifact.parse_artifact` (schema and sha256).
"""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from models.artifact import MANIFEST_FILE, Artifact, parse_artifact, read_artifact
from ranomaly_contracts.sdl import PROMOTE_ONCE_SCRIPT, SdlKeys, as_text


class ModelRegistry:
    """Artifacts under their version in Redis."""

    def __init__(self, redis: aioredis.Redis, keys: SdlKeys) -> None:
        self._redis = redis
        self._keys = keys

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
        """Store an artifact folder under its version (checked first); promote it once; return the version."""
        artifact = read_artifact(folder)
        version = artifact.manifest.version
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.models_manifest, version, (folder / MANIFEST_FILE).read_bytes())
            pipe.hset(self._keys.models_onnx, version, artifact.onnx)
            if promote:
                pipe.eval(PROMOTE_ONCE_SCRIPT, 1, self._keys.models_promoted, version)
            await pipe.execute()
        return version
