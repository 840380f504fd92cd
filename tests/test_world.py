"""The simulated network: deterministic, chunk-independent, seasonal, heterogeneous, physically consistent."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim import catalogue as cat
from e2sim.realism import Realism
from e2sim.topology import CellType
from e2sim.world import World, WorldConfig

PERIOD_MS = 60_000
DAY = 1440


def _first(world: World, period_ms: int = PERIOD_MS) -> int:
    return world.stream_start(period_ms, 0, realtime=False).first_period


@pytest.fixture(scope="module")
def quiet_week() -> tuple[World, np.ndarray]:
    """A week of a 40-cell network without anomalies, missing values or coarse steps (the physics alone)."""
    world = World(WorldConfig(seed=5, n_cells=40, events_per_cell_day=0.0, realism=Realism.off()))
    return world, world.block(_first(world), 7 * DAY, PERIOD_MS).values.astype(np.float64)


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not() -> None:
    a, b, c = (World(WorldConfig(seed=s, n_cells=20)) for s in (3, 3, 4))
    first = _first(a)
    block_a = a.block(first, 300, PERIOD_MS).values
    np.testing.assert_array_equal(block_a, b.block(first, 300, PERIOD_MS).values)
    assert a.cell_ids == b.cell_ids
    assert not np.array_equal(block_a, c.block(first, 300, PERIOD_MS).values, equal_nan=True)
    assert a.labels(first * PERIOD_MS, (first + 300) * PERIOD_MS, PERIOD_MS) == b.labels(
        first * PERIOD_MS, (first + 300) * PERIOD_MS, PERIOD_MS
    )


def test_a_period_does_not_depend_on_how_blocks_are_cut(small_world: World) -> None:
    first = _first(small_world)
    whole = small_world.block(first, 2 * DAY, PERIOD_MS).values
    pieces = np.concatenate([small_world.block(first + s, 97, PERIOD_MS).values for s in range(0, 2 * DAY, 97)])
    np.testing.assert_array_equal(whole, pieces[: 2 * DAY])
    fresh = World(small_world.config).block(first + 1000, 1, PERIOD_MS).values[0]
    np.testing.assert_array_equal(whole[1000], fresh)


def test_topology_has_nodes_of_two_to_four_cells_and_unique_cell_ids() -> None:
    world = World(WorldConfig(seed=9, n_cells=1001))
    sizes = np.bincount(world.topology.cell_node)
    assert sizes.sum() == 1001 and sizes.min() >= 2 and sizes.max() <= 4
    assert len(set(world.cell_ids)) == 1001
    assert all(
        cell.startswith(world.node_ids[n] + "-c")
        for cell, n in zip(world.cell_ids, world.topology.cell_node, strict=True)
    )
    assert set(np.unique(world.topology.cell_type)) == set(CellType)


def test_values_respect_units_and_limits(quiet_week: tuple[World, np.ndarray]) -> None:
    world, values = quiet_week
    tp = world.topology
    assert not np.isnan(values).any(), "a network without anomalies reports every value"
    assert (values[..., cat.PRB_DL] <= tp.n_prb_dl).all() and (values[..., cat.PRB_UL] <= tp.n_prb_ul).all()
    assert (values >= 0)[..., [m for m in range(len(cat.MEASUREMENTS)) if m != cat.SINR]].all()
    assert (values[..., cat.HO_SUCC] <= values[..., cat.HO_REQ]).all()
    assert (values[..., cat.LOSS_UL] <= 1e6).all()
    for m, measurement in enumerate(cat.MEASUREMENTS):
        if measurement.integer:
            np.testing.assert_array_equal(values[..., m], np.round(values[..., m]), err_msg=measurement.name)


def test_daily_and_weekly_rhythm(quiet_week: tuple[World, np.ndarray]) -> None:
    world, values = quiet_week
    ues = values[..., cat.CONN].reshape(7, DAY, -1)
    hourly = ues.reshape(7, 24, 60, -1).mean(axis=2)  # [day, hour, cell]
    weekdays = hourly[:5].mean(axis=0)
    assert (weekdays.max(axis=0) > 3 * weekdays.min(axis=0)).all(), "every cell has busy hours and quiet nights"
    assert weekdays[3:5].mean() < weekdays[18:22].mean()
    dense = world.topology.cell_type == CellType.DENSE_URBAN
    weekend = hourly[5:].mean(axis=0)
    assert dense.any()
    assert weekend[9:18, dense].mean() < 0.7 * weekdays[9:18, dense].mean(), "business districts empty at weekends"


def test_cells_differ_from_each_other(quiet_week: tuple[World, np.ndarray]) -> None:
    world, values = quiet_week
    busy_ues = np.percentile(values[..., cat.CONN], 95, axis=0)
    assert busy_ues.max() > 5 * busy_ues.min()
    same_type = world.topology.cell_type == world.topology.cell_type[0]
    daily_shape = values[:DAY, same_type, cat.CONN] / values[:DAY, same_type, cat.CONN].mean(axis=0)
    assert np.abs(np.diff(daily_shape, axis=1)).mean() > 0.05, "cells of one type still have their own shape"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_measurements_are_physically_related(quiet_week: tuple[World, np.ndarray]) -> None:
    _, values = quiet_week
    v = values[:, :, :]
    # connected UEs drive PRB usage and data volume; load drives delay; load lowers per-UE throughput
    assert _corr(v[..., cat.CONN], v[..., cat.PRB_DL] / v[..., cat.PRB_DL].max(axis=0)) > 0.5
    per_cell = [np.corrcoef(v[:, c, cat.CONN], v[:, c, cat.PRB_DL])[0, 1] for c in range(v.shape[1])]
    assert min(per_cell) > 0.8
    per_cell_delay = [np.corrcoef(v[:, c, cat.PRB_DL], v[:, c, cat.DELAY_DL])[0, 1] for c in range(v.shape[1])]
    assert np.median(per_cell_delay) > 0.5
    per_cell_thp = [np.corrcoef(v[:, c, cat.PRB_DL], v[:, c, cat.THP_DL])[0, 1] for c in range(v.shape[1])]
    assert np.median(per_cell_thp) < -0.5
    per_cell_ho = [np.corrcoef(v[:, c, cat.CONN], v[:, c, cat.HO_REQ])[0, 1] for c in range(v.shape[1])]
    assert np.median(per_cell_ho) > 0.5


def test_worse_sinr_means_lower_throughput_at_the_same_load() -> None:
    world = World(WorldConfig(seed=5, n_cells=40, events_per_cell_day=0.0, realism=Realism.off()))
    first = _first(world)
    values = world.block(first, DAY, PERIOD_MS).values.astype(np.float64)
    tp = world.topology
    night = values[2 * 60 : 4 * 60]  # low load everywhere: throughput is capacity-bound
    capacity = tp.n_prb_dl * tp.prb_mhz * tp.dl_share
    assert _corr(night[..., cat.SINR], night[..., cat.THP_DL] / capacity) > 0.5


def test_realtime_starts_at_the_next_whole_period_and_accelerated_at_the_start(small_world: World) -> None:
    now_ms = 1_767_600_000_000 + 12_345
    start = small_world.stream_start(PERIOD_MS, now_ms, realtime=True)
    assert start.first_period * PERIOD_MS > now_ms >= (start.first_period - 1) * PERIOD_MS
    assert start.last_period is None
    accelerated = small_world.stream_start(PERIOD_MS, now_ms, realtime=False)
    assert accelerated.first_period * PERIOD_MS == int(small_world.config.start.timestamp() * 1000)
