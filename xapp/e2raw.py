"""E2SM-KPM bytes on the gRPC contract (RawKpmIndication, for E2 terminations that forward E2SM payloads
unchanged) decoded by the fast path into the compact indications the engine takes."""

from __future__ import annotations

from collections.abc import Sequence

from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2sm.fast import decode_kpm
from ranomaly_contracts.e2sm.kpm import KpmDecodeError
from ranomaly_contracts.ratelog import RateLimitedLog
from xapp.kpmrows import IndicationAssembler
from xapp.metrics import XappMetrics


class RawKpmIntake:
    """Turns a batch's raw reports into indications; drops (counted, logged) what does not decode or fit."""

    def __init__(
        self, measurements: Sequence[str], period_ms: int, metrics: XappMetrics, errors: RateLimitedLog
    ) -> None:
        self.period_ms = period_ms
        self._rows = IndicationAssembler(measurements)
        self._metrics = metrics
        self._errors = errors

    def merged(self, batch: pb.IndicationBatch) -> pb.IndicationBatch:
        """The batch with its raw reports decoded into indications, the compact ones it holds after them."""
        rows = self._rows
        for raw in batch.raw:
            try:
                report = decode_kpm(raw.indication_header, raw.indication_message, raw.kpm_version or 3)
            except (KpmDecodeError, ValueError) as exc:  # ValueError: a KPM version other than 2 or 3
                self._drop(raw, str(exc))
                continue
            period = report.granularity_ms or self.period_ms
            if not rows.add(raw.node_id, report.collection_start_ms, period, raw.sequence_number, raw.cell_id,
                            report.names, report.values):  # fmt: skip
                self._drop(raw, f"{len(report.values)} records for {len(rows.measurements)} measurements")
        out = rows.take()
        out.indications.MergeFrom(batch.indications)
        return out

    def _drop(self, raw: pb.RawKpmIndication, problem: str) -> None:
        self._metrics.decode_errors.labels("malformed").inc()
        self._errors.warning("malformed_raw", "indication_dropped", reason="malformed", node=raw.node_id,
                             cell=raw.cell_id, problem=problem)  # fmt: skip
