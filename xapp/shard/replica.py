"""This replica among N (docs/scaling.md): its share of the E2 nodes, their hand-over, checkpoints, heartbeat.

The replica count is the largest of this replica's setting, its ordinal + 1, and the count any live replica
assumes (so a replica added with a higher ordinal raises every replica's count at their next heartbeat).
`share()` gives the nodes this replica subscribes to when a subscription (re)opens: of the nodes it owns by
rendezvous hashing (`xapp.shard.assign`), those no other live replica holds; it first releases the nodes it
held and no longer owns (their streams are closed by then: their last batch scored, their checkpoints
written, their cells forgotten) and restores the checkpoints of the nodes it takes, so a restarted replica, or
a node moved here, resumes without warm-up. A periodic checkpoint notes where the verdict stream stood; a
replica taking a node whose holder was killed after it reads the verdicts written since and resumes each cell
after its last one, so no period gets a second verdict (`xapp.shard.checkpoint`). `run()` writes the heartbeat
(with the nodes held) every `heartbeat_s`, reads the others', and asks the subscriptions to reopen when the
share changed or a node it waits for was released; checkpoints of every node with cells are written every
`checkpoint_interval_s`.
The settled periods of this replica's share of the network summary are appended at each heartbeat.
`leave()` writes a last checkpoint after the final batch and removes the heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.replicas import ReplicaData
from xapp.engine import Engine
from xapp.policy.store import PolicyStore
from xapp.shard.assign import share
from xapp.shard.checkpoint import NodeCheckpoint, Since, capture, encode_all, restore, resume_incidents, verdicts_since
from xapp.shard.heartbeat import Heartbeat, Peers, enforced_orders, wall_ms
from xapp.shard.summary import NetworkSummary

log = structlog.get_logger(__name__)

# Nodes a checkpoint write carries: at 3 cells a node and the detector's state, about 2.8 MB a round trip, so that
# a whole checkpoint (36 MB at 10,000 cells) is written in parts with stream messages handled between them.
CHECKPOINT_WRITE_NODES = 256


class Replica:
    """One replica's part in the sharded xApp (used on the scoring loop; `peers.lagging` from the HTTP thread)."""

    def __init__(
        self,
        data: ReplicaData,
        store: PolicyStore,
        replica_index: int,
        replica_count: int,
        checkpoint_interval_s: float,
        heartbeat_s: float,
        dead_s: float,
    ) -> None:
        self.data = data
        self.store = store  # the engine's view: what it marks enforced
        self.index = replica_index
        self.configured = max(replica_count, replica_index + 1)
        self.count = self.configured
        self.checkpoint_interval_s = checkpoint_interval_s
        self.heartbeat_s = heartbeat_s
        self.peers = Peers(replica_index, dead_s)
        self.held: set[str] = set()  # nodes subscribed to (or about to be)
        self.waiting: set[str] = set()  # nodes this replica owns that another live replica still holds
        self.listed: set[str] = set()  # every node the endpoints listed at the last subscriptions
        self.restored_cells = 0
        self.reshard: list[asyncio.Event] = []  # one per subscription: set when it should reopen
        self._checkpointed_at = 0.0
        self._writing = asyncio.Lock()  # one checkpoint write at a time: an older one never lands after a newer
        self.summary: NetworkSummary | None = None

    def summarize(self, engine: Engine, period_ms: int, settle_periods: int) -> None:
        """Keep this replica's share of the network summary (xapp.shard.summary) from the engine's rows on."""
        self.summary = NetworkSummary(self.index, engine.table, engine.measurements, period_ms, settle_periods)
        engine.on_rows = self.summary.observe

    def subscription_event(self) -> asyncio.Event:
        """An event set when a subscription should reopen (the share changed)."""
        event = asyncio.Event()
        self.reshard.append(event)
        return event

    async def share(self, engine: Engine, listed: Sequence[str]) -> list[str]:
        """Of the nodes an endpoint lists (its streams closed): release those not ours any more, take ours that
        no live replica holds; the nodes to subscribe to."""
        self.listed.update(listed)
        mine = share(listed, self.index, self.count)
        gone = [node for node in listed if node in self.held and node not in mine]
        if gone:
            await self._release(engine, gone)
        holders = self.peers.holders()
        free = [node for node in mine if node not in holders]
        self.waiting.difference_update(listed)
        self.waiting.update(node for node in mine if node in holders)
        await self._take(engine, [node for node in free if node not in self.held])
        return free

    async def _release(self, engine: Engine, nodes: list[str]) -> None:
        """Checkpoint the nodes (their stream is closed, their last batch scored), forget their cells, and say so."""
        async with self._writing:
            engine.flush()
            checkpoints = capture(engine, nodes)
            for node in nodes:  # at once: no gap row of theirs may be scored here once captured
                engine.forget_node(node)
            records = await asyncio.to_thread(encode_all, checkpoints)
            try:
                await self.data.put_checkpoints(records)
            except DataLayerUnavailable as exc:
                log.warning("release_checkpoint_failed", nodes=nodes, problem=str(exc), then="the new owner warms up")
        self.held.difference_update(nodes)
        log.info("nodes_released", count=len(nodes), first=nodes[:5], replica_count=self.count)
        await self._beat_quietly()

    async def _take(self, engine: Engine, nodes: list[str]) -> None:
        """Restore the nodes' checkpoints and hold them (a data layer that does not answer: they warm up)."""
        if not nodes:
            return
        self.held.update(nodes)
        try:
            records = await self.data.checkpoints(nodes)
        except DataLayerUnavailable as exc:
            log.warning("checkpoints_unavailable", nodes=len(nodes), problem=str(exc), then="cells warm up")
            return
        checkpoints = []
        unreadable: dict[str, list[str]] = {}  # problem -> nodes: one log line each, not one a node
        for node, record in records.items():
            try:
                checkpoints.append(NodeCheckpoint.decode(record))
            except ValueError as exc:
                unreadable.setdefault(str(exc), []).append(node)
        for reason, of in unreadable.items():
            log.error("checkpoints_unreadable", nodes=len(of), first=of[:5], problem=reason, then="cells warm up")
        try:
            since = await verdicts_since(self.data, checkpoints)
            if since.latest:
                log.info("verdicts_since_checkpoints", cells=len(since.latest),
                         then="they resume after their last verdict, their incidents where it left them")  # fmt: skip
        except (DataLayerUnavailable, ValueError) as exc:
            since = Since()
            log.warning("verdicts_since_checkpoints_unread", nodes=len(checkpoints), problem=str(exc),
                        then="periods a killed holder scored after it may get a gap row too")  # fmt: skip
        restored_cells: set[str] = set()
        skipped: dict[str, list[str]] = {}  # problem -> nodes, as above
        for checkpoint in checkpoints:
            problem = restore(engine, checkpoint, since.latest)
            if problem is None:
                restored_cells.update(checkpoint.cell_ids)
            else:
                skipped.setdefault(problem, []).append(checkpoint.node_id)
        resume_incidents(engine, since, restored_cells)
        self.restored_cells += len(restored_cells)
        log.info("checkpoints_restored", nodes=len(checkpoints) - sum(map(len, skipped.values())),
                 cells_restored_in_all=self.restored_cells)  # fmt: skip
        for reason, of in skipped.items():
            log.info("checkpoints_skipped", nodes=len(of), first=of[:5], problem=reason, then="cells warm up")
        log.info("nodes_taken", count=len(nodes), first=nodes[:5], replica_count=self.count)
        await self._beat_quietly()

    async def checkpoint(self, engine: Engine, final: bool = False) -> int:
        """Score what waits, then write every node's checkpoint (`final`: the replica stops, it scores no more);
        how many nodes were written."""
        async with self._writing:
            after = None if final else await self.data.verdict_position()  # before the capture: see checkpoint.py
            engine.flush()
            records = await asyncio.to_thread(encode_all, capture(engine, list(engine.table.by_node), after))
            nodes = list(records)
            for lo in range(0, len(nodes), CHECKPOINT_WRITE_NODES):  # the loop scores between the parts
                await self.data.put_checkpoints(
                    {node: records[node] for node in nodes[lo : lo + CHECKPOINT_WRITE_NODES]}
                )
        self._checkpointed_at = time.monotonic()
        return len(records)

    async def beat(self) -> None:
        """Write this replica's heartbeat, read the others'; reopen the subscriptions when the share changed."""
        beat = Heartbeat(self.index, self.count, wall_ms(), sorted(self.held), enforced_orders(self.store))
        await self.data.put_heartbeat(self.index, beat.encode())
        unreadable = self.peers.update(await self.data.heartbeats(), wall_ms())
        if unreadable:
            log.error("heartbeats_unreadable", ordinals=unreadable)
        count = max(self.configured, self.peers.replica_count())
        holders = self.peers.holders()
        released = any(node not in holders for node in self.waiting)
        if count != self.count or released:
            if count != self.count:
                log.info("replica_count_changed", previous=self.count, replica_count=count)
            self.count = count
            self.waiting.clear()
            for event in self.reshard:
                event.set()

    async def join(self) -> None:
        """Read the other replicas' heartbeats (and write this one's) before the first subscriptions."""
        await self._beat_quietly()

    async def _beat_quietly(self) -> None:
        try:
            await self.beat()
        except DataLayerUnavailable as exc:
            log.warning("replica_data_unavailable", problem=str(exc))

    async def run(self, engine: Engine, stop: asyncio.Event) -> None:
        """Heartbeat every heartbeat_s and checkpoints every checkpoint_interval_s until stop is set."""
        self._checkpointed_at = time.monotonic()
        while not stop.is_set():
            try:
                await self.beat()
                for entry in self.summary.settled() if self.summary is not None else ():
                    await self.data.append_summary(entry)
                if time.monotonic() - self._checkpointed_at >= self.checkpoint_interval_s:
                    nodes = await self.checkpoint(engine)
                    log.debug("checkpoints_written", nodes=nodes)
            except DataLayerUnavailable as exc:
                log.warning("replica_data_unavailable", problem=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), self.heartbeat_s)
            except TimeoutError:
                pass

    async def leave(self, engine: Engine | None) -> None:
        """On stopping: a last checkpoint (after the final batch) and the heartbeat removed."""
        try:
            if engine is not None:
                nodes = await self.checkpoint(engine, final=True)
                log.info("checkpoints_written", nodes=nodes, final=True)
            await self.data.remove_heartbeat(self.index)
        except DataLayerUnavailable as exc:
            log.warning("replica_leave_failed", problem=str(exc))
