"""Every anomaly kind changes what it should, only inside its window, with its own signature.

The same seed with anomalies switched off gives the same noise, so the two worlds differ exactly where
an event acts: the test compares them value by value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from e2sim import catalogue as cat
from e2sim.realism import Realism
from e2sim.source import Label
from e2sim.world import World, WorldConfig
from ranomaly_contracts.kinds import ANOMALY_KINDS

PERIOD_MS = 60_000
PERIODS = 6 * 1440


@pytest.fixture(scope="module")
def twin_worlds() -> tuple[World, np.ndarray, np.ndarray, list[Label], int]:
    """Six days of a 48-cell network with anomalies, the same without, and the labels (no routine missing
    values or coarse steps, which e2sim.realism adds outside events only: test_e2sim_realism.py)."""
    config = WorldConfig(seed=21, n_cells=48, events_per_cell_day=1.0, realism=Realism.off())
    world, quiet = World(config), World(replace(config, events_per_cell_day=0.0))
    first = world.stream_start(PERIOD_MS, 0, realtime=False).first_period
    labels = world.labels(first * PERIOD_MS, (first + PERIODS) * PERIOD_MS, PERIOD_MS)
    return (
        world,
        world.block(first, PERIODS, PERIOD_MS).values.astype(np.float64),
        quiet.block(first, PERIODS, PERIOD_MS).values.astype(np.float64),
        labels,
        first,
    )


def _window(label: Label, first: int) -> slice:
    return slice(label.first_ms // PERIOD_MS - first, label.last_ms // PERIOD_MS - first + 1)


def test_every_kind_occurs(twin_worlds: tuple[World, np.ndarray, np.ndarray, list[Label], int]) -> None:
    labels = twin_worlds[3]
    assert set(Counter(lb.kind for lb in labels)) == set(ANOMALY_KINDS)


def test_outside_every_window_nothing_changes(
    twin_worlds: tuple[World, np.ndarray, np.ndarray, list[Label], int],
) -> None:
    world, with_events, quiet, labels, first = twin_worlds
    touched = np.zeros(with_events.shape[:2], dtype=bool)
    index = {cell: i for i, cell in enumerate(world.cell_ids)}
    for label in labels:
        cell = index[label.cell_id]
        touched[_window(label, first), cell] = True
        if label.kind == "outage":  # its node's other cells absorb the users
            touched[_window(label, first), world.topology.neighbours(cell)] = True
    assert touched.any() and not touched.all()
    np.testing.assert_array_equal(with_events[~touched], quiet[~touched])


def _mean(values: np.ndarray, name: str) -> float:
    return float(np.nanmean(values[:, cat.MEASUREMENT_INDEX[name]]))


def _more_handover_failures(event: np.ndarray, quiet: np.ndarray) -> bool:
    """Failures and attempts never fall, and at least one of them rises."""
    fails = (event[:, cat.HO_REQ] - event[:, cat.HO_SUCC]).sum(), (quiet[:, cat.HO_REQ] - quiet[:, cat.HO_SUCC]).sum()
    attempts = event[:, cat.HO_REQ].sum(), quiet[:, cat.HO_REQ].sum()
    return fails[0] >= fails[1] and attempts[0] >= attempts[1] and (fails[0] > fails[1] or attempts[0] > attempts[1])


SIGNATURES = {
    "congestion": lambda ev, q: _mean(ev, "RRC.ConnMean") > _mean(q, "RRC.ConnMean") * 1.2,
    "interference": lambda ev, q: _mean(ev, "L1M.DL-SS-SINR.SSB") < _mean(q, "L1M.DL-SS-SINR.SSB") - 1.0,
    "outage": lambda ev, q: _mean(ev, "RRC.ConnMean") < 0.1 * _mean(q, "RRC.ConnMean") + 1.0,
    "ho_failure": _more_handover_failures,
    "transport": lambda ev, q: _mean(ev, "DRB.RlcSduDelayDl") > _mean(q, "DRB.RlcSduDelayDl") + 10.0,
    "degradation": lambda ev, q: _mean(ev, "L1M.DL-SS-SINR.SSB") < _mean(q, "L1M.DL-SS-SINR.SSB"),
    "stuck_counter": lambda ev, q: True,  # checked below: frozen measurements are constant
    "silent": lambda ev, q: bool(np.isnan(ev).all()),
}


def test_each_event_changes_only_what_its_kind_touches_with_its_signature(
    twin_worlds: tuple[World, np.ndarray, np.ndarray, list[Label], int],
) -> None:
    world, with_events, quiet, labels, first = twin_worlds
    index = {cell: i for i, cell in enumerate(world.cell_ids)}
    absorbing = np.zeros(with_events.shape[:2], dtype=bool)
    for label in labels:
        if label.kind == "outage":
            absorbing[_window(label, first), world.topology.neighbours(index[label.cell_id])] = True
    checked: Counter[str] = Counter()
    for label in labels:
        rows, cell = _window(label, first), index[label.cell_id]
        if absorbing[rows, cell].any():
            continue  # a neighbour's outage also moves this cell
        during, baseline = with_events[rows, cell], quiet[rows, cell]
        touched = [cat.MEASUREMENT_INDEX[m] for m in label.measurements]
        untouched = [m for m in range(len(cat.MEASUREMENTS)) if m not in touched]
        np.testing.assert_array_equal(during[:, untouched], baseline[:, untouched], err_msg=f"{label}")
        assert not np.array_equal(during[:, touched], baseline[:, touched], equal_nan=True), f"no effect: {label}"
        assert SIGNATURES[label.kind](during, baseline), f"wrong signature: {label}"
        if label.kind == "stuck_counter":
            assert (during[:, touched] == during[0, touched]).all(), f"not frozen: {label}"
            assert 1 <= len(touched) <= 3
        checked[label.kind] += 1
    assert set(checked) == set(ANOMALY_KINDS), f"kinds never checked in isolation: {set(ANOMALY_KINDS) - set(checked)}"


def test_sleeping_cell_neighbours_absorb_its_users(
    twin_worlds: tuple[World, np.ndarray, np.ndarray, list[Label], int],
) -> None:
    world, with_events, quiet, labels, first = twin_worlds
    index = {cell: i for i, cell in enumerate(world.cell_ids)}
    outages = [lb for lb in labels if lb.kind == "outage"]
    assert outages
    for label in outages:
        rows = _window(label, first)
        neighbours = world.topology.neighbours(index[label.cell_id])
        assert with_events[rows][:, neighbours, cat.CONN].sum() > quiet[rows][:, neighbours, cat.CONN].sum()


def test_degradation_grows_over_the_event(twin_worlds: tuple[World, np.ndarray, np.ndarray, list[Label], int]) -> None:
    world, with_events, quiet, labels, first = twin_worlds
    index = {cell: i for i, cell in enumerate(world.cell_ids)}
    for label in (lb for lb in labels if lb.kind == "degradation"):
        rows = _window(label, first)
        loss = quiet[rows, index[label.cell_id], cat.SINR] - with_events[rows, index[label.cell_id], cat.SINR]
        if len(loss) >= 20 and label.first_ms // PERIOD_MS > first:  # whole events only
            half = len(loss) // 2
            assert loss[half:].mean() > loss[:half].mean() > -0.01
