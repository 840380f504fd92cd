"""The xApp's settings: environment variables RANOMALY_XAPP_*, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ranomaly_contracts.auth.setup import AuthSettings
from ranomaly_contracts.redis_auth import RedisAuth, check_redis_auth, redis_auth
from ranomaly_contracts.tls import ClientTls, ServerTls, client_tls, server_tls
from xapp.datalayer.bounds import DEFAULT_INCIDENT_STREAM_BYTES, DEFAULT_KPM_STREAM_BYTES, DEFAULT_VERDICT_STREAM_BYTES
from xapp.ric.cells import parse_ric_cells


def _split(value: object) -> object:
    """Comma-separated environment values become lists; lists stay lists."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]

# What the xApp asks of each E2 endpoint for one gRPC stream message: up to this many indications, and no more
# cells than one scoring batch holds (XappSettings.message_cells). A period's burst costs the loop thread per
# message (a read, a scoring call, a drain), so fewer, larger messages cost less; bounding them by cells keeps
# each one a single scoring call and under the intake's cap (max_cells_per_message) whatever the nodes' sizes
# (docs/scaling.md).
DEFAULT_INDICATIONS_PER_MESSAGE = 4096
DEFAULT_BATCH_MAX_CELLS = 4096


class XappSettings(BaseSettings):
    """Everything `ranomaly xapp` reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RANOMALY_XAPP_", extra="forbid")

    # E2: where the nodes are and what to subscribe to
    transport: Literal["grpc", "rmr"] = "grpc"  # grpc: our E2 contract (proto/); rmr: inside an O-RAN SC RIC
    e2_targets: CsvList = Field(default_factory=lambda: ["127.0.0.1:50051"])  # host:port of E2 gRPC endpoints
    subscriber_id: str = "ranomaly-xapp"
    nodes: CsvList = Field(default_factory=list)  # empty: every node
    cells: CsvList = Field(default_factory=list)  # empty: every cell of the selected nodes
    measurements: CsvList = Field(default_factory=list)  # empty: the model's measurements
    period_ms: int = Field(60_000, ge=10, le=3_600_000)  # must equal the model's period
    max_indications_per_message: int = Field(DEFAULT_INDICATIONS_PER_MESSAGE, ge=0, le=4096)
    raw_e2sm_kpm: bool = False  # ask for E2SM-KPM bytes (RawKpmIndication), as E2 terminations that forward them
    reconnect_min_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)

    # the O-RAN SC RIC (transport rmr): RMR, the subscription manager, E2SM-KPM
    rmr_port: int = Field(4560, ge=1, le=65535)  # RMR data port (the route port is the library's, 4561)
    rmr_library: str = "librmr_si.so"  # loaded only when the rmr transport starts; the image provides it
    rmr_max_size: int = Field(65_536, ge=1024)
    submgr_url: str = "http://service-ricplt-submgr-http.ricplt:8088/ric/v1"
    advertise_host: str = "service-ricxapp-ranomaly-xapp-http.ricxapp"  # where the manager posts notifications
    ric_cells: CsvList = Field(default_factory=list)  # CELL=MEID/PLMN/NCI: one KPM subscription per cell
    ran_function_id: int = Field(2, ge=0, le=4095)  # the E2 nodes' E2SM-KPM RAN function
    kpm_version: int = Field(3, ge=2, le=3)  # 2: 4-byte timestamps; 3: 8-byte (NTP) timestamps
    resubscribe_check_s: float = Field(30.0, gt=0)  # how often the manager is asked whether it lost ours

    # hot path
    batch_window_ms: float = Field(2.0, ge=0)  # the longest a cell-report waits for others to share a call
    batch_max_cells: int = Field(DEFAULT_BATCH_MAX_CELLS, ge=1)
    # --- burst without a queue (xapp/engine.py, docs/scaling.md) ---
    # True: ONNX Runtime on a thread of its own while the next batch fills; off by default: end to end under load
    # the detector fell behind with it (docs/scaling.md, Burst and memory)
    overlap_scoring: bool = False
    # --- end of burst without a queue ---
    max_lateness_periods: int = Field(2, ge=0)  # later than this behind the newest period: dropped, counted
    release_after_periods: int = Field(60, ge=1)  # a cell silent (not even in an indication) this long is released
    intra_op_threads: int = Field(1, ge=1)

    # what one E2 node or message may make the xApp do: beyond these, rows are refused and counted
    max_cells: int = Field(100_000, ge=1)  # cells tracked in all
    max_cells_per_node: int = Field(1024, ge=1)
    max_cells_per_message: int = Field(16_384, ge=1)  # rows of one stream message; also its budget of gap rows
    max_gap_periods: int = Field(10, ge=0)  # a cell missing more periods at once restarts its count, no gap rows
    max_clock_jump_periods: int = Field(10, ge=1)  # how far a node not paced in real time may move its clock at once
    clock_slack_s: float = Field(10.0, ge=0)  # how far a real-time node may run ahead of the receiving clock
    clock_restart_after: int = Field(3, ge=1)  # starts in a row beyond the bound, on one timeline: the node restarted
    quality_incident_periods: int = Field(10, ge=1)  # a measurement out of range this long: a data-quality incident
    stall_periods: int = Field(5, ge=1)  # indications arrive and nothing is scored this long: not ready

    # A1-P, health and metrics (one HTTP server)
    http_host: str = "0.0.0.0"
    a1_port: int = Field(8080, ge=0, le=65535)
    handler_id: str = "ranomaly-xapp"

    # --- authentication, authorisation and audit of A1-P (docs/security.md) ---
    # Bearer JWTs when auth_issuer is set (keys from auth_jwks_url or auth_public_key_file); the API key when no
    # issuer is set (generated on first start into auth_api_key_file, else <state_dir>/api-key) or when
    # auth_api_key_file is named. A1 writes and refused credentials go to the audit trail (the data layer).
    # A1 over RMR (inside the RIC) is not HTTP: it is not covered.
    state_dir: Path = Path("var/xapp")  # the xApp's own files (the generated API key)
    auth: Literal["on", "off"] = "on"  # off: A1-P open, a warning at every start
    auth_issuer: str | None = None  # a token's `iss` must equal this
    auth_audience: str = "ranomaly-xapp"  # a token's `aud` must hold this
    auth_jwks_url: str | None = None  # the issuer's JWKS (keys cached)
    auth_public_key_file: Path | None = None  # or one PEM public key
    auth_leeway_s: float = Field(30.0, ge=0)  # clock skew allowed on exp/nbf/iat
    auth_api_key_file: Path | None = None
    health_port: int | None = Field(None, ge=0, le=65535)  # set: /healthz, /readyz, /metrics there alone (plain HTTP)
    # --- end of authentication (auth_settings() below) ---

    # shared data layer
    datalayer: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # --- Redis Cluster (ranomaly_contracts.redis_client, docs/scaling.md) ---
    redis_cluster: bool = False  # redis_url names a seed node of a Redis/Valkey Cluster (redis-py's RedisCluster)
    # --- end of Redis Cluster ---
    # --- Redis ACL user (ranomaly_contracts.redis_acl, docs/security.md): the charts' is ranomaly-xapp ---
    redis_username: str | None = None  # None: the default user (or the URL's)
    redis_password_file: Path | None = None  # the user's password, read at start
    # --- end of Redis ACL user (redis_auth() below) ---
    verdict_buffer: int = Field(4096, ge=1)
    incident_buffer: int = Field(100_000, ge=1)
    kpm_buffer: int = Field(4096, ge=1)
    # bytes of memory per stream; each stream's entry limit is this over its measured mean entry size
    verdict_stream_bytes: int = Field(DEFAULT_VERDICT_STREAM_BYTES, ge=1)
    incident_stream_bytes: int = Field(DEFAULT_INCIDENT_STREAM_BYTES, ge=1)
    kpm_stream_bytes: int = Field(DEFAULT_KPM_STREAM_BYTES, ge=1)
    stream_sample_s: float = Field(10.0, gt=0)  # how often Redis is asked what each stream takes (with a write)
    datalayer_degraded_s: float = Field(30.0, gt=0)  # the data layer degraded this long without a break: not ready
    forward_kpm: bool = True

    # models
    seed_model_dir: Path | None = None  # published to the registry at start when the registry lacks its version
    model_shadow_periods: int | None = Field(None, ge=0)  # a new model runs beside the old this long; None: its warm-up
    model_poll_s: float = Field(5.0, gt=0)  # how often the registry is checked for a newer promoted version

    # signed models (xapp.trust, docs/security.md): a model loads only when its signature record verifies
    # against a trusted Ed25519 public key (PEM files, or folders of *.pub; several for a rotation), its bytes
    # are the signed ones, and its promotion counter is newer than the one this subscriber_id accepted
    trusted_model_keys: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    allow_unsigned_models: bool = False  # unsigned models load too (a warning at every start); signed are checked

    # --- sharded replicas (xapp/shard, docs/scaling.md): the E2 nodes split by rendezvous hashing over ordinals ---
    replica_index: int = Field(0, ge=0)  # this replica's ordinal; a StatefulSet pod name (name-N) gives N
    replica_count: int = Field(1, ge=1)  # replicas sharing the nodes (raised by a live replica with a higher one)
    checkpoint_interval_s: float = Field(30.0, gt=0)  # each node's cells' model state written at most this far apart
    heartbeat_s: float = Field(1.0, gt=0)  # how often this replica reports what it enforces, and reads the others'
    replica_dead_s: float = Field(10.0, gt=0)  # a heartbeat older than this: that replica does not hold ENFORCED back
    # --- end of sharded replicas ---

    log_error_interval_s: float = Field(5.0, gt=0)  # at most one log line per kind of bad input in this interval

    # TLS (ranomaly_contracts.tls): PEM files, every hop plain unless set. The HTTP server (A1-P, health,
    # metrics) serves HTTPS with a certificate and key, and requires client certificates signed by the client
    # CA when one is set (mutual TLS). E2 gRPC uses TLS with e2_tls; Redis with a rediss:// redis_url. A
    # client's CA file verifies the server (None: the system's CAs); its certificate and key are presented.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    e2_tls: bool = False
    e2_tls_ca_file: Path | None = None
    e2_tls_cert_file: Path | None = None
    e2_tls_key_file: Path | None = None
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None

    @field_validator("ric_cells")
    @classmethod
    def _ric_cells_parse(cls, value: list[str]) -> list[str]:
        parse_ric_cells(value)
        return value

    _csv = field_validator(
        "e2_targets", "nodes", "cells", "measurements", "ric_cells", "trusted_model_keys", mode="before"
    )(_split)

    @field_validator("replica_index", mode="before")
    @classmethod
    def _pod_ordinal(cls, value: object) -> object:
        """A StatefulSet pod name (`ranomaly-xapp-2`) gives its ordinal."""
        if isinstance(value, str) and not value.isdigit() and "-" in value:
            return value.rsplit("-", 1)[1]
        return value

    @property
    def message_cells(self) -> int:
        """Cells asked for in one stream message at most: one scoring batch, within the intake's cap."""
        return min(self.batch_max_cells, self.max_cells_per_message)

    @model_validator(mode="after")
    def _tls_files(self) -> XappSettings:
        self.http_tls(), self.e2_client_tls(), self.redis_client_tls()
        return self

    def http_tls(self) -> ServerTls | None:
        """TLS of the HTTP server; None: plain HTTP."""
        return server_tls("tls", self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    def e2_client_tls(self) -> ClientTls | None:
        """TLS of the E2 gRPC channels; None: plain."""
        return client_tls("e2_tls", self.e2_tls, "e2_tls is false",
                          self.e2_tls_ca_file, self.e2_tls_cert_file, self.e2_tls_key_file)  # fmt: skip

    def redis_client_tls(self) -> ClientTls | None:
        """TLS of the Redis connections (a rediss:// URL); None: plain."""
        return client_tls("redis_tls", self.redis_url.startswith("rediss://"), "redis_url is not rediss://",
                          self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)  # fmt: skip

    def auth_settings(self) -> AuthSettings:
        """The auth fields for `ranomaly_contracts.auth.setup.build_guard`."""
        return AuthSettings(self.auth, self.auth_issuer, self.auth_audience, self.auth_jwks_url,
                            self.auth_public_key_file, self.auth_leeway_s, self.auth_api_key_file,
                            self.state_dir / "api-key")  # fmt: skip

    @model_validator(mode="after")
    def _redis_auth(self) -> XappSettings:
        check_redis_auth(self.redis_url, self.redis_username, self.redis_password_file)
        return self

    def redis_auth(self) -> RedisAuth | None:
        """The Redis ACL user and its password; None: no credentials in settings."""
        return redis_auth(self.redis_username, self.redis_password_file)
