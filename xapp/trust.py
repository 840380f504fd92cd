"""Which models the xApp may load: signed by a key it trusts, bytes as signed, no older than it accepted.

A registry version loads only with a signature record (`models.signing`) by a trusted key whose signed
manifest and ONNX digests match the stored bytes, and whose promotion counter is above the newest promotion
this consumer accepted, or equal to it for the same version (the promotion it runs, read again after a
restart). The newest accepted promotion is kept in memory and in the data layer under the consumer's name
(read back at the first check after a start), so a restarted xApp refuses a replayed older record too.
Unsigned artifacts load only with `allow_unsigned` (a record that is there is checked all the same). The
check runs when a version is loaded, never on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from models.signing import KeyFileError, Promotion, Reason, SignatureRefused, load_trusted_keys, verify
from xapp.datalayer.base import DataLayer
from xapp.errors import ModelLoadError, XappError


class ModelUntrusted(ModelLoadError):
    """A model refused for its signature; `reason` is one of `models.signing.REASONS`."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class StoredModel:
    """A version's bytes as the registry holds them."""

    manifest_json: bytes
    onnx: bytes
    signature: bytes | None


def trusted_keys(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    """The trusted public keys of the settings (files, or folders of `*.pub`); XappError if one is unusable."""
    try:
        return load_trusted_keys(paths)
    except KeyFileError as exc:
        raise XappError(str(exc)) from None


class ModelTrust:
    """Signature and replay checks for one consumer (the xApp's subscriber id)."""

    def __init__(self, datalayer: DataLayer, consumer: str, keys: Mapping[str, Ed25519PublicKey],
                 allow_unsigned: bool) -> None:  # fmt: skip
        self.datalayer = datalayer
        self.consumer = consumer
        self.keys = dict(keys)
        self.allow_unsigned = allow_unsigned
        self._newest: tuple[int, str] | None = None  # (counter, version) accepted
        self._read_back = False

    def verify(self, where: str, version: str, stored: StoredModel) -> Promotion | None:
        """The promotion a stored artifact's record proves (None: unsigned and allowed); ModelUntrusted if not."""
        if stored.signature is None:
            if self.allow_unsigned:
                return None
            raise ModelUntrusted("unsigned", f"{where}: no signature record, and allow_unsigned_models is off")
        try:
            return verify(stored.signature, stored.manifest_json, stored.onnx, version, self.keys)
        except SignatureRefused as exc:
            raise ModelUntrusted(exc.reason, f"{where}: {exc}") from None

    async def check(self, version: str, stored: StoredModel) -> Promotion | None:
        """`verify`, then refuse (replayed) a promotion older than the newest accepted. Raises
        DataLayerUnavailable when the accepted promotion cannot be read back after a start."""
        where = f"registry model {version}"
        promotion = self.verify(where, version, stored)
        if promotion is None:
            return None
        newest = await self.newest()
        if newest is not None and (promotion.counter, promotion.version) != newest and promotion.counter <= newest[0]:
            raise ModelUntrusted(
                "replayed", f"{where}: promotion {promotion.counter} is not newer than the accepted promotion "
                f"{newest[0]} (version {newest[1]}); roll back through the rApp's API instead"
            )  # fmt: skip
        return promotion

    async def newest(self) -> tuple[int, str] | None:
        """(counter, version) of the newest promotion accepted, read back from the data layer once."""
        if not self._read_back:
            stored = await self.datalayer.accepted_promotion(self.consumer)
            self._read_back = True
            if stored is not None and (self._newest is None or stored[0] > self._newest[0]):
                self._newest = stored
        return self._newest

    async def accept(self, promotion: Promotion) -> None:
        """Remember a loaded promotion as the newest accepted, here and in the data layer."""
        if self._newest is None or promotion.counter > self._newest[0]:
            self._newest = (promotion.counter, promotion.version)
        await self.datalayer.accept_promotion(self.consumer, promotion.counter, promotion.version)
