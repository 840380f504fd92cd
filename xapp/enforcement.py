"""The A1 policy store as the engine sees it: effective settings per cell, and enforcement reported back."""

from __future__ import annotations

from collections.abc import Sequence

from models.artifact import Manifest
from xapp.policy.resolve import ResolvedPolicies, model_version, resolve_cells
from xapp.policy.store import PolicyStore
from xapp.policy.types import MODEL_INSTANCE_ID, POLICY_TYPE_ID


class StorePolicies:
    """PolicySource over a PolicyStore (type 20100 instances)."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    @property
    def revision(self) -> int:
        """The store's change counter."""
        return self.store.revision

    def model_version(self) -> str | None:
        """The version the `ranomaly-model` instance names (None: the newest promoted)."""
        return model_version(self.store.instances(POLICY_TYPE_ID).values())

    def resolve(self, manifest: Manifest, cell_ids: Sequence[str], node_ids: Sequence[str]) -> ResolvedPolicies:
        """Effective settings of these cells under the given model."""
        return resolve_cells(self.store.instances(POLICY_TYPE_ID).values(), manifest, cell_ids, node_ids)

    def applied(self, revision: int, model_version: str) -> None:
        """Every instance is enforced now; the model instance only once its version scores."""
        wanted = self.model_version()
        for instance_id in self.store.instances(POLICY_TYPE_ID):
            if instance_id != MODEL_INSTANCE_ID:
                self.store.mark_enforced(POLICY_TYPE_ID, instance_id, True)
            elif wanted is None or wanted == model_version:
                self.store.mark_enforced(POLICY_TYPE_ID, instance_id, True)
            else:  # still loading, or refused (the log and /readyz say why)
                self.store.mark_enforced(POLICY_TYPE_ID, instance_id, False, "OTHER_REASON")
