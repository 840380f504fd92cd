"""Nodes, cells and the static, per-cell parameters that make every cell different.

A node is a gNB-DU serving two to four cells of one area type. Every cell draws its own size, radio
conditions, mobility and load shape from its type's ranges, so no two cells look alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class CellType(IntEnum):
    """Area types, each with its own capacity, demand and daily rhythm."""

    DENSE_URBAN = 0
    URBAN = 1
    SUBURBAN = 2
    RURAL = 3
    HOTSPOT = 4


@dataclass(frozen=True)
class TypeSpec:
    """Ranges a cell of one area type draws its parameters from."""

    share: float  # fraction of nodes of this type
    n_prb_dl: int
    n_prb_ul: int
    prb_mhz: float  # bandwidth of one PRB: 12 subcarriers x SCS
    dl_share: float  # share of air time for DL (TDD) or 1.0 (FDD)
    peak_ues: tuple[float, float]  # log-uniform range of connected UEs at the busy hour
    dl_mbps_per_ue: tuple[float, float]  # offered DL traffic per connected UE at the busy hour
    sinr_db: tuple[float, float]  # mean SS-SINR when neighbours are idle
    handovers_per_ue_min: tuple[float, float]  # mobility
    delay_ms: tuple[float, float]  # RLC SDU delay of an idle cell


TYPE_SPECS: dict[CellType, TypeSpec] = {
    CellType.DENSE_URBAN: TypeSpec(0.15, 273, 273, 0.36, 0.74, (180, 420), (0.35, 0.6), (9, 14), (0.03, 0.06), (2, 4)),
    CellType.URBAN: TypeSpec(0.30, 273, 273, 0.36, 0.74, (90, 260), (0.3, 0.55), (10, 16), (0.03, 0.07), (2, 4)),
    CellType.SUBURBAN: TypeSpec(0.30, 106, 106, 0.36, 0.74, (35, 120), (0.35, 0.7), (12, 18), (0.02, 0.05), (3, 5)),
    CellType.RURAL: TypeSpec(0.15, 52, 52, 0.18, 1.0, (6, 40), (0.3, 0.6), (6, 13), (0.06, 0.14), (4, 8)),
    CellType.HOTSPOT: TypeSpec(0.10, 273, 273, 0.36, 0.74, (220, 600), (0.25, 0.4), (8, 13), (0.05, 0.1), (2, 4)),
}


@dataclass(frozen=True)
class Topology:
    """The simulated network: node and cell identities and per-cell parameters (arrays of length N)."""

    node_ids: tuple[str, ...]
    cell_ids: tuple[str, ...]
    cell_node: Ints  # node index of every cell
    cell_type: Ints
    n_prb_dl: Floats
    n_prb_ul: Floats
    prb_mhz: Floats
    dl_share: Floats
    peak_ues: Floats
    dl_mbps_per_ue: Floats
    ul_ratio: Floats  # UL offered traffic / DL offered traffic
    sinr_db: Floats
    interference_coupling_db: Floats  # SINR lost when the neighbours are fully loaded
    handovers_per_ue_min: Floats
    ho_success: Floats  # handover success probability at good radio conditions
    delay_ms: Floats
    loss_ppm: Floats  # UL loss of an idle cell at 8 dB SINR
    profile_shift_h: Floats  # shift of the daily profile
    profile_blend: Floats  # weight of the second type's profile
    profile_blend_type: Ints
    night_floor: Floats  # extra load share that never goes away (always-on devices)
    drift_amp: Floats  # [N, 3] amplitudes of the slow variation
    drift_period_s: Floats  # [N, 3]
    drift_phase: Floats  # [N, 3]

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.cell_ids)

    def cells_of_node(self, node: int) -> Ints:
        """Indices of the cells a node serves."""
        return np.flatnonzero(self.cell_node == node)

    def select(self, cells: Ints) -> Topology:
        """The same network restricted to some cells (whole nodes, for neighbour effects to hold)."""
        nodes, cell_node = np.unique(self.cell_node[cells], return_inverse=True)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in fields.items():
            if isinstance(value, np.ndarray):
                fields[name] = value[cells]
        fields["node_ids"] = tuple(self.node_ids[n] for n in nodes)
        fields["cell_ids"] = tuple(self.cell_ids[c] for c in cells)
        fields["cell_node"] = cell_node.astype(np.int64)
        return Topology(**fields)

    def neighbours(self, cell: int) -> Ints:
        """Cells that absorb a cell's users when it sleeps: the other cells of its node."""
        mates = self.cells_of_node(int(self.cell_node[cell]))
        return mates[mates != cell]


