"""Model versions from the registry in the data layer: which one should score, fetching and checking it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from models.artifact import ArtifactError, parse_artifact, read_artifact
from xapp.datalayer.base import DataLayer, DataLayerUnavailable
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

    async def load(self, version: str, subscribed: Sequence[str] = ()) -> ModelRuntime:
        """Fetch a version, check its manifest and hash, open and warm its session (off the event loop).

        It scores rows in the order `subscribed` (default: the loader's subscription, else the model's own).
        """
        try:
            stored = await self.datalayer.get_model(version)
        except DataLayerUnavailable as exc:
            raise ModelLoadError(f"model {version}: registry unavailable: {exc}") from None
        if stored is None:
            raise ModelLoadError(f"model {version}: not in the registry")
        manifest_json, onnx_bytes = stored
        try:
            artifact = parse_artifact(manifest_json, onnx_bytes, f"registry model {version}")
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from None
        if artifact.manifest.version != version:
            raise ModelLoadError(f"registry model {version}: its manifest says version {artifact.manifest.version}")
        measurements = tuple(subscribed or self.subscribed or artifact.manifest.measurements)
        return await asyncio.to_thread(ModelRuntime.load, artifact, measurements, self.period_ms, self.threads)
