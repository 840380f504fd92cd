"""What the console's pages and JSON routes ask of the rApp, in one object built from the rApp's own parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ranomaly_contracts.redis_client import AsyncRedis
from ranomaly_contracts.sdl import SdlKeys
from rapp.a1.policies import PolicyRegistry
from rapp.console.cellview import cell_plot
from rapp.console.events import Grouping, NetworkEvent, network_events
from rapp.console.incidents import Filters, Incident, IncidentIndex, with_notes
from rapp.console.network import NetworkView
from rapp.console.notes import NoteStore
from rapp.console.plot import incident_plot
from rapp.console.silences import Silences
from rapp.console.truth import TruthLabels
from rapp.forecasts import ForecastService
from rapp.jobs import JobRunner
from rapp.registry import ModelRegistry
from rapp.reports import Reporter
from rapp.settings import RappSettings


class Console:
    """The console's queries and the operators' notes."""

    def __init__(
        self,
        settings: RappSettings,
        redis: AsyncRedis,
        keys: SdlKeys,
        reporter: Reporter,
        registry: ModelRegistry,
        near_rt: Callable[[], dict[str, Any]],
        policies: PolicyRegistry,
        jobs: JobRunner,
        forecasts: ForecastService,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.index = IncidentIndex(settings.history_dir, reporter.facts)
        self.notes = NoteStore(redis, keys.rapp_incident_notes)
        self.network = NetworkView(redis, keys.cells, self.index, registry, near_rt, settings.console_alarm_hours,
                                   settings.console_xapp_url)  # fmt: skip
        self.policies = policies
        self.jobs = jobs
        self.forecasts = forecasts
        self.truth = None if settings.console_truth_labels is None else TruthLabels(settings.console_truth_labels)
        self.grouping = Grouping(settings.console_group_window_s, settings.console_group_measurement_weight)
        self.silences = Silences(policies, settings.console_silence_check_s)

    async def network_view(self) -> dict[str, Any]:
        """The network view with the maintenance silences in place."""
        return {**await self.network.build(), "silences": self.silences.all()}

    async def incidents(self, filters: Filters | None = None) -> list[Incident]:
        """The recorded incidents with the operators' notes, filtered and sorted."""
        chosen = filters or Filters()
        found = with_notes(await self.index.incidents(), await self.notes.all())
        return chosen.order([i for i in found if chosen.keep(i)])

    async def events(self, filters: Filters | None = None) -> list[NetworkEvent]:
        """The network events among the incidents the filters keep."""
        return network_events(await self.incidents(filters), self.grouping)

    async def cell(self, cell_id: str, hours: float) -> dict[str, Any]:
        """The cell page's data over `hours` up to the cell's newest period (`rapp.console.cellview`), with why
        there is no forecast when there is none."""
        state = next((s for s in await self.network.cells() if s.cell_id == cell_id), None)
        end_ms = int(time.time() * 1000) if state is None else state.period_start_ms + 1
        mine = [i for i in await self.incidents() if i.cell_id == cell_id]
        service = self.forecasts
        data = await asyncio.to_thread(cell_plot, self.settings.history_dir, cell_id, end_ms, hours, mine,
                                       service.latest.forecasts, service.settings.limits)  # fmt: skip
        forecasts = service.latest.forecasts
        data["forecast_problem"] = (service.missing(cell_id) if forecasts is not None and cell_id not in forecasts.index
                                    else service.latest.problem or None)  # fmt: skip
        data["status"] = None if state is None else state.status.name.lower()
        node = data["node_id"] or (None if state is None else state.node_id)
        data["silences"] = [s for s in self.silences.all() if (s["scope"], s["target"]) in {("cell", cell_id),
                                                                                           ("node", node)}]  # fmt: skip
        return data

    async def incident(self, incident_id: str) -> Incident | None:
        """One incident with its notes; None when the history holds no event of it."""
        found = next((i for i in await self.index.incidents() if i.incident_id == incident_id), None)
        return None if found is None else replace(found, notes=await self.notes.get(incident_id))

    async def plot(self, incident: Incident) -> dict[str, Any]:
        """The incident's plot data (`rapp.console.plot`)."""
        others = [i for i in await self.index.incidents() if i.cell_id == incident.cell_id]
        settings = self.settings
        return await asyncio.to_thread(incident_plot, settings.history_dir, incident, others,
                                       settings.console_plot_before_h, settings.console_band_days)  # fmt: skip
