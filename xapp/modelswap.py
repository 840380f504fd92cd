"""Model versions from the registry in the data layer: which one should score, fetching and checking it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import structlog

from models.artifact import ArtifactError, parse_artifact, read_artifact
from xapp.datalayer.base import DataLayer
from xapp.errors import ModelLoadError
from xapp.runtime import ModelRuntime

log = structlog.get_logger(__name__)


class ModelLoader:
    """Loads registry versions into runtimes for one subscription (measurements and period)."""

    def __init__(self, datalayer: DataLayer, subscribed: Sequence[str], period_ms: int, threads: int = 1) -> None:
        self.datalayer = datalayer
        self.subscribed = tuple(subscribed)
        self.period_ms = period_ms
        self.threads = threads

    async def seed(self, folder: Path) -> str:
        """Publish an artifact folder to the registry unless it holds that version already; return the version."""
        try:
            artifact = read_artifact(folder)
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from None
        version = artifact.manifest.version
        if await self.datalayer.get_model(version) is None:
            manifest_json = (Path(folder) / "manifest.json").read_bytes()
            await self.datalayer.publish_model(version, manifest_json, artifact.onnx)
            log.info("model_seeded", version=version, folder=str(folder))
        return version

    async def wanted(self, policy_version: str | None) -> str | None:
        """The version that should score: the policy's, else the newest promoted one (None: no model yet)."""
        if policy_version is not None:
            return policy_version
        promoted = await self.datalayer.promoted_models()
        return promoted[-1] if promoted else None

    async def fetch(self, version: str) -> tuple[bytes, bytes] | None:
        """The version's stored (manifest.json, model.onnx) bytes; None if the registry lacks it.

        Raises DataLayerUnavailable when the registry cannot be asked.
        """
        return await self.datalayer.get_model(version)

    async def load(self, version: str, stored: tuple[bytes, bytes] | None) -> ModelRuntime:
        """Check a fetched version's manifest and hash, open and warm its session (off the event loop).

        It scores rows in the loader's subscription order, else the model's own.
        """
        if stored is None:
            raise ModelLoadError(f"model {version}: not in the registry")
        manifest_json, onnx_bytes = stored
        try:
            artifact = parse_artifact(manifest_json, onnx_bytes, f"registry model {version}")
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from None
        if artifact.manifest.version != version:
            raise ModelLoadError(f"registry model {version}: its manifest says version {artifact.manifest.version}")
        measurements = self.subscribed or artifact.manifest.measurements
        return await asyncio.to_thread(ModelRuntime.load, artifact, measurements, self.period_ms, self.threads)


def fingerprint(stored: tuple[bytes, bytes] | None) -> str | None:
    """What identifies a registry entry's content (None: absent), to retry a refused version once it changes."""
    if stored is None:
        return None
    manifest_json, onnx_bytes = stored
    return hashlib.sha256(manifest_json + b"\0" + onnx_bytes).hexdigest()
