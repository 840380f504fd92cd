"""A period's burst without a serial queue: scoring on its own thread while the next batch fills, in order.

And the xApp's own bookkeeping per cell, beside the model's state, within 1 KiB.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Sequence

import numpy as np

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from tests.waiting import until
from tests.xapp_helpers import MEASUREMENTS, PERIOD_MS, T0, accepted, batch, engine_on, indication, trivial_runtime
from xapp.datalayer.memory import MemoryDataLayer
from xapp.engine import Engine
from xapp.runtime import Feeds, ModelRuntime, Outputs


class GatedRuntime(ModelRuntime):
    """The trivial model whose scoring call waits until the test opens the gate (a slow ONNX call)."""

    def __init__(self, base: ModelRuntime) -> None:
        super().__init__(base.artifact, base._session, MEASUREMENTS)
        self.gate = threading.Event()
        self.started = threading.Event()

    def run(self, feeds: Feeds) -> Outputs:
        self.started.set()
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return super().run(feeds)


class Watched(ModelRuntime):
    """The trivial model, recording what each batch handed over holds and checking no cell is in two at once."""

    def __init__(self, base: ModelRuntime) -> None:
        super().__init__(base.artifact, base._session, MEASUREMENTS)
        self.in_flight: set[int] = set()
        self.most_in_flight = 0
        self.periods: dict[int, list[int]] = {}  # slot -> period starts in the order they were handed over

    def prepare(
        self, slots: np.ndarray, x: np.ndarray, mask: np.ndarray, period_ms: np.ndarray, node_of_slot: np.ndarray
    ) -> Feeds:
        handed = set(slots.tolist())
        assert len(handed) == len(slots), "a cell twice in one batch"
        assert not handed & self.in_flight, "a cell's state in two batches in flight"
        self.in_flight |= handed
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        for slot, start in zip(slots.tolist(), period_ms.tolist(), strict=True):
            self.periods.setdefault(slot, []).append(start)
        return super().prepare(slots, x, mask, period_ms, node_of_slot)

    def commit(self, slots: np.ndarray, state_out: np.ndarray) -> np.ndarray:
        self.in_flight -= set(slots.tolist())
        return super().commit(slots, state_out)


Verdict = tuple[str, int, int, float, str]


async def verdict_rows(layer: MemoryDataLayer) -> list[Verdict]:
    """(cell, period start, status, score, model version) of every verdict written, in the order written."""
    await layer.flush()
    return [
        (cell, int(vb.period_start_ms[i]), int(vb.statuses[i]), float(vb.scores[i]), vb.model_version)
        for _, vb in await layer.read_verdicts()
        for i, cell in enumerate(vb.cell_ids)
    ]


def burst(periods: int, nodes: int = 24) -> list[list[pb.Indication]]:
    """Per period, one indication per node of 1 to 4 cells; two nodes' periods 1, 4 and 7 come after the next."""
    rng = np.random.default_rng(7)
    cells = {f"n{n}": [f"n{n}-c{c}" for c in range(1 + n % 4)] for n in range(nodes)}
    out: list[list[pb.Indication]] = [[] for _ in range(periods)]
    held: dict[str, pb.Indication] = {}
    for p in range(periods):
        for node, ids in cells.items():
            values = {c: rng.uniform(0, 50, 3).round(1).tolist() for c in ids}
            if node in ("n3", "n7") and p % 3 == 1 and p + 1 < periods:
                held[node] = indication(node, p, values)
                continue
            out[p].append(indication(node, p, values))
            if node in held:
                out[p].append(held.pop(node))
    return out


async def scored(overlap: bool, stage_at: int | None = None, policy_at: int | None = None) -> list[Verdict]:
    """Verdicts of the same burst (8-row batches, so several per period) scored with or without overlap."""
    layer = MemoryDataLayer()
    await layer.start()
    engine = await engine_on(layer, Watched(trivial_runtime()), batch_max_cells=8, overlap_scoring=overlap)
    engine.on_accepted(accepted(dict.fromkeys((f"n{n}" for n in range(24)), ())))
    watched: list[Watched] = [engine.model]  # type: ignore[list-item]
    for p, indications in enumerate(burst(10)):
        if p == stage_at:
            watched.append(Watched(trivial_runtime("trivial-2", warmup=1)))
            engine.stage(watched[-1], shadow_periods=2)
        if p == policy_at:
            store = engine.policies.store  # type: ignore[attr-defined]
            await store.put_instance(20100, "quiet-n1", {"enabled": False, "scope": {"nodes": ["n1"]}})
        for i in range(0, len(indications), 5):
            engine.on_batch(batch(*indications[i : i + 5]))
            if i % 10 == 0:
                engine.refresh_policies()  # as the duties do between messages
    engine.flush()
    for runtime in watched:
        assert not runtime.in_flight, "every batch handed over was published"
        for starts in runtime.periods.values():
            assert starts == sorted(set(starts)), "a cell's periods handed over out of order or twice"
    assert watched[0].most_in_flight <= 8, "one batch of 8 rows in flight at most"
    engine.close()
    return await verdict_rows(layer)


