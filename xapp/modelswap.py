"""Model versions from the registry in the data layer: which one should score, fetching and checking it
(its signature and promotion counter through `xapp.trust`)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import structlog

from models.artifact import MANIFEST_FILE, ArtifactError, parse_artifact, read_artifact
from models.signing import read_signature
from xapp.datalayer.base import DataLayer
from xapp.errors import ModelLoadError
from xapp.runtime import ModelRuntime
from xapp.trust import ModelTrust, StoredModel

log = structlog.get_logger(__name__)


class ModelLoader:
    """Loads registry versions into runtimes for one subscription (measurements and period)."""

    def __init__(self, datalayer: DataLayer, trust: ModelTrust, subscribed: Sequence[str], period_ms: int,
                 threads: int = 1) -> None:  # fmt: skip
        self.datalayer = datalayer
        self.trust = trust
        self.subscribed = tuple(subscribed)
        self.period_ms = period_ms
        self.threads = threads

    async def seed(self, folder: Path) -> str:
        """Publish an artifact folder (with its signature record, which must verify unless unsigned models are
        allowed) to the registry unless it holds that version already; return the version."""
        try:
            artifact = read_artifact(folder)
            manifest_json, signature = (Path(folder) / MANIFEST_FILE).read_bytes(), read_signature(Path(folder))
        except (ArtifactError, OSError) as exc:
            raise ModelLoadError(str(exc)) from None
        version = artifact.manifest.version
        self.trust.verify(f"artifact {folder}", version, StoredModel(manifest_json, artifact.onnx, signature))
        if await self.datalayer.get_model(version) is None:
            await self.datalayer.publish_model(version, manifest_json, artifact.onnx, signature=signature)
            log.info("model_seeded", version=version, folder=str(folder), signed=signature is not None)
        return version

    async def wanted(self, policy_version: str | None) -> str | None:
        """The version that should score: the policy's, else the newest promoted one (None: no model yet)."""
        if policy_version is not None:
            return policy_version
        promoted = await self.datalayer.promoted_models()
        return promoted[-1] if promoted else None

    async def fetch(self, version: str) -> StoredModel | None:
        """The version's stored bytes and signature record; None if the registry lacks it.

        Raises DataLayerUnavailable when the registry cannot be asked.
        """
        stored = await self.datalayer.get_model(version)
        if stored is None:
            return None
        return StoredModel(*stored, signature=await self.datalayer.model_signature(version))

    async def load(self, version: str, stored: StoredModel | None) -> ModelRuntime:
        """Check a fetched version's signature and counter (`xapp.trust`), manifest and hash, open and warm its
        session (off the event loop), and record its promotion as accepted.

        It scores rows in the loader's subscription order, else the model's own. ModelUntrusted (a
        ModelLoadError) for a refused signature; DataLayerUnavailable if the accepted promotion cannot be
        read or recorded.
        """
        if stored is None:
            raise ModelLoadError(f"model {version}: not in the registry")
        promotion = await self.trust.check(version, stored)
        try:
            artifact = parse_artifact(stored.manifest_json, stored.onnx, f"registry model {version}")
        except ArtifactError as exc:
            raise ModelLoadError(str(exc)) from None
        if artifact.manifest.version != version:
            raise ModelLoadError(f"registry model {version}: its manifest says version {artifact.manifest.version}")
        measurements = self.subscribed or artifact.manifest.measurements
        runtime = await asyncio.to_thread(ModelRuntime.load, artifact, measurements, self.period_ms, self.threads)
        if promotion is not None:
            await self.trust.accept(promotion)
        return runtime


def fingerprint(stored: StoredModel | None) -> str | None:
    """What identifies a registry entry's content and signature (None: absent), to retry a refused version once
    it changes (a rollback signs it anew)."""
    if stored is None:
        return None
    digest = hashlib.sha256(stored.manifest_json + b"\0" + stored.onnx + b"\0")
    digest.update(b"-" if stored.signature is None else b"+" + stored.signature)
    return digest.hexdigest()
