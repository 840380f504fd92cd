"""RIC_INDICATION payloads (E2AP + E2SM-KPM, aligned PER) to the indication batches the engine takes.

Each subscription reports one cell (report style 1, format 1), and the RIC names the subscription by the
instance id in every indication's RIC request id. Cells of one node for one period that arrive together
become one indication (kpmrows). Sequence numbers are per subscription (RICindicationSN, 16 bits,
wrapping): gaps are counted here, and the engine's per-node check is left out (sequence 0), since a node's
cells report on separate subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2sm.fast import DECODE_ERRORS, decode
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.kpmrows import IndicationAssembler
from xapp.metrics import XappMetrics
from xapp.ric.cells import RicCell

_SN_MODULO = 65_536


class KpmIntake:
    """Decodes indications of known subscriptions into engine batches; counts what it drops."""

    def __init__(
        self,
        measurements: Sequence[str],
        period_ms: int,
        kpm_version: int,
        metrics: XappMetrics,
        errors: RateLimitedLog,
    ) -> None:
        self.measurements = tuple(measurements)
        self.period_ms = period_ms
        self.kpm_version = kpm_version
        self._metrics = metrics
        self._errors = errors
        self._cells: dict[int, RicCell] = {}  # E2 event instance id (RIC instance id) -> cell
        self._next_sn: dict[int, int] = {}
        self._rows = IndicationAssembler(measurements)

    @property
    def bound(self) -> Mapping[int, RicCell]:
        """The cell of every RIC instance id indications are taken from."""
        return self._cells

    def bind(self, instance_id: int, cell: RicCell) -> None:
        """Indications with this RIC instance id report this cell (a resubscription rebinds it)."""
        for stale in [i for i, c in self._cells.items() if c.cell_id == cell.cell_id and i != instance_id]:
            del self._cells[stale]
            self._next_sn.pop(stale, None)
        self._cells[instance_id] = cell

    def unbind(self, cell: RicCell) -> None:
        """The cell's subscription is gone; its late indications are dropped as unknown."""
        for stale in [i for i, c in self._cells.items() if c.cell_id == cell.cell_id]:
            del self._cells[stale]
            self._next_sn.pop(stale, None)

    def batch(self, payloads: Sequence[bytes]) -> pb.IndicationBatch:
        """One engine batch of the well-formed indications of known subscriptions among payloads."""
        rows = self._rows
        for payload in payloads:
            try:
                decoded = decode(payload, self.kpm_version)
            except DECODE_ERRORS as exc:
                self._drop("malformed", str(exc), len(payload))
                continue
            cell = self._cells.get(decoded.instance_id)
            if cell is None:
                self._drop("unknown_subscription", f"RIC instance id {decoded.instance_id}", len(payload))
                continue
            start, period = decoded.collection_start_ms, decoded.granularity_ms or self.period_ms
            if not rows.add(cell.meid, start, period, 0, cell.cell_id, decoded.names, decoded.values):
                problem = f"{len(decoded.values)} records for {len(self.measurements)} measurements"
                self._drop("malformed", problem, len(payload))
                continue
            self._count_sequence(decoded.instance_id, decoded.sequence)
        return rows.take()

    def _count_sequence(self, instance_id: int, sequence: int | None) -> None:
        if sequence is None:
            return
        expected = self._next_sn.get(instance_id, sequence)
        missing = (sequence - expected) % _SN_MODULO
        if 0 < missing < _SN_MODULO // 2:  # a small step back is a repeat or reordering, not a gap
            self._metrics.sequence_gaps.inc(missing)
        if missing < _SN_MODULO // 2:
            self._next_sn[instance_id] = (sequence + 1) % _SN_MODULO

    def _drop(self, reason: str, problem: str, size: int) -> None:
        self._metrics.decode_errors.labels(reason).inc()
        self._errors.warning(reason, "ric_indication_dropped", reason=reason, problem=problem, size=size)
