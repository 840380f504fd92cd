"""Replica heartbeats (HASH_XAPP_REPLICAS) and the policy enforcement of the replicas that are alive.

A heartbeat record is JSON `{"ordinal": int, "replica_count": int, "at_ms": int, "nodes": [str], "enforced":
{"<type id>/<instance id>": [updated_ms, seq]}}`: the replica count this replica assumes, the E2 nodes it holds
(subscribed, or about to be), and the instance versions (`PolicyInstance.order`) its engine enforces, at the
wall time `at_ms`. A replica whose heartbeat is older than `dead_s` (or that removed it on stopping) is not
alive: it holds no node and does not hold a policy back from ENFORCED.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ranomaly_contracts.sdl import policy_instance_field
from xapp.policy.store import PolicyStore

Order = tuple[int, int]


@dataclass(frozen=True)
class Heartbeat:
    """What one replica reports about itself."""

    ordinal: int
    replica_count: int
    at_ms: int
    nodes: list[str]
    enforced: dict[str, Order]

    def encode(self) -> bytes:
        """The record as stored."""
        enforced = {name: list(order) for name, order in self.enforced.items()}
        return json.dumps({"ordinal": self.ordinal, "replica_count": self.replica_count, "at_ms": self.at_ms,
                           "nodes": self.nodes, "enforced": enforced}).encode()  # fmt: skip

    @classmethod
    def decode(cls, record: bytes) -> Heartbeat:
        """A stored record read back; ValueError if it is not one."""
        try:
            fields = json.loads(record)
            enforced = {str(name): (int(order[0]), int(order[1])) for name, order in fields["enforced"].items()}
            nodes = [str(node) for node in fields["nodes"]]
            return cls(int(fields["ordinal"]), int(fields["replica_count"]), int(fields["at_ms"]), nodes, enforced)
        except (KeyError, TypeError, AttributeError, IndexError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a heartbeat record: {exc}") from None


def enforced_orders(store: PolicyStore) -> dict[str, Order]:
    """The instance versions the store (the engine's view) marks enforced."""
    return {
        policy_instance_field(type_id, instance.instance_id): instance.order
        for type_id in store.type_ids()
        for instance in store.instances(type_id).values()
        if instance.enforced
    }


def wall_ms() -> int:
    """Milliseconds since the epoch (heartbeats compare replicas' wall clocks)."""
    return time.time_ns() // 1_000_000


class Peers:
    """The other replicas alive at the last look; read from the HTTP thread (one reference swap per update)."""

    def __init__(self, ordinal: int, dead_s: float) -> None:
        self.ordinal = ordinal
        self.dead_ms = round(dead_s * 1000)
        self.alive: dict[int, Heartbeat] = {}

    def update(self, records: dict[int, bytes], now_ms: int) -> list[int]:
        """Keep the other replicas whose heartbeat is recent; the ordinals of records that could not be read."""
        alive: dict[int, Heartbeat] = {}
        unreadable: list[int] = []
        for ordinal, record in records.items():
            if ordinal == self.ordinal:
                continue
            try:
                beat = Heartbeat.decode(record)
            except ValueError:
                unreadable.append(ordinal)
                continue
            if now_ms - beat.at_ms <= self.dead_ms:
                alive[ordinal] = beat
        self.alive = alive
        return unreadable

    def replica_count(self) -> int:
        """The largest replica count a live replica assumes (a newcomer's ordinal raises its own)."""
        return max((beat.replica_count for beat in self.alive.values()), default=1)

    def holders(self) -> dict[str, int]:
        """Node -> the live replica that holds it."""
        return {node: ordinal for ordinal, beat in self.alive.items() for node in beat.nodes}

    def lagging(self, type_id: int, instance_id: str, order: Order) -> list[int]:
        """Ordinals of live replicas that do not enforce this version of the instance (yet)."""
        name = policy_instance_field(type_id, instance_id)
        return sorted(ordinal for ordinal, beat in self.alive.items() if beat.enforced.get(name) != order)
