"""Resolving type-20100 instances per cell: precedence, recency, silencing, threshold modes and speed."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pytest

from tests.policy_fakes import MANIFEST_DEVIATION, MANIFEST_SCORE, MEASUREMENTS, FakePolicyDataLayer, make_manifest
from xapp.policy.resolve import DEFAULT_CLOSE_AFTER, DEFAULT_OPEN_AFTER, model_version, resolve_cells
from xapp.policy.store import PolicyInstance, PolicyStore
from xapp.policy.types import MODEL_INSTANCE_ID, POLICY_TYPE_ID

CELLS = ["a1", "a2", "a3", "b1", "b2"]
NODES = ["n1", "n1", "n1", "n2", "n2"]
INF = np.inf
_seq = itertools.count(1)


def rec(instance_id: str, body: dict[str, Any], updated_ms: int, seq: int | None = None) -> PolicyInstance:
    """A stored instance of type 20100 written at updated_ms (seq: the tie-break, increasing by default)."""
    return PolicyInstance(POLICY_TYPE_ID, instance_id, body, updated_ms, next(_seq) if seq is None else seq)


def resolve(*records: PolicyInstance, **manifest: Any) -> Any:
    return resolve_cells(records, make_manifest(**manifest), CELLS, NODES)


def test_without_instances_the_manifest_decides() -> None:
    out = resolve()
    assert out.measurements == MEASUREMENTS
    assert out.enabled.dtype == np.bool_ and out.enabled.tolist() == [True] * 5
    assert out.score_threshold.dtype == np.float32 and out.score_threshold.tolist() == [MANIFEST_SCORE] * 5
    assert out.verdict_deviation.shape == (5, 3) and np.isposinf(out.verdict_deviation).all()
    assert out.attribution_deviation.dtype == np.float32
    assert out.attribution_deviation.tolist() == [[MANIFEST_DEVIATION[m] for m in MEASUREMENTS]] * 5
    assert out.open_after.dtype == np.int32 and out.open_after.tolist() == [DEFAULT_OPEN_AFTER] * 5
    assert out.close_after.dtype == np.int32 and out.close_after.tolist() == [DEFAULT_CLOSE_AFTER] * 5
    assert (DEFAULT_OPEN_AFTER, DEFAULT_CLOSE_AFTER) == (2, 3)
    assert out.notes == ()


def test_fields_merge_from_broad_to_narrow() -> None:
    out = resolve(
        # the cell instance is the oldest: breadth, not recency, decides across levels
        rec("a1-manifest", {"enabled": True, "scope": {"cells": ["a1"]}, "threshold": {"mode": "manifest"}}, 0),
        rec("all", {"enabled": True, "threshold": {"mode": "sigma", "value": 2}, "debounce": {"open_after": 4}}, 1),
        rec(
            "n1",
            {
                "enabled": True,
                "scope": {"nodes": ["n1"], "cells": []},
                "threshold": {"mode": "quantile", "value": 0.99},
                "debounce": {"close_after": 6},
            },
            2,
        ),
        rec(
            "a2-prb",
            {"enabled": True, "scope": {"cells": ["a2"]}, "threshold": {"per_measurement": {MEASUREMENTS[1]: 1.5}}},
            3,
        ),
    )
    # sigma 2: 1.0 + 2 * 0.5 = 2.0; quantile 0.99: 4.0 exactly; manifest: 5.0
    assert out.score_threshold.tolist() == [5.0, 4.0, 4.0, 2.0, 2.0]
    assert out.open_after.tolist() == [4, 4, 4, 4, 4]
    assert out.close_after.tolist() == [6, 6, 6, 3, 3]
    assert out.verdict_deviation[1].tolist() == [INF, 1.5, INF]
    assert out.attribution_deviation[1].tolist() == [3.0, 1.5, 5.0]
    assert np.isposinf(np.delete(out.verdict_deviation, 1, axis=0)).all()
    assert out.attribution_deviation[0].tolist() == [3.0, 4.0, 5.0]


def test_among_equal_breadth_the_most_recent_wins() -> None:
    older = rec("old", {"enabled": True, "threshold": {"mode": "sigma", "value": 2}, "debounce": {"open_after": 5}}, 10)
    newer = rec("new", {"enabled": True, "threshold": {"mode": "sigma", "value": 4}}, 20)
    out = resolve(newer, older)
    assert out.score_threshold.tolist() == [3.0] * 5  # 1 + 4 * 0.5
    assert out.open_after.tolist() == [5] * 5  # the newer instance does not carry debounce: the older's stays
    swapped = resolve(rec("old", older.body, 30), rec("new", newer.body, 20))
    assert swapped.score_threshold.tolist() == [2.0] * 5
    tie_low = rec("x", {"enabled": True, "threshold": {"mode": "sigma", "value": 2}}, 7, seq=1)
    tie_high = rec("y", {"enabled": True, "threshold": {"mode": "sigma", "value": 6}}, 7, seq=2)
    assert resolve(tie_high, tie_low).score_threshold.tolist() == [4.0] * 5  # 1 + 6 * 0.5


async def test_equal_milliseconds_from_the_store_are_ordered_by_its_sequence() -> None:
    store = PolicyStore(FakePolicyDataLayer(), clock_ms=lambda: 1_000)
    await store.load()
    node = {"nodes": ["n2"]}
    await store.put_instance(
        POLICY_TYPE_ID, "z-first", {"enabled": True, "scope": node, "threshold": {"mode": "sigma", "value": 8}}
    )
    await store.put_instance(
        POLICY_TYPE_ID, "a-second", {"enabled": True, "scope": node, "threshold": {"mode": "sigma", "value": 2}}
    )
    out = resolve_cells(store.instances(POLICY_TYPE_ID).values(), make_manifest(), CELLS, NODES)
    assert out.score_threshold.tolist() == [5.0, 5.0, 5.0, 2.0, 2.0]


def test_an_instance_naming_a_cell_and_its_node_counts_as_a_cell_instance_there() -> None:
    cell_only = rec(
        "cell", {"enabled": True, "scope": {"cells": ["a1"]}, "threshold": {"mode": "sigma", "value": 4}}, 2
    )
    both = rec(
        "both",
        {"enabled": True, "scope": {"nodes": ["n1"], "cells": ["a1"]}, "threshold": {"mode": "sigma", "value": 2}},
        3,
    )
    out = resolve(cell_only, both)
    assert out.score_threshold.tolist() == [2.0, 2.0, 2.0, 5.0, 5.0]
    node_only = rec(
        "node", {"enabled": True, "scope": {"nodes": ["n1"]}, "threshold": {"mode": "sigma", "value": 2}}, 3
    )
    assert resolve(cell_only, node_only).score_threshold.tolist() == [3.0, 2.0, 2.0, 5.0, 5.0]


def test_a_disabled_instance_silences_its_scope_and_a_narrower_one_can_reenable() -> None:
    maintenance = rec("maint", {"enabled": False, "scope": {"nodes": ["n1"]}}, 5)
    assert resolve(maintenance).enabled.tolist() == [False, False, False, True, True]
    keep_a2 = rec("keep", {"enabled": True, "scope": {"cells": ["a2"]}}, 1)
    assert resolve(maintenance, keep_a2).enabled.tolist() == [False, True, False, True, True]
    silence_b1 = rec("b1-off", {"enabled": False, "scope": {"cells": ["b1"]}}, 1)
    everything_on = rec("all-on", {"enabled": True}, 9)
    assert resolve(silence_b1, everything_on).enabled.tolist() == [True, True, True, False, True]
    assert (
        resolve(rec("all-off", {"enabled": False, "scope": {"nodes": [], "cells": []}}, 1)).enabled.tolist()
        == [False] * 5
    )


def test_the_model_instance_names_the_version_and_never_touches_cells() -> None:
    off = rec(MODEL_INSTANCE_ID, {"enabled": False, "model_version": "m7"}, 50)
    on = rec(MODEL_INSTANCE_ID, {"enabled": True, "model_version": "m7"}, 50)
    out = resolve(off)
    assert out.enabled.tolist() == [True] * 5 and out.score_threshold.tolist() == [MANIFEST_SCORE] * 5
    assert model_version([on, rec("ops", {"enabled": True}, 1)]) == "m7"
    assert model_version([off]) is None
    assert model_version([rec(MODEL_INSTANCE_ID, {"enabled": True}, 1)]) is None
    assert model_version([]) is None
    other_type = PolicyInstance(1234, MODEL_INSTANCE_ID, {"enabled": True, "model_version": "m9"}, 1, 1)
    assert model_version([other_type]) is None


@pytest.mark.parametrize(
    ("threshold", "expected", "note"),
    [
        ({"mode": "sigma", "value": 3}, 1.0 + 3 * 0.5, None),
        ({"mode": "sigma", "value": 0.5}, 1.25, None),
        ({"mode": "quantile", "value": 0.95}, 2.0 + (0.95 - 0.9) / (0.99 - 0.9) * (4.0 - 2.0), None),
        ({"mode": "quantile", "value": 0.995}, 4.0 + (0.995 - 0.99) / (0.999 - 0.99) * (6.0 - 4.0), None),
        ({"mode": "quantile", "value": 0.999}, 6.0, None),
        (
            {"mode": "quantile", "value": 0.5},
            2.0,
            "quantile 0.5 outside the manifest's levels 0.9..0.999; clamped to 0.9",
        ),
        ({"mode": "quantile", "value": 0.9999}, 6.0, "clamped to 0.999"),
        ({"mode": "manifest", "value": 123}, MANIFEST_SCORE, None),
    ],
)
def test_threshold_modes_against_hand_computed_values(
    threshold: dict[str, Any], expected: float, note: str | None
) -> None:
    out = resolve(rec("t", {"enabled": True, "threshold": threshold}, 1))
    np.testing.assert_allclose(out.score_threshold, np.full(5, expected, np.float32), rtol=1e-6)
    if note is None:
        assert out.notes == ()
    else:
        assert len(out.notes) == 1 and note in out.notes[0] and "'t'" in out.notes[0]


def test_quantile_without_manifest_quantiles_falls_back_with_a_note() -> None:
    out = resolve(rec("q", {"enabled": True, "threshold": {"mode": "quantile", "value": 0.99}}, 1), quantiles={})
    assert out.score_threshold.tolist() == [MANIFEST_SCORE] * 5
    assert out.notes and "no score quantiles" in out.notes[0]


def test_unknown_per_measurement_names_are_ignored_and_reported() -> None:
    body = {"enabled": True, "threshold": {"per_measurement": {"PEE.Energy": 2.0, MEASUREMENTS[2]: 0.25}}}
    out = resolve(rec("pm", body, 1))
    assert out.verdict_deviation[:, 2].tolist() == [0.25] * 5
    assert np.isposinf(out.verdict_deviation[:, :2]).all()
    assert out.notes == ("instance 'pm': per_measurement 'PEE.Energy' is not a measurement of model m1; ignored",)


def test_cell_and_node_lists_must_match_and_may_be_empty() -> None:
    with pytest.raises(ValueError, match="5 cell ids but 4 node ids"):
        resolve_cells([], make_manifest(), CELLS, NODES[:4])
    out = resolve_cells([rec("a", {"enabled": False}, 1)], make_manifest(), [], [])
    assert out.enabled.shape == (0,) and out.verdict_deviation.shape == (0, 3)


def test_ten_thousand_cells_resolve_fast() -> None:
    n_nodes, per_node = 1000, 10
    nodes = [f"gnb-{i // per_node:04d}" for i in range(n_nodes * per_node)]
    cells = [f"{node}-c{i % per_node}" for i, node in enumerate(nodes)]
    records = [rec("all", {"enabled": True, "threshold": {"mode": "sigma", "value": 3}}, 1)]
    for j in range(10):
        scope = {"nodes": [f"gnb-{(j * 97 + k) % n_nodes:04d}" for k in range(20)]}
        records.append(rec(f"node-{j}", {"enabled": j % 3 != 0, "scope": scope, "debounce": {"open_after": 3}}, 10 + j))
    for j in range(9):
        scope = {"cells": [cells[(j * 1_111 + k * 7) % len(cells)] for k in range(30)]}
        body = {"enabled": True, "scope": scope, "threshold": {"mode": "quantile", "value": 0.95}}
        records.append(rec(f"cell-{j}", body, 100 + j))
    manifest = make_manifest()
    elapsed = []
    for _ in range(3):
        start = time.perf_counter()
        out = resolve_cells(records, manifest, cells, nodes)
        elapsed.append(time.perf_counter() - start)
    assert out.enabled.shape == (10_000,) and 0 < out.enabled.sum() < 10_000
    assert min(elapsed) < 0.05, f"resolving 10k cells took {min(elapsed) * 1e3:.1f} ms"
