"""Root cause: features of an incident window and a classifier that tells the kinds apart."""

from __future__ import annotations

import numpy as np

from models.metrics import Event
from models.rootcause import evaluate_rootcause, event_features, fit_rootcause, window_features
from ranomaly_contracts.dataset import KpmArrays


def _arrays(values: np.ndarray) -> KpmArrays:
    n_periods, n_cells, k = values.shape
    return KpmArrays(
        times_ms=np.arange(n_periods, dtype=np.int64) * 60_000,
        node_ids=tuple("n" for _ in range(n_cells)),
        cell_ids=tuple(f"c{i}" for i in range(n_cells)),
        measurements=tuple(f"m{i}" for i in range(k)),
        values=values,
        reported=np.ones((n_periods, n_cells), dtype=bool),
    )


def test_window_features_see_direction_repeats_and_missing_values() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(90, 110, (200, 3))
    values[100:115, 0] *= 3.0  # up
    values[100:115, 1] = 55.5  # frozen
    values[100:115, 2] = np.nan  # no value
    deviations = np.zeros((200, 3))
    deviations[100:115, 0] = 4.0
    features = window_features(values, deviations, 100, 130).reshape(
        5, 3
    )  # mean dev, max dev, change, repeats, missing
    assert features[0, 0] == 4.0 and features[1, 0] == 4.0
    assert features[2, 0] > 1.0 and abs(features[2, 1]) > 0.4
    assert features[3, 1] == 1.0 and features[3, 0] == 0.0
    assert features[4, 2] == 1.0 and features[4, 0] == 0.0


def test_classifier_tells_kinds_apart_on_separable_incidents() -> None:
    rng = np.random.default_rng(1)
    n_events, length = 80, 40
    values = rng.uniform(90, 110, (n_events * length, 1, 4))
    deviations = np.zeros(values.shape)
    events, kinds = [], []
    for i in range(n_events):
        start = i * length + 20
        kind = ("congestion", "outage", "stuck_counter", "silent")[i % 4]
        block = slice(start, start + 10)
        if kind == "congestion":
            values[block, 0, :2] *= 2.5
        elif kind == "outage":
            values[block, 0, :2] *= 0.05
        elif kind == "stuck_counter":
            values[block, 0, 3] = values[start - 1, 0, 3]
        else:
            values[block, 0] = np.nan
        deviations[block, 0] = 3.0
        events.append(Event(0, start, start + 9, kind))
        kinds.append(kind)
    arrays = _arrays(values)
    features = event_features(arrays, deviations[:, :, :], events)
    train = [i for i in range(n_events) if (i // 4) % 2 == 0]  # every kind on both sides
    test = [i for i in range(n_events) if (i // 4) % 2 == 1]
    model = fit_rootcause(features[train], [kinds[i] for i in train])
    result = evaluate_rootcause(model, features[test], [kinds[i] for i in test])
    assert result["accuracy"] == 1.0
    assert np.trace(np.array(result["confusion"])) == len(test)
    assert set(result["recall_by_kind"]) == {"congestion", "outage", "stuck_counter", "silent"}