def _cells_per_node(rng: np.random.Generator, n_cells: int) -> list[int]:
    """Split n_cells into nodes of 2-4 cells (a single cell when n_cells is 1)."""
    sizes: list[int] = []
    remaining = n_cells
    while remaining > 0:
        size = min(int(rng.integers(2, 5)), remaining)
        if remaining - size == 1:  # never leave a lone cell behind
            size = size + 1 if size < 4 else size - 1
        sizes.append(size)
        remaining -= size
    return sizes


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> Floats:
    low, high = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(low, high, n))


def build_topology(seed: int, n_cells: int) -> Topology:
    """Draw a network of n_cells cells, deterministic for the seed."""
    if n_cells < 1:
        raise ValueError(f"a network needs at least one cell, got {n_cells}")
    rng = np.random.default_rng([seed, 0x70B0])
    sizes = _cells_per_node(rng, n_cells)
    types = list(TYPE_SPECS)
    shares = np.array([TYPE_SPECS[t].share for t in types])
    node_types = rng.choice(len(types), size=len(sizes), p=shares / shares.sum())

    node_ids = tuple(f"gnb-{i:03d}" for i in range(len(sizes)))
    cell_ids: list[str] = []
    cell_node: list[int] = []
    cell_type: list[int] = []
    for node, size in enumerate(sizes):
        for c in range(size):
            cell_ids.append(f"{node_ids[node]}-c{c}")
            cell_node.append(node)
            cell_type.append(int(node_types[node]))

    n = n_cells
    kinds = np.array(cell_type, dtype=np.int64)

    def per_type(field: str) -> Floats:
        return np.array([getattr(TYPE_SPECS[CellType(k)], field) for k in kinds], dtype=np.float64)

    def draw(field: str, log: bool = False) -> Floats:
        out = np.empty(n)
        for t in types:
            idx = np.flatnonzero(kinds == t)
            bounds: tuple[float, float] = getattr(TYPE_SPECS[t], field)
            out[idx] = _log_uniform(rng, bounds, idx.size) if log else rng.uniform(*bounds, idx.size)
        return out

    blend_type = rng.integers(0, len(types), n)
    return Topology(
        node_ids=node_ids,
        cell_ids=tuple(cell_ids),
        cell_node=np.array(cell_node, dtype=np.int64),
        cell_type=kinds,
        n_prb_dl=per_type("n_prb_dl"),
        n_prb_ul=per_type("n_prb_ul"),
        prb_mhz=per_type("prb_mhz"),
        dl_share=per_type("dl_share"),
        peak_ues=draw("peak_ues", log=True),
        dl_mbps_per_ue=draw("dl_mbps_per_ue"),
        ul_ratio=rng.uniform(0.08, 0.18, n),
        sinr_db=draw("sinr_db"),
        interference_coupling_db=rng.uniform(1.5, 4.0, n),
        handovers_per_ue_min=draw("handovers_per_ue_min"),
        ho_success=rng.uniform(0.985, 0.998, n),
        delay_ms=draw("delay_ms"),
        loss_ppm=_log_uniform(rng, (150.0, 1500.0), n),
        profile_shift_h=rng.uniform(-0.75, 0.75, n),
        profile_blend=rng.uniform(0.0, 0.3, n),
        profile_blend_type=blend_type.astype(np.int64),
        night_floor=rng.uniform(0.01, 0.06, n),
        drift_amp=rng.uniform(0.01, 0.05, (n, 3)),
        drift_period_s=np.stack(
            [rng.uniform(lo, hi, n) * 86400.0 for lo, hi in ((0.6, 1.7), (2.5, 5.0), (7.0, 15.0))], axis=1
        ),
        drift_phase=rng.uniform(0.0, 2 * np.pi, (n, 3)),
    )
