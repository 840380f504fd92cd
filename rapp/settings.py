"""The rApp's settings: environment variables RANOMALY_RAPP_*, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ranomaly_contracts.auth.setup import AuthSettings
from ranomaly_contracts.redis_auth import RedisAuth, check_redis_auth, redis_auth
from ranomaly_contracts.tls import ClientTls, ServerTls, client_tls, server_tls


class RappSettings(BaseSettings):
    """Everything `ranomaly rapp` reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RANOMALY_RAPP_", extra="forbid")

    # HTTP API (operators, docs, health, metrics)
    http_host: str = "0.0.0.0"
    port: int = Field(8090, ge=0, le=65535)

    # --- authentication, authorisation and audit (docs/security.md) ---
    # Bearer JWTs when auth_issuer is set (keys from auth_jwks_url or auth_public_key_file); the API key when no
    # issuer is set (generated on first start into auth_api_key_file, else <work_dir>/api-key) or when
    # auth_api_key_file is named. Mutating requests and refused credentials go to the audit stream.
    auth: Literal["on", "off"] = "on"  # off: every route open, a warning at every start
    auth_issuer: str | None = None  # a token's `iss` must equal this
    auth_audience: str = "ranomaly-rapp"  # a token's `aud` must hold this
    auth_jwks_url: str | None = None  # the issuer's JWKS (keys cached)
    auth_public_key_file: Path | None = None  # or one PEM public key
    auth_leeway_s: float = Field(30.0, ge=0)  # clock skew allowed on exp/nbf/iat
    auth_api_key_file: Path | None = None
    health_port: int | None = Field(None, ge=0, le=65535)  # set: /healthz, /readyz, /metrics there alone (plain HTTP)
    # the rApp's own credential for the Near-RT A1-P endpoint: a client-credentials token when a1_token_url is
    # set, else the xApp's API key from a1_api_key_file (None: no credential sent)
    a1_api_key_file: Path | None = None
    a1_token_url: str | None = None  # the issuer's token endpoint
    a1_client_id: str = "ranomaly-rapp"
    a1_client_secret: SecretStr | None = None
    a1_client_secret_file: Path | None = None  # read when a1_client_secret is not set
    a1_token_scope: str = "ranomaly:policies"
    a1_token_audience: str | None = None  # sent as `audience` where the issuer asks for it (Auth0-style)
    # --- end of authentication (auth_settings() below) ---

    # shared data layer (the xApp's streams, the model registry)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # --- Redis Cluster (ranomaly_contracts.redis_client, docs/scaling.md) ---
    redis_cluster: bool = False  # redis_url names a seed node of a Redis/Valkey Cluster (redis-py's RedisCluster)
    # --- end of Redis Cluster ---
    # --- Redis ACL user (ranomaly_contracts.redis_acl, docs/security.md): the charts' is ranomaly-rapp ---
    redis_username: str | None = None  # None: the default user (or the URL's)
    redis_password_file: Path | None = None  # the user's password, read at start
    # --- end of Redis ACL user (redis_auth() below) ---
    consumer_name: str = "rapp-1"  # this replica's name in the consumer group

    # KPM history and incidents on disk
    history_dir: Path = Path("var/history")
    history_retention_days: float = Field(30.0, gt=0)
    collect_batch: int = Field(200, ge=1)  # stream entries read per call
    collect_block_ms: int = Field(1000, ge=0)  # how long a read waits for new entries

    # training jobs
    work_dir: Path = Path("var/rapp")  # job folders: the dataset exported for training, the candidate artifact
    retrain_every_h: float = Field(0.0, ge=0)  # scheduled retraining; 0: only on demand
    eval_share: float = Field(0.25, gt=0, lt=1)  # the newest share of the history the candidate is judged on
    promote_tolerance: float = Field(0.25, ge=0)  # the candidate may alarm this much more (relative) on quiet data
    enforce_timeout_s: float = Field(2700.0, gt=0)  # the xApp runs a new model beside the old for its warm-up first
    jobs_waiting_max: int = Field(3, ge=0)  # jobs that may wait behind the running one; beyond: 429
    jobs_kept: int = Field(100, ge=1)  # finished jobs kept (listed, and in the data layer); the oldest go first
    job_log_lines: int = Field(200, ge=10)  # a job's log keeps its newest lines (the training child's output too)
    job_stop_grace_s: float = Field(10.0, gt=0)  # a training child's group gets SIGTERM, then SIGKILL after this
    drift_check_every_h: float = Field(0.0, ge=0)  # how often inputs are checked for drift; 0: never
    drift_window_h: float = Field(24.0, gt=0)  # the newest window of history, compared with the one before
    drift_threshold: float = Field(1.0, gt=0)  # a cell drifted when its mean shift reaches this many pooled stds
    drift_cells_share: float = Field(0.2, gt=0, le=1)  # retrain when at least this share of cells drifted

    # signed models (rapp.registry, docs/security.md): every promotion and API rollback is signed with this
    # Ed25519 private key (PEM, PKCS8, unencrypted); None: <work_dir>/model-signing/model-signing.key, a key
    # pair generated on first start (its public key is what the xApps' trusted_model_keys must name)
    model_signing_key_file: Path | None = None

    # the Near-RT side's A1-P endpoint: the xApp's own, an O-RAN SC A1 mediator (/A1-P/v2) or the
    # O-RAN SC A1 simulator (/a1-p)
    ric_id: str = "ric-1"  # the name operators use for the Near-RT RIC this rApp manages
    a1_base_url: str = "http://127.0.0.1:8080"
    a1_api_root: str = "/A1-P/v2"
    a1_timeout_s: float = Field(5.0, gt=0)
    a1_retries: int = Field(3, ge=0)
    a1_sync_interval_s: float = Field(10.0, gt=0)  # how often the Near-RT side is checked for lost instances
    # --- policy management API v2 (rapp/api/pms.py, docs/conformance.md) ---
    managed_element_ids: tuple[str, ...] = ()  # O1 ids the Near-RT RIC serves (PUT /configuration replaces them)
    service_check_interval_s: float = Field(5.0, gt=0)  # how often registered services' keep-alives are checked
    service_expiry_batch: int = Field(100, ge=1)  # policies of expired services deleted per check, at most
    # --- end of policy management API v2 ---

    # TLS (ranomaly_contracts.tls): PEM files, every hop plain unless set. The HTTP API serves HTTPS with a
    # certificate and key, and requires client certificates signed by the client CA when one is set (mutual
    # TLS). A1 uses TLS with an https:// a1_base_url, Redis with a rediss:// redis_url. A client's CA file
    # verifies the server (None: the system's CAs); its certificate and key are presented (mutual TLS).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    a1_tls_ca_file: Path | None = None
    a1_tls_cert_file: Path | None = None
    a1_tls_key_file: Path | None = None
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None

    # NOC notifications: incidents to an Alertmanager-compatible webhook (None: off); state under work_dir
    noc_webhook_url: str | None = None
    noc_timeout_s: float = Field(5.0, gt=0)
    noc_retry_max_s: float = Field(60.0, gt=0)  # the longest pause between two delivery attempts
    noc_receiver: str = "ranomaly"  # the receiver name in the webhook messages

    # reports (rapp/reports/): figures, cause and actions from the fact sheet through a template; a language
    # model writes only the executive summary, kept when a lookup finds no figure, cause or action of its own
    report_summaries: bool = True  # False: the template's summary only, no model loaded
    report_model_path: Path | None = None  # a local transformers model folder; None: SmolLM2-135M-Instruct
    report_model_cache: Path | None = None  # where the default GGUF is converted once; None: <work_dir>/report-model
    report_dtype: str = Field("bfloat16", pattern="^(bfloat16|float32)$")
    report_threads: int = Field(2, ge=1)
    report_max_new_tokens: int = Field(72, ge=8, le=512)
    report_rootcause_path: Path | None = None  # a classifier file (rapp.reports.rootcause); None: unclassified
    report_headline_measurements: tuple[str, ...] = ("DRB.UEThpDl", "RRU.PrbUsedDl", "RRC.ConnMean")

    # forecasts (rapp/forecasts.py): the forecaster of the model version in use forecasts every cell; a
    # measurement forecast beyond its limit within the horizon is a predicted breach, its own event
    train_forecaster: bool = True  # training jobs also train the forecaster when the history holds its window
    forecast_interval_s: float = Field(60.0, gt=0)  # how often every cell is forecast and checked for breaches
    forecast_min_share: float = Field(0.5, gt=0, le=1)  # of the window: the reported periods a cell needs
    breach_clear_after: int = Field(3, ge=1)  # forecasts in a row within the limit that clear a breach
    breach_events_kept: int = Field(1000, ge=1)  # the newest breach events the API shows
    # measurement -> {"above": x} and/or {"below": y} in the measurement's unit (JSON in the environment).
    # Defaults for the simulator's TS 28.552 catalogue; none for UE counts, handovers, volumes and UL
    # throughput, whose normal level depends on the cell too much for one limit.
    breach_limits: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "RRU.PrbUsedDl": {"above": 260.0},  # PRBs: 95 % of a 100 MHz carrier's 273; set per carrier size
            "RRU.PrbUsedUl": {"above": 260.0},
            "DRB.UEThpDl": {"below": 3000.0},  # kbit/s
            "DRB.RlcSduDelayDl": {"above": 1000.0},  # 0.1 ms: 100 ms
            "DRB.PacketLossRateUl": {"above": 5000.0},  # 1E-6: 0.5 %
            "L1M.DL-SS-SINR.SSB": {"below": 2.0},  # dB
        }
    )

    # operator console (rapp/console/, docs/console.md): pages under /console and their JSON under /api/v1
    console_refresh_s: float = Field(5.0, gt=0)  # how often the network view polls for the cells' state
    console_alarm_hours: int = Field(24, ge=1, le=24 * 14)  # hours of the alarm rate shown, back from the newest data
    console_plot_before_h: float = Field(6.0, gt=0)  # hours of each measurement plotted before an incident opened
    console_band_days: float = Field(7.0, gt=0)  # days of the cell's own history its normal band is taken from
    console_xapp_url: str | None = None  # the xApp's HTTP base (its /healthz shown); None: the A1 view alone
    console_session_h: float = Field(8.0, gt=0)  # a sign-in lasts this long (sessions live in the rApp's memory)
    console_secure_cookie: bool = False  # the session cookie Secure without the rApp's own TLS (a TLS ingress)
    # --- console, second increment (maintenance silences, policies page) ---
    console_silence_check_s: float = Field(5.0, gt=0)  # how often expired maintenance silences are deleted
    # related incidents grouped into network events (rapp/console/events.py): one node's incidents opening this
    # close together, and how much disjoint measurements push two apart (in units of that window)
    console_group_window_s: float = Field(600.0, gt=0)
    console_group_measurement_weight: float = Field(1.0, ge=0)
    console_truth_labels: Path | None = None  # a labels.csv of the network (the demo's): shown beside incidents
    # --- end of the console's second increment ---
    # --- console sign-in through an OAuth issuer (rapp/console/oauth.py, docs/console.md): the authorisation-code
    # flow with PKCE when console_oauth_authorize_url is set (it needs auth_issuer: the access token is verified
    # like a bearer token); the callback is <console_external_url or the request's origin>/console/oauth/callback
    console_oauth_authorize_url: str | None = None
    console_oauth_token_url: str | None = None
    console_oauth_client_id: str = "ranomaly-console"
    console_oauth_client_secret_file: Path | None = None  # a confidential client's secret (None: a public client)
    console_oauth_scope: str = "openid ranomaly:read ranomaly:policies ranomaly:admin"
    console_oauth_issuer_name: str = "the identity provider"  # shown as "Sign in with <name>"
    console_external_url: str | None = None  # the console's origin as browsers see it (behind an ingress)
    # --- end of the console's OAuth sign-in ---

    @model_validator(mode="after")
    def _tls_files(self) -> RappSettings:
        self.http_tls(), self.a1_client_tls(), self.redis_client_tls()
        return self

    def http_tls(self) -> ServerTls | None:
        """TLS of the HTTP API; None: plain HTTP."""
        return server_tls("tls", self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    def a1_client_tls(self) -> ClientTls | None:
        """TLS of the A1-P client (an https:// a1_base_url); None: plain."""
        return client_tls("a1_tls", self.a1_base_url.startswith("https://"), "a1_base_url is not https://",
                          self.a1_tls_ca_file, self.a1_tls_cert_file, self.a1_tls_key_file)  # fmt: skip

    def redis_client_tls(self) -> ClientTls | None:
        """TLS of the Redis connections (a rediss:// URL); None: plain."""
        return client_tls("redis_tls", self.redis_url.startswith("rediss://"), "redis_url is not rediss://",
                          self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)  # fmt: skip

    @model_validator(mode="after")
    def _console_oauth(self) -> RappSettings:
        if self.console_oauth_authorize_url is not None and (self.console_oauth_token_url is None or
                                                              self.auth_issuer is None):  # fmt: skip
            raise ValueError("console_oauth_authorize_url needs console_oauth_token_url and auth_issuer")
        return self

    def auth_settings(self) -> AuthSettings:
        """The auth fields for `ranomaly_contracts.auth.setup.build_guard`."""
        return AuthSettings(self.auth, self.auth_issuer, self.auth_audience, self.auth_jwks_url,
                            self.auth_public_key_file, self.auth_leeway_s, self.auth_api_key_file,
                            self.work_dir / "api-key")  # fmt: skip

    @model_validator(mode="after")
    def _redis_auth(self) -> RappSettings:
        check_redis_auth(self.redis_url, self.redis_username, self.redis_password_file)
        return self

    def redis_auth(self) -> RedisAuth | None:
        """The Redis ACL user and its password; None: no credentials in settings."""
        return redis_auth(self.redis_username, self.redis_password_file)
