"""Which replica owns which E2 node: rendezvous (highest-random-weight) hashing over the replica ordinals.

Every replica computes the same owner for a node from the node id and the replica count alone, with no
coordination: the owner is the ordinal whose weight `blake2b("<ordinal>/<node id>")` (first 8 bytes, big
endian) is the highest. Going from N to N + 1 replicas moves only the nodes the new ordinal wins (about
1 / (N + 1) of them), every one to the new replica; going back moves exactly those again. See docs/scaling.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(ordinal: int, node_id: str) -> int:
    """The node's weight at this replica ordinal (stable across processes, machines and Python versions)."""
    digest = hashlib.blake2b(f"{ordinal}/{node_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(node_id: str, replica_count: int) -> int:
    """The ordinal (0 .. replica_count - 1) that owns the node; ties (never seen in practice) go to the lowest."""
    if replica_count < 1:
        raise ValueError(f"replica_count must be at least 1, got {replica_count}")
    return max(range(replica_count), key=lambda ordinal: (weight(ordinal, node_id), -ordinal))


def share(node_ids: Iterable[str], replica_index: int, replica_count: int) -> list[str]:
    """The nodes of node_ids that replica `replica_index` owns, in their given order."""
    if replica_count == 1:
        return list(node_ids)
    return [node for node in node_ids if owner(node, replica_count) == replica_index]
