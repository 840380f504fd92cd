"""Prometheus metrics of the xApp, in a registry of its own (so several xApps can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Receipt of an indication to its verdicts handed to the data layer: sub-millisecond to a period.
_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# How late the event loop ran its probe (xapp/looplag.py): the target is at most 100 ms under any input.
LOOP_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class XappMetrics:
    """Every metric the xApp exports, as attributes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.indications = Counter("ranomaly_xapp_indications", "E2 indications accepted", registry=r)
        self.cell_reports = Counter("ranomaly_xapp_cell_reports", "Cell-period rows accepted", registry=r)
        self.decode_errors = Counter(
            "ranomaly_xapp_decode_errors",
            "Indications (or an indication's cells) refused, by reason",
            ["reason"],
            registry=r,
        )
        self.late_rows = Counter(
            "ranomaly_xapp_late_rows", "Rows dropped: later than the lateness bound, or repeated", registry=r
        )
        self.gap_rows = Counter("ranomaly_xapp_gap_rows", "Periods a cell did not report, scored as gaps", registry=r)
        self.refused_rows = Counter(
            "ranomaly_xapp_refused_rows", "Cell-period rows received and not scored, by reason", ["reason"], registry=r
        )
        self.masked_values = Counter(
            "ranomaly_xapp_masked_values", "Values outside their measurement's range, scored as no value",
            ["measurement"], registry=r,
        )  # fmt: skip
        self.data_quality_incidents = Counter(
            "ranomaly_xapp_data_quality_incidents", "A measurement of a cell out of range for N periods in a row",
            ["measurement"], registry=r,
        )  # fmt: skip
        self.data_quality_open = Gauge("ranomaly_xapp_data_quality_open", "Data-quality incidents open now", registry=r)
        self.gap_restarts = Counter(
            "ranomaly_xapp_gap_restarts", "Cells whose period count restarted instead of filling a long gap", registry=r
        )
        self.clock_restarts = Counter(
            "ranomaly_xapp_clock_restarts", "Nodes whose clock restarted on a timeline of their own", registry=r
        )
        self.sequence_gaps = Counter(
            "ranomaly_xapp_sequence_gaps", "Indications missing by per-node sequence number", registry=r
        )
        self.scored_rows = Counter("ranomaly_xapp_scored_rows", "Cell-periods scored", ["status"], registry=r)
        self.scoring_calls = Counter("ranomaly_xapp_scoring_calls", "ONNX Runtime calls", registry=r)
        self.latency = Histogram(
            "ranomaly_xapp_verdict_latency_seconds",
            "Indication receipt to its verdicts written (batching wait included)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "ranomaly_xapp_loop_lag_seconds", "How late the event loop ran a periodic probe (work holding the loop)",
            buckets=LOOP_LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.loop_lag_max = Gauge("ranomaly_xapp_loop_lag_max_seconds", "Largest loop lag since start", registry=r)
        self.cells = Gauge("ranomaly_xapp_cells", "Cells tracked", registry=r)
        self.released_cells = Counter("ranomaly_xapp_released_cells", "Cells released after silence", registry=r)
        self.open_incidents = Gauge("ranomaly_xapp_open_incidents", "Incidents open now", registry=r)
        self.incident_events = Counter("ranomaly_xapp_incident_events", "Incident events", ["event"], registry=r)
        self.model_info = Gauge(
            "ranomaly_xapp_model_info", "1 for the model version scoring now", ["version"], registry=r
        )
        self.model_swaps = Counter("ranomaly_xapp_model_swaps", "Model versions swapped in", registry=r)
        self.model_refused = Counter("ranomaly_xapp_model_refused", "Model versions refused", registry=r)
        self.model_untrusted = Counter(
            "ranomaly_xapp_model_untrusted", "Models refused for their signature (xapp.trust), by reason", ["reason"],
            registry=r,
        )  # fmt: skip
        self.e2_connected = Gauge("ranomaly_xapp_e2_connected", "E2 streams open now", registry=r)
        self.e2_reconnects = Counter("ranomaly_xapp_e2_reconnects", "E2 stream (re)connection attempts", registry=r)
        self.datalayer_errors = Gauge("ranomaly_xapp_datalayer_errors", "Failed data-layer operations", registry=r)
        self.datalayer_dropped = Gauge(
            "ranomaly_xapp_datalayer_dropped", "Writes dropped beyond the buffer bound", ["kind"], registry=r
        )
        self.datalayer_buffered = Gauge("ranomaly_xapp_datalayer_buffered", "Writes waiting for the store", registry=r)
        self.stream_memory = Gauge(
            "ranomaly_xapp_stream_memory_bytes", "Memory a data-layer stream takes (Redis: MEMORY USAGE, sampled)",
            ["stream"], registry=r,
        )  # fmt: skip
        self.stream_entry_limit = Gauge(
            "ranomaly_xapp_stream_entry_limit", "Entries a stream is trimmed to: its byte budget over its mean entry",
            ["stream"], registry=r,
        )  # fmt: skip
        self.stream_entry_bytes = Gauge(
            "ranomaly_xapp_stream_entry_bytes", "Measured mean size of a stream entry", ["stream"], registry=r
        )
        self.kpm_trimmed_unread = Gauge(
            "ranomaly_xapp_kpm_trimmed_unread", "KPM stream entries trimmed before the rApp read them", registry=r
        )
        self.policy_rmr_errors = Counter(
            "ranomaly_xapp_a1_rmr_errors", "A1 RMR messages that could not be handled", registry=r
        )
        self.policy_changes = Counter(
            "ranomaly_xapp_a1_changes", "Policy change stream entries the engine's view read", registry=r
        )
        self.policy_change_problems = Counter(
            "ranomaly_xapp_a1_change_problems",
            "Policy changes not applied as read (entry_corrupt, entries_trimmed: every record re-read; "
            "record_corrupt, record_missing: the version held before kept)",
            ["reason"], registry=r,
        )  # fmt: skip

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
