"""What the E2 server streams from: a source of KPM blocks and ground truth, simulated or replayed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from e2sim.catalogue import Measurement


@dataclass(frozen=True)
class KpmBlock:
    """Measurements of consecutive periods for every cell of a source."""

    times_ms: np.ndarray  # int64 [T], collection start of each period, ms since the epoch
    values: np.ndarray  # float32 [T, N, K], catalogue order, NaN where a record has no value
    reported: np.ndarray | None = None  # bool [T, N], whether the cell reported at all; None: all did


@dataclass(frozen=True)
class Label:
    """One labelled event of one cell on a period grid; first/last are inclusive collection starts."""

    node_id: str
    cell_id: str
    kind: str
    first_ms: int
    last_ms: int
    intensity: float
    measurements: tuple[str, ...]


@dataclass(frozen=True)
class StreamStart:
    """Where a subscription's stream begins: its first period index and how its sends are paced."""

    first_period: int
    wall_offset_ms: int  # a period t is due at (t + 1) * period + wall_offset_ms on the wall clock
    last_period: int | None  # inclusive; None: the source never ends


class KpmSource(Protocol):
    """A network of E2 nodes whose measurements can be read period by period."""

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Node identities, in node order."""
        ...

    @property
    def cell_ids(self) -> tuple[str, ...]:
        """Cell identities, grouped by node."""
        ...

    @property
    def cell_node(self) -> np.ndarray:
        """Node index of every cell."""
        ...

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """The measurement catalogue, in the column order of blocks."""
        ...

    @property
    def period_range_ms(self) -> tuple[int, int]:
        """The shortest and longest reporting period the source can serve, inclusive."""
        ...

    def stream_start(self, period_ms: int, now_ms: int, realtime: bool) -> StreamStart:
        """Where a new subscription starts."""
        ...

    def block(self, first_period: int, count: int, period_ms: int) -> KpmBlock:
        """Measurements of periods first_period .. first_period + count - 1 (index = start / period)."""
        ...

    def labels(self, start_ms: int, end_ms: int, period_ms: int) -> list[Label]:
        """Ground truth of the periods whose collection starts in [start_ms, end_ms)."""
        ...


def nr_cell_identities(source: KpmSource) -> np.ndarray:
    """The 36-bit NR cell identity of every cell: a 22-bit gNB id (node index), a 14-bit local cell id."""
    nci = np.zeros(len(source.cell_ids), dtype=np.int64)
    local: dict[int, int] = {}
    for cell, node in enumerate(source.cell_node.tolist()):
        nci[cell] = (node << 14) | local.get(node, 0)
        local[node] = local.get(node, 0) + 1
    return nci
