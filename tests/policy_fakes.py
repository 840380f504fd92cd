"""Test helpers for A1 policies: a fake policy data layer that can be switched off, and a small manifest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.artifact import Manifest
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.policies import PolicyChanges

MEASUREMENTS = ("DRB.UEThpDl", "RRU.PrbUsedDl", "DRB.RlcSduDelayDl")
MANIFEST_SCORE = 5.0
MANIFEST_DEVIATION = {"DRB.UEThpDl": 3.0, "RRU.PrbUsedDl": 4.0, "DRB.RlcSduDelayDl": 5.0}
SCORE_MEAN, SCORE_STD = 1.0, 0.5
QUANTILES = {"0.9": 2.0, "0.99": 4.0, "0.999": 6.0}


class FakePolicyDataLayer:
    """The policy methods of the data layer over dicts, without a change stream; `down = True` makes each raise
    DataLayerUnavailable."""

    def __init__(self) -> None:
        self.types: dict[int, bytes] = {}
        self.instances: dict[tuple[int, str], bytes] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise DataLayerUnavailable("fake store: down")

    async def policy_types(self) -> dict[int, bytes]:
        self._check()
        return dict(self.types)

    async def put_policy_type(self, type_id: int, document: bytes) -> None:
        self._check()
        self.types[type_id] = document

    async def delete_policy_type(self, type_id: int) -> None:
        self._check()
        self.types.pop(type_id, None)

    async def policy_instances(self) -> dict[tuple[int, str], bytes]:
        self._check()
        return dict(self.instances)

    async def put_policy_instance(self, type_id: int, instance_id: str, record: bytes) -> None:
        self._check()
        self.instances[type_id, instance_id] = record

    async def delete_policy_instance(self, type_id: int, instance_id: str) -> None:
        self._check()
        self.instances.pop((type_id, instance_id), None)

    async def read_policy_types(self, type_ids: Sequence[int]) -> dict[int, bytes | None]:
        self._check()
        return {type_id: self.types.get(type_id) for type_id in type_ids}

    async def read_policy_instances(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], bytes | None]:
        self._check()
        return {key: self.instances.get(key) for key in keys}

    async def policy_changes_head(self) -> str:
        self._check()
        return "0-0"

    async def read_policy_changes(self, after_id: str, count: int) -> PolicyChanges:
        self._check()
        return PolicyChanges([], False)

    async def release(self) -> None:
        pass


def make_manifest(quantiles: dict[str, float] | None = None, version: str = "m1") -> Manifest:
    """A manifest with known thresholds: score 5, deviations 3/4/5, score mean 1, std 0.5, quantiles 2/4/6."""
    fields: dict[str, Any] = {
        "version": version,
        "created": "2025-01-01T00:00:00Z",
        "period_s": 60.0,
        "measurements": list(MEASUREMENTS),
        "time_features": ["tod_sin", "tod_cos"],
        "state_size": 0,
        "warmup_periods": 0,
        "thresholds": {
            "score": MANIFEST_SCORE,
            "deviation": MANIFEST_DEVIATION,
            "score_stats": {
                "mean": SCORE_MEAN,
                "std": SCORE_STD,
                "quantiles": QUANTILES if quantiles is None else quantiles,
            },
        },
        "training": {},
        "evaluation": {},
        "opset": 17,
        "sha256": "0" * 64,
    }
    return Manifest.model_validate(fields)
