"""Keeps a PolicyStore in step with the data layer's policy change stream (`STREAM_POLICY_CHANGES`).

Each poll reads at most `count` entries after the store's cursor (XREAD with a last id, never a consumer
group: every replica sees every change), keeps the last change per record and re-reads those records, so
the work per poll is bounded. An entry that cannot be decoded, or entries trimmed before they were read,
make the store re-read every record instead: nothing accepted is lost. Every problem is logged as an error
and counted by reason ("entry_corrupt", "entries_trimmed", and the store's "record_corrupt",
"record_missing").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import structlog

from ranomaly_contracts.sdl import PolicyChange, decode_policy_change
from xapp.datalayer.policies import PolicyData
from xapp.policy.store import PolicyStore

log = structlog.get_logger(__name__)

PROBLEMS = ("entry_corrupt", "entries_trimmed", "record_corrupt", "record_missing")
DEFAULT_COUNT = 64  # entries per poll (256 a second at a 0.25 s tick), decoded on a worker thread


def _ignore(reason: str, count: int) -> None:
    """Problems not counted anywhere (a store whose reader counts them elsewhere)."""


class PolicyFollower:
    """Applies new change entries to `store`; `problem(reason, count)` counts what went wrong."""

    def __init__(
        self,
        store: PolicyStore,
        data: PolicyData,
        problem: Callable[[str, int], None] = _ignore,
        count: int = DEFAULT_COUNT,
    ) -> None:
        self.store = store
        self._data = data
        self._problem = problem
        self._count = count
        self.applied = 0  # change entries read and applied since start

    async def poll(self) -> int:
        """Apply the entries after the store's cursor (at most `count`); how many were read.

        Raises DataLayerUnavailable (the cursor stays: the same entries are read at the next poll).
        """
        store = self.store
        batch = await self._data.read_policy_changes(store.cursor, self._count)
        problems: Counter[str] = Counter()
        changes: dict[tuple[int, str | None], PolicyChange] = {}
        for entry_id, raw in batch.entries:
            try:
                change = decode_policy_change(raw)
            except ValueError as exc:
                problems["entry_corrupt"] += 1
                log.error("a1_change_entry_corrupt", entry_id=entry_id, error=str(exc), then="re-reading every record")
                continue
            changes[change.type_id, change.instance_id] = change
        if batch.trimmed:
            problems["entries_trimmed"] += 1
            log.error("a1_changes_trimmed", after_id=store.cursor, then="re-reading every record")
        if batch.trimmed or problems:
            problems["record_corrupt"] += await store.resync()  # moves the cursor to the stream's head
        else:
            if changes:
                problems.update(await store.refresh(list(changes.values())))
            if batch.entries:
                store.cursor = batch.entries[-1][0]
        self.applied += len(batch.entries)
        for reason, count in problems.items():
            if count:
                self._problem(reason, count)
        return len(batch.entries)
