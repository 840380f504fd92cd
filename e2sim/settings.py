"""The simulator's settings: environment variables RANOMALY_SIM_*, overridden by CLI flags."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from e2sim.realism import Realism
from e2sim.server import StreamOptions
from e2sim.world import DEFAULT_START, WorldConfig
from ranomaly_contracts.tls import ServerTls, server_tls


class SimSettings(BaseSettings):
    """Everything `ranomaly sim ...` reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RANOMALY_SIM_", extra="forbid")

    seed: int = 7
    cells: int = Field(60, ge=1, le=100_000)
    utc_offset_h: float = Field(0.0, ge=-14, le=14)
    events_per_cell_day: float = Field(0.62, ge=0.0)
    start: datetime = DEFAULT_START  # first period of accelerated streams and of exports
    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)
    pace: Literal["realtime", "accelerated"] = "realtime"
    periods: int = Field(0, ge=0)  # periods per subscription; 0: endless
    max_indications_per_message: int = Field(64, ge=1, le=4096)
    realism: bool = True  # routine missing values, coarse resolution, late cells (e2sim.realism); false: clean

    # TLS (ranomaly_contracts.tls): the gRPC server (E2, ground truth) uses TLS with a PEM certificate and
    # key, and requires client certificates signed by the client CA when one is set (mutual TLS); plain unset
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _tls_files(self) -> SimSettings:
        self.tls()
        return self

    def tls(self) -> ServerTls | None:
        """TLS of the gRPC server; None: plain."""
        return server_tls("tls", self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    def world(self) -> WorldConfig:
        """The simulated network these settings describe."""
        return WorldConfig(
            seed=self.seed,
            n_cells=self.cells,
            utc_offset_h=self.utc_offset_h,
            events_per_cell_day=self.events_per_cell_day,
            start=self.start,
            realism=Realism() if self.realism else Realism.off(),
        )

    def stream(self) -> StreamOptions:
        """How subscriptions are served."""
        return StreamOptions(
            realtime=self.pace == "realtime",
            periods=self.periods,
            max_indications_per_message=self.max_indications_per_message,
        )
