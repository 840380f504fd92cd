"""`make demo` / `ranomaly demo`: the E2 simulator and a subscriber end to end, beside the ground truth.

The simulator serves a day of its network over gRPC on loopback (accelerated); a subscriber takes
every cell and measurement, checks sequence numbers for loss, and shows what streams: an hourly line
with rates, and each labelled anomaly as it starts and ends, with what it did to its cell's headline
measurement (mean during the event against the hour before). Labels come from the GroundTruth
service beside the stream, as a scorer would fetch them. Later issues put the xApp in the
subscriber's place.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import grpc
import numpy as np

from e2sim.server import SimServer, StreamOptions
from e2sim.world import World, WorldConfig
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2 as gt
from ranomaly_contracts.e2sim.v1 import ground_truth_pb2_grpc as gt_grpc
from ranomaly_contracts.indications import DecodedIndication, decode_indication

PERIOD_MS = 60_000
HOUR = 60  # periods
# The measurement that shows each kind best.
HEADLINE = {
    "congestion": "RRC.ConnMean",
    "interference": "L1M.DL-SS-SINR.SSB",
    "outage": "RRC.ConnMean",
    "transport": "DRB.RlcSduDelayDl",
    "degradation": "L1M.DL-SS-SINR.SSB",
}


def _clock(ms: int) -> str:
    return time.strftime("%a %H:%M", time.gmtime(ms / 1000))


class _Subscriber:
    """Keeps what streamed (values per period and cell), counts loss, and reports against labels."""

    def __init__(self, names: list[str], cell_ids: list[str], periods: int) -> None:
        self.names = names
        self.cell_index = {cell: i for i, cell in enumerate(cell_ids)}
        self.values = np.full((periods, len(cell_ids), len(names)), np.nan, dtype=np.float32)
        self.first_ms: int | None = None
        self.indications = self.cell_reports = self.gaps = 0
        self._next_sequence: dict[str, int] = {}

    def take(self, indication: DecodedIndication) -> int:
        """Store one indication; return its period's row."""
        if self.first_ms is None:
            self.first_ms = indication.collection_start_ms
        expected = self._next_sequence.get(indication.node_id, indication.sequence)
        self.gaps += max(indication.sequence - expected, 0)
        self._next_sequence[indication.node_id] = indication.sequence + 1
        row = (indication.collection_start_ms - self.first_ms) // PERIOD_MS
        cols = [self.cell_index[c] for c in indication.cell_ids]
        self.values[row, cols] = indication.values
        self.indications += 1
        self.cell_reports += len(cols)
        return row

    def effect(self, anomaly: gt.Anomaly) -> str:
        """What the anomaly did to its cell, from the streamed values."""
        assert self.first_ms is not None
        lo = (anomaly.first_ms - self.first_ms) // PERIOD_MS
        hi = (anomaly.last_ms - self.first_ms) // PERIOD_MS + 1
        cell = self.values[:, self.cell_index[anomaly.cell_id]]
        if anomaly.kind == "silent":
            return f"{int(np.isnan(cell[lo:hi]).sum())} records with no value"
        if anomaly.kind == "stuck_counter":
            frozen = [f"{m} at {cell[lo, self.names.index(m)]:g}" for m in anomaly.measurements]
            return "frozen: " + ", ".join(frozen)
        if anomaly.kind == "ho_failure":
            req, succ = self.names.index("MM.HoExeInterReq"), self.names.index("MM.HoExeInterSucc")
            window_before, window_during = cell[max(lo - HOUR, 0) : lo], cell[lo:hi]
            rate_before = float(np.nansum(window_before[:, succ])) / max(float(np.nansum(window_before[:, req])), 1.0)
            rate_during = float(np.nansum(window_during[:, succ])) / max(float(np.nansum(window_during[:, req])), 1.0)
            return f"handover success {rate_before:.0%} -> {rate_during:.0%} over the hour before / the event"
        name = HEADLINE[anomaly.kind]
        m = self.names.index(name)
        before = cell[max(lo - HOUR, 0) : lo, m]
        if before.size == 0 or np.isnan(before).all():
            return ""
        mean_during = float(np.nanmean(cell[lo:hi, m]))
        return f"{name} {np.nanmean(before):.1f} -> {mean_during:.1f}, mean over the hour before / the event"