async def test_overlapped_scoring_gives_the_serial_verdicts_in_order_each_period_once() -> None:
    overlapped, serial = await scored(overlap=True), await scored(overlap=False)
    assert overlapped == serial, "same verdicts, same order of publication"
    keys = [(cell, start) for cell, start, *_ in overlapped]
    assert len(keys) == len(set(keys)) == 10 * sum(1 + n % 4 for n in range(24)), "every cell-period once"
    for cell in {cell for cell, _ in keys}:
        starts = [start for c, start in keys if c == cell]
        assert starts == sorted(starts), f"{cell}'s periods published out of order"


async def test_a_swap_and_a_policy_change_during_a_burst_fall_where_they_do_serially() -> None:
    overlapped = await scored(overlap=True, stage_at=4, policy_at=6)
    assert overlapped == await scored(overlap=False, stage_at=4, policy_at=6)
    versions = [version for *_, version in overlapped]
    assert "trivial-2" in versions and versions == sorted(versions), "the new model takes over once, for good"
    silenced = {start for cell, start, status, *_ in overlapped if cell.startswith("n1-") and status == 3}
    assert silenced, "the policy change was applied during the burst"


async def test_a_slow_scoring_call_does_not_hold_up_the_next_messages() -> None:
    layer = MemoryDataLayer()
    await layer.start()
    gated = GatedRuntime(trivial_runtime())
    # batches go when a cell repeats
    engine: Engine = await engine_on(layer, gated, batch_window_ms=60_000.0, overlap_scoring=True)
    engine.on_accepted(accepted({"n1": ["c1", "c2"], "n2": ["c3"]}))
    calm = (10.0, 20.0, 30.0)
    engine.on_batch(batch(indication("n1", 0, {"c1": calm, "c2": calm}), indication("n2", 0, {"c3": calm})))
    engine.on_batch(batch(indication("n1", 1, {"c1": calm, "c2": calm}), indication("n2", 1, {"c3": calm})))
    await until(gated.started.is_set, what="period 0 in the (blocked) scoring call")
    assert engine.batch.n == 3 and engine.pending_rows == 6, "period 1 was decoded and placed meanwhile"
    assert engine.scored_rows == 0
    gated.gate.set()
    await until(lambda: engine.scored_rows == 3, what="period 0 published when its call returned, unasked")
    engine.flush()
    assert [(cell, start) for cell, start, *_ in await verdict_rows(layer)] == [
        (cell, T0 + p * PERIOD_MS) for p in (0, 1) for cell in ("c1", "c2", "c3")
    ]
    engine.close()


async def test_bookkeeping_per_cell_beside_the_model_state_is_within_a_kib() -> None:
    """Everything allocated per cell (table, intake, policies, incidents, quality, the in-memory data layer's
    latest state per cell) less the model's state, measured with tracemalloc between 1,000 and 5,000 cells."""
    layer = MemoryDataLayer(verdict_stream_bytes=1, kpm_stream_bytes=1)  # what cells hold, not what streams do
    await layer.start()
    engine = await engine_on(layer)
    nodes: dict[str, Sequence[str]] = {f"n{n}": [f"n{n}-c{c}" for c in range(8)] for n in range(625)}
    engine.on_accepted(accepted(nodes))
    calm = (10.0, 20.0, 30.0)

    async def feed(names: list[str]) -> None:
        for p in range(2):
            engine.on_batch(batch(*(indication(n, p, dict.fromkeys(nodes[n], calm)) for n in names)))
        engine.flush()
        await layer.flush()
        gc.collect()

    await feed(list(nodes)[:125])
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state_before = engine.model.state.nbytes
    await feed(list(nodes)[125:])
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_cell = (grown - (engine.model.state.nbytes - state_before)) / 4_000
    assert len(engine.table) == 5_000
    assert per_cell <= 1024, f"{per_cell:.0f} bytes a cell beside the model state"
    engine.close()
