"""Routine reporting (e2sim.realism): missing values at their rates, silent cells still distinct, late cells."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from e2sim import catalogue as cat
from e2sim.export import export_world
from e2sim.realism import COUNTED, PER_UE, Realism
from e2sim.source import KpmBlock, Label
from e2sim.topology import CellType
from e2sim.world import World, WorldConfig
from ranomaly_contracts.dataset import read_dataset, to_arrays

PERIOD_MS = 120_000
PERIODS = 4 * 720  # four days


class Run(NamedTuple):
    world: World
    block: KpmBlock
    labels: list[Label]
    labelled: np.ndarray  # bool [T, N]
    first: int


def _run(config: WorldConfig) -> Run:
    world = World(config)
    first = world.stream_start(PERIOD_MS, 0, realtime=False).first_period
    block = world.block(first, PERIODS, PERIOD_MS)
    labels = world.labels(first * PERIOD_MS, (first + PERIODS) * PERIOD_MS, PERIOD_MS)
    labelled = np.zeros(block.values.shape[:2], dtype=bool)
    index = {cell: i for i, cell in enumerate(world.cell_ids)}
    for label in labels:
        labelled[label.first_ms // PERIOD_MS - first : label.last_ms // PERIOD_MS - first + 1, index[label.cell_id]] = 1
    return Run(world, block, labels, labelled, first)


@pytest.fixture(scope="module")
def run() -> Run:
    """Four days of a 40-cell network at 2 minutes with the default realism."""
    return _run(WorldConfig(seed=3, n_cells=40, events_per_cell_day=1.0))


def _reported(block: KpmBlock) -> np.ndarray:
    return np.ones(block.values.shape[:2], dtype=bool) if block.reported is None else block.reported


def test_single_values_and_whole_records_are_lost_at_their_rates(run: Run) -> None:
    routine = _reported(run.block) & ~run.labelled
    values = run.block.values[routine]
    whole = np.isnan(values).all(axis=1)
    assert 0.0008 < whole.mean() < 0.0025, "whole records lost: 0.15 % by default"
    single = np.isnan(values[~whole][:, list(COUNTED)])  # never empty for a physical reason
    assert 0.010 < single.mean() < 0.015, "single values lost: 1.2 % by default"


def test_cells_without_ues_report_no_per_ue_measurement_and_count_zero(run: Run) -> None:
    values = run.block.values[_reported(run.block) & ~run.labelled]
    conn = values[:, cat.CONN]
    idle = (conn == 0) & np.isnan(values[:, cat.SINR]) & np.isnan(values[:, cat.DELAY_DL])
    assert idle.sum() > 20
    assert np.isnan(values[idle][:, [cat.THP_DL, cat.LOSS_UL]]).all()
    counted = values[idle][:, list(COUNTED)]
    assert np.all((counted == 0) | np.isnan(counted))
    per_ue = np.isnan(values[:, list(PER_UE)]).all(axis=1)
    assert np.all(per_ue <= ((conn == 0) | np.isnan(conn) | np.isnan(values).all(axis=1) | (conn < 5)))


def test_low_traffic_cells_are_often_empty_or_without_handovers_at_night(run: Run) -> None:
    hours = (run.block.times_ms // 3_600_000) % 24
    night, day = (hours >= 1) & (hours < 4), (hours >= 10) & (hours < 18)
    rural = run.world.topology.cell_type == CellType.RURAL
    assert rural.any()
    routine = _reported(run.block) & ~run.labelled
    no_handover = run.block.values[..., cat.HO_REQ] == 0
    assert no_handover[night][:, rural][routine[night][:, rural]].mean() > 0.3
    empty_ul = np.isnan(run.block.values[..., cat.THP_UL])
    assert empty_ul[night][routine[night]].mean() > 3 * empty_ul[day][routine[day]].mean()


def test_same_seed_same_output_whatever_the_blocks(run: Run) -> None:
    again = World(run.world.config)
    whole = again.block(run.first, PERIODS, PERIOD_MS)
    np.testing.assert_array_equal(whole.values, run.block.values)
    np.testing.assert_array_equal(_reported(whole), _reported(run.block))
    pieces = np.concatenate([again.block(run.first + s, 101, PERIOD_MS).values for s in range(0, PERIODS, 101)])
    np.testing.assert_array_equal(pieces[:PERIODS], run.block.values)
    other = World(replace(run.world.config, seed=4)).block(run.first, PERIODS, PERIOD_MS).values
    assert not np.array_equal(np.isnan(other), np.isnan(run.block.values))


def test_silent_cells_stay_runs_of_empty_records_and_lost_records_stay_short(run: Run) -> None:
    index = {cell: i for i, cell in enumerate(run.world.cell_ids)}
    silent = [lb for lb in run.labels if lb.kind == "silent"]
    assert silent
    for label in silent:
        rows = slice(label.first_ms // PERIOD_MS - run.first, label.last_ms // PERIOD_MS - run.first + 1)
        assert np.isnan(run.block.values[rows, index[label.cell_id]]).all()
    empty = np.isnan(run.block.values).all(axis=2) & _reported(run.block) & ~run.labelled
    assert empty.any()
    assert not (empty[2:] & empty[1:-1] & empty[:-2]).any(), "outside events, no cell is empty 3 periods in a row"


def test_labelled_windows_are_left_as_the_clean_simulator_makes_them(run: Run) -> None:
    clean = _run(replace(run.world.config, realism=replace(Realism.off(), late_cell_share=0.05)))
    assert clean.labels == run.labels
    fine = ~run.world.deployment.coarse
    inside = run.labelled[:, fine]
    np.testing.assert_array_equal(run.block.values[:, fine][inside], clean.block.values[:, fine][inside])


def test_coarse_nodes_report_on_few_levels(run: Run) -> None:
    coarse = run.world.deployment.coarse
    assert 0 < coarse.sum() < coarse.size
    values = run.block.values[:, coarse].astype(np.float64)
    for m, step in ((cat.SINR, 1.0), (cat.LOSS_UL, 1000.0), (cat.DELAY_DL, 10.0)):
        present = values[..., m][~np.isnan(values[..., m])]
        np.testing.assert_allclose(present / step, np.rint(present / step), atol=1e-4)
    loss = values[..., cat.LOSS_UL]
    assert np.nanmean(loss == 0) > 0.5, "the UL loss ratio sits at 0 most of the time"


def test_late_cells_report_nothing_before_they_appear(run: Run, tmp_path: Path) -> None:
    appears = run.world.deployment.appears_s
    late = np.flatnonzero(np.isfinite(appears))
    assert late.size == 2  # 5 % of 40 cells
    times_s = run.block.times_ms / 1000.0
    reported = _reported(run.block)
    for cell in late:
        before = times_s < appears[cell]
        assert before.any() and (~before).any()
        assert not reported[before, cell].any() and reported[~before, cell].all()
        assert np.isnan(run.block.values[before, cell]).all()
    late_ids = {run.world.cell_ids[c] for c in late}
    assert all(lb.first_ms / 1000.0 >= appears[run.world.cell_ids.index(lb.cell_id)] for lb in run.labels
               if lb.cell_id in late_ids)  # fmt: skip

    export_world(World(run.world.config), tmp_path, days=4, period_s=PERIOD_MS / 1000, fmt="parquet")
    arrays = to_arrays(read_dataset(tmp_path))
    np.testing.assert_array_equal(arrays.reported, reported)
    np.testing.assert_array_equal(arrays.values, run.block.values)


def test_off_reports_every_value() -> None:
    world = World(WorldConfig(seed=3, n_cells=12, events_per_cell_day=0.0, realism=Realism.off()))
    block = world.block(world.stream_start(PERIOD_MS, 0, realtime=False).first_period, 720, PERIOD_MS)
    assert block.reported is None and not np.isnan(block.values).any()