async def run_demo(cells: int, hours: float, seed: int) -> int:
    """Stream `hours` of a `cells`-cell network and show it against ground truth; 0 when nothing was lost."""
    periods = max(1, int(hours * 3_600_000) // PERIOD_MS)
    server = SimServer(World(WorldConfig(seed=seed, n_cells=cells)), StreamOptions(realtime=False, periods=periods))
    port = await server.start("127.0.0.1", 0)
    began = time.perf_counter()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            e2, truth = pb_grpc.E2NodeStub(channel), gt_grpc.GroundTruthStub(channel)
            nodes = await e2.ListNodes(pb.ListNodesRequest())
            cell_ids = [c.cell_id for n in nodes.nodes for c in n.cells]
            print(
                f"e2sim on 127.0.0.1:{port}: {len(nodes.nodes)} E2 nodes, {len(cell_ids)} cells, "
                f"{len(nodes.ran_function.measurements)} KPM measurements; streaming {hours:g} simulated hours "
                f"at {PERIOD_MS // 1000} s"
            )
            subscriber: _Subscriber | None = None
            starts: dict[int, list[gt.Anomaly]] = defaultdict(list)
            ends: dict[int, list[gt.Anomaly]] = defaultdict(list)
            shown = -1
            request = pb.SubscriptionRequest(subscriber_id="demo", reporting_period_ms=PERIOD_MS)
            async for message in e2.Subscribe(request):
                if message.HasField("accepted"):
                    subscriber = _Subscriber(list(message.accepted.measurements), cell_ids, periods)
                    continue
                assert subscriber is not None
                for indication in message.batch.indications:
                    row = subscriber.take(decode_indication(indication, len(subscriber.names)))
                    if subscriber.first_ms is not None and not starts and not ends and row == 0:
                        labels = await truth.ListAnomalies(
                            gt.ListAnomaliesRequest(
                                start_ms=subscriber.first_ms,
                                end_ms=subscriber.first_ms + periods * PERIOD_MS,
                                reporting_period_ms=PERIOD_MS,
                            )
                        )
                        for anomaly in labels.anomalies:
                            starts[anomaly.first_ms].append(anomaly)
                            ends[anomaly.last_ms].append(anomaly)
                    while shown < row - 1:  # every node has reported the previous period
                        shown += 1
                        _show_period(subscriber, shown, starts, ends)
            assert subscriber is not None
            while shown < periods - 1:
                shown += 1
                _show_period(subscriber, shown, starts, ends)
    finally:
        await server.stop()
    return _summary(subscriber, [a for lst in starts.values() for a in lst], time.perf_counter() - began)


def _show_period(
    sub: _Subscriber,
    row: int,
    starts: dict[int, list[gt.Anomaly]],
    ends: dict[int, list[gt.Anomaly]],
) -> None:
    assert sub.first_ms is not None
    time_ms = sub.first_ms + row * PERIOD_MS
    if row % HOUR == 0:
        active = sum(1 for lst in starts.values() for a in lst if a.first_ms <= time_ms <= a.last_ms)
        reporting = int((~np.isnan(sub.values[row]).all(axis=1)).sum())
        print(
            f"{_clock(time_ms)}  {reporting} cells with values, {sub.cell_reports:,} cell-reports so far, "
            f"{active} anomalies active, sequence gaps {sub.gaps}"
        )
    for anomaly in starts.get(time_ms, []):
        print(f"  {_clock(time_ms)}  + {anomaly.kind:13s} {anomaly.cell_id:12s} intensity {anomaly.intensity:.2f}")
    for anomaly in ends.get(time_ms, []):
        minutes = (anomaly.last_ms - anomaly.first_ms) // PERIOD_MS + 1
        effect = sub.effect(anomaly)
        print(f"  {_clock(time_ms)}  - {anomaly.kind:13s} {anomaly.cell_id:12s} {minutes:4d} min  {effect}")


def _summary(sub: _Subscriber | None, anomalies: list[gt.Anomaly], seconds: float) -> int:
    if sub is None:
        print("the stream ended before it was accepted")
        return 1
    kinds = Counter(a.kind for a in anomalies)
    labelled = sum((a.last_ms - a.first_ms) // PERIOD_MS + 1 for a in anomalies)
    print(
        f"\nstreamed {sub.indications:,} indications, {sub.cell_reports:,} cell-reports in {seconds:.1f} s "
        f"({sub.cell_reports / seconds:,.0f}/s); sequence gaps {sub.gaps}; "
        f"{int(np.isnan(sub.values).sum()):,} records with no value"
    )
    print(
        f"ground truth: {len(anomalies)} anomalies over {labelled / max(sub.cell_reports, 1):.1%} of cell-periods ("
        + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        + ")"
    )
    return 0 if sub.gaps == 0 else 1
