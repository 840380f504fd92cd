"""Forecasts and predicted-breach warnings from the forecaster of the model version in use.

Training jobs train the LSTM forecaster with the detector and keep the promoted version's copy under the
rApp's work dir, `models/<version>/forecaster.onnx` beside that version's `manifest.json` (`keep_forecaster`).
Every `interval_s` the service asks which version is in use (the `ranomaly-model` A1 policy, else the newest
promoted), loads its forecaster (ONNX Runtime only, no torch; its sha256 checked against the manifest),
reads the newest window of the collected KPM history (`rapp.history`) and forecasts every measurement of
every cell that reported in at least `min_share` of the window, for the next H periods. Time is the
history's own: the window ends at the newest stored period, so replayed or simulated history works too.

A predicted breach is a measurement forecast beyond its operator limit (`above`: greater than it, `below`:
less than it) at some period within H. Its first such period opens a `BreachEvent` ("open"); it stays one
breach, however many forecasts repeat it, until `clear_after` forecasts in a row keep that measurement of
that cell within the limit, which closes it ("close"); a later breach is a new one. Events are kept in
memory (the newest `keep_events`) and handed to `on_breaches` (the NOC notifier) as they happen. Active
breaches live in memory only: after a restart a breach still forecast opens again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import structlog

from models.forecaster.runtime import OnnxForecaster
from ranomaly_contracts.dataset import to_arrays
from rapp.history import DAY_MS, KPM, history_dataset
from rapp.settings import RappSettings

log = structlog.get_logger(__name__)

FORECASTERS_DIR = "models"  # under the rApp's work dir: <version>/forecaster.onnx and <version>/manifest.json
FORECASTER_FILE = "forecaster.onnx"
MANIFEST_FILE = "manifest.json"
DIRECTIONS = ("above", "below")
_BATCH_CELLS = 2048  # cells per ONNX Runtime call

Direction = Literal["above", "below"]


def iso(ms: int) -> str:
    """A millisecond timestamp as ISO 8601 UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Limit:
    """An operator limit: a measurement must stay above or below a threshold, in its own unit."""

    measurement: str
    direction: Direction  # "above": a value greater than threshold breaches; "below": a value less than it
    threshold: float


def parse_limits(raw: Mapping[str, Mapping[str, float]]) -> tuple[Limit, ...]:
    """Limits from settings (measurement -> {"above": x} and/or {"below": y}); ValueError naming a bad one."""
    limits = []
    for measurement, bounds in raw.items():
        if not bounds:
            raise ValueError(f"breach_limits[{measurement!r}]: give 'above', 'below' or both")
        for direction, threshold in bounds.items():
            if direction not in DIRECTIONS:
                raise ValueError(f"breach_limits[{measurement!r}]: {direction!r} is neither 'above' nor 'below'")
            if not math.isfinite(threshold):
                raise ValueError(f"breach_limits[{measurement!r}][{direction!r}]: {threshold} is not a finite number")
            limits.append(Limit(measurement, "above" if direction == "above" else "below", float(threshold)))
    return tuple(limits)


@dataclass(frozen=True)
class ForecastSettings:
    """What the forecast service needs from the rApp's settings."""

    work_dir: Path
    history_dir: Path
    interval_s: float = 60.0
    min_share: float = 0.5  # of the forecaster's window: the reported periods a cell needs to be forecast
    limits: tuple[Limit, ...] = ()
    clear_after: int = 3  # forecasts in a row within the limit that close a breach
    keep_events: int = 1000

    @classmethod
    def from_settings(cls, settings: RappSettings) -> ForecastSettings:
        """The forecast settings of the rApp's settings; ValueError naming a bad breach limit."""
        return cls(settings.work_dir, settings.history_dir, settings.forecast_interval_s,
                   settings.forecast_min_share, parse_limits(settings.breach_limits), settings.breach_clear_after,
                   settings.breach_events_kept)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Forecasts:
    """One round's forecasts: every cell with enough history, every measurement, the next H periods."""

    model_version: str
    measurements: tuple[str, ...]
    period_ms: int
    made_at_ms: int  # the newest history period read; the forecast periods follow it
    cell_ids: tuple[str, ...]
    node_ids: tuple[str, ...]
    values: np.ndarray  # float32 [N, H, K], raw units

    @property
    def horizon(self) -> int:
        """Periods forecast, H."""
        return int(self.values.shape[1])

    @property
    def times_ms(self) -> np.ndarray:
        """Collection start of each forecast period, int64 [H]."""
        return self.made_at_ms + self.period_ms * np.arange(1, self.horizon + 1, dtype=np.int64)

    @cached_property
    def index(self) -> dict[str, int]:
        """Row of each cell."""
        return {cell: i for i, cell in enumerate(self.cell_ids)}

    def summary(self) -> dict[str, Any]:
        """The round as JSON, without the values."""
        return {"model_version": self.model_version, "period_s": self.period_ms / 1000, "horizon": self.horizon,
                "made_at": iso(self.made_at_ms), "times": [iso(int(t)) for t in self.times_ms],
                "cells": sorted(self.cell_ids)}  # fmt: skip

    def cell(self, cell_id: str) -> dict[str, Any] | None:
        """One cell's forecast as JSON, or None when the round has none for it."""
        row = self.index.get(cell_id)
        if row is None:
            return None
        values = self.values[row].astype(float)
        return {"cell_id": cell_id, "node_id": self.node_ids[row], "model_version": self.model_version,
                "period_s": self.period_ms / 1000, "horizon": self.horizon, "made_at": iso(self.made_at_ms),
                "times": [iso(int(t)) for t in self.times_ms],
                "forecast": {m: values[:, k].tolist() for k, m in enumerate(self.measurements)}}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BreachEvent:
    """A predicted breach opened (a measurement forecast beyond its limit within H) or closed (no longer so).

    A close repeats its open's fields but made_at_ms, the forecast that cleared it."""

    event: Literal["open", "close"]
    breach_id: str  # cell|measurement|direction|opened_ms: the same for a breach's open and close
    cell_id: str
    node_id: str
    measurement: str
    direction: Direction
    threshold: float
    breach_ms: int  # the first forecast period beyond the limit
    predicted: float  # the forecast value at breach_ms
    opened_ms: int  # made_at_ms of the forecast that opened the breach
    made_at_ms: int  # the newest history period the forecast read (data time, UTC ms)
    model_version: str

    def public(self) -> dict[str, Any]:
        """The event as JSON."""
        return {"event": self.event, "breach_id": self.breach_id, "cell_id": self.cell_id, "node_id": self.node_id,
                "measurement": self.measurement, "direction": self.direction, "threshold": self.threshold,
                "breach_at": iso(self.breach_ms), "predicted": self.predicted, "opened_at": iso(self.opened_ms),
                "made_at": iso(self.made_at_ms), "model_version": self.model_version}  # fmt: skip


def find_breaches(forecasts: Forecasts, limits: Sequence[Limit]) -> dict[tuple[str, str, str], BreachEvent]:
    """The predicted breaches of a round, as "open" events keyed by (cell, measurement, direction).

    Limits on measurements the forecaster does not forecast are ignored."""
    found: dict[tuple[str, str, str], BreachEvent] = {}
    times = forecasts.times_ms
    for limit in limits:
        if limit.measurement not in forecasts.measurements:
            continue
        series = forecasts.values[:, :, forecasts.measurements.index(limit.measurement)]  # [N, H]
        beyond = series > limit.threshold if limit.direction == "above" else series < limit.threshold
        for row in np.flatnonzero(beyond.any(axis=1)):
            first = int(np.argmax(beyond[row]))
            cell = forecasts.cell_ids[row]
            found[(cell, limit.measurement, limit.direction)] = BreachEvent(
                event="open",
                breach_id=f"{cell}|{limit.measurement}|{limit.direction}|{forecasts.made_at_ms}",
                cell_id=cell,
                node_id=forecasts.node_ids[row],
                measurement=limit.measurement,
                direction=limit.direction,
                threshold=limit.threshold,
                breach_ms=int(times[first]),
                predicted=float(series[row, first]),
                opened_ms=forecasts.made_at_ms,
                made_at_ms=forecasts.made_at_ms,
                model_version=forecasts.model_version,
            )
    return found


@dataclass
class _Active:
    opened: BreachEvent
    clean: int = 0  # forecasts in a row within the limit since the last breaching one


@dataclass
class BreachTracker:
    """Open breaches: one event per breach onset until it clears (see the module's docstring)."""

    clear_after: int = 3
    active: dict[tuple[str, str, str], _Active] = field(default_factory=dict)

    def update(self, forecasts: Forecasts, found: Mapping[tuple[str, str, str], BreachEvent]) -> list[BreachEvent]:
        """The events of a round: opens of new breaches, closes of cleared ones (cells of the round only)."""
        events = [event for key, event in found.items() if key not in self.active]
        for key, event in found.items():
            self.active.setdefault(key, _Active(event)).clean = 0
        for key, state in list(self.active.items()):
            if key in found or key[0] not in forecasts.index:
                continue  # breaching still, or no forecast of the cell this round: no evidence it cleared
            state.clean += 1
            if state.clean >= self.clear_after:
                del self.active[key]
                events.append(replace(state.opened, event="close", made_at_ms=forecasts.made_at_ms))
        return events


def forecaster_folder(work_dir: Path, version: str) -> Path:
    """Where the forecaster of a model version is kept."""
    return work_dir / FORECASTERS_DIR / version


def keep_forecaster(artifact_folder: Path, work_dir: Path) -> Path | None:
    """Keep a trained artifact's forecaster (forecaster.onnx and manifest.json) under its version in the work
    dir; the folder, or None when the artifact has no forecaster. The folder appears whole or not at all."""
    manifest = json.loads((artifact_folder / MANIFEST_FILE).read_text())
    if "forecaster" not in manifest:
        return None
    target = forecaster_folder(work_dir, manifest["version"])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in (manifest["forecaster"]["file"], MANIFEST_FILE):
            shutil.copyfile(artifact_folder / name, staging / name)
        if target.exists():
            shutil.rmtree(target)  # the same version trained again: the newest copy wins
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


class ForecasterUnavailable(Exception):
    """No forecaster can be used; the message says why."""


@dataclass(frozen=True)
class LoadedForecaster:
    """The forecaster of one model version."""

    version: str
    runner: OnnxForecaster


def load_forecaster(work_dir: Path, version: str) -> LoadedForecaster:
    """The kept forecaster of a version, its sha256 checked; ForecasterUnavailable naming what is wrong."""
    folder = forecaster_folder(work_dir, version)
    try:
        entry = json.loads((folder / MANIFEST_FILE).read_text())["forecaster"]
        path, expected = folder / str(entry["file"]), str(entry["sha256"])
    except FileNotFoundError:
        raise ForecasterUnavailable(
            f"model version {version} has no forecaster: it was trained without one (history shorter than the "
            f"forecaster's window and horizon, or train_forecaster off) or not by this rApp"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ForecasterUnavailable(f"{folder / MANIFEST_FILE}: no readable forecaster entry ({exc!r})") from None
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ForecasterUnavailable(f"model version {version}: forecaster unreadable: {exc}") from None
    if digest != expected:
        raise ForecasterUnavailable(f"{path}: sha256 {digest} differs from the manifest's {expected}")
    return LoadedForecaster(version, OnnxForecaster(path, threads=1))  # one thread: it shares the rApp's cores


def _newest_day_ms(history_dir: Path) -> int | None:
    """Start (UTC ms) of the newest day partition of the KPM history, None when there is none."""
    days = []
    for folder in (history_dir / KPM).glob("date=*"):
        try:
            days.append(date.fromisoformat(folder.name.removeprefix("date=")))
        except ValueError:
            continue
    return None if not days else (max(days) - date(1970, 1, 1)).days * DAY_MS


@dataclass(frozen=True)
class Round:
    """What one forecast round made: forecasts, or why there are none; cells short of history."""

    forecasts: Forecasts | None
    problem: str = ""  # why there are no forecasts, when there are none
    short: dict[str, int] = field(default_factory=dict)  # cell -> periods it reported in the window, too few


def forecast_history(loaded: LoadedForecaster, history_dir: Path, min_share: float) -> Round:
    """Forecast every cell with enough history in the window that ends at the newest stored period."""
    runner = loaded.runner
    window, period_ms = runner.window, runner.period_ms
    newest_day = _newest_day_ms(history_dir)
    if newest_day is None:
        return Round(None, "no KPM history collected yet")
    start = pd.Timestamp(newest_day - window * period_ms, unit="ms", tz="UTC")
    try:
        dataset = history_dataset(history_dir, start=start)
    except ValueError as exc:
        return Round(None, f"history: {exc}")
    if round(dataset.period_s * 1000) != period_ms:
        return Round(None, f"the history's period is {dataset.period_s * 1000:g} ms, the forecaster's "
                           f"(model version {loaded.version}) {period_ms} ms")  # fmt: skip
    stamps = dataset.kpm["timestamp"]
    recent = dataset.kpm[stamps > stamps.max() - pd.Timedelta(milliseconds=window * period_ms)]
    arrays = to_arrays(replace(dataset, kpm=recent))
    reported = arrays.reported.sum(axis=0)
    enough = reported >= math.ceil(min_share * window)
    short = {cell: int(n) for cell, n, ok in zip(arrays.cell_ids, reported, enough, strict=True) if not ok}
    cells = np.flatnonzero(enough)
    history = np.full((len(cells), len(arrays.times_ms), len(runner.measurements)), np.nan, dtype=np.float32)
    for k, name in enumerate(runner.measurements):
        if name in arrays.measurements:
            history[:, :, k] = arrays.values[:, cells, arrays.measurements.index(name)].T
    times = np.broadcast_to(arrays.times_ms, history.shape[:2])
    parts = [runner.predict(history[i : i + _BATCH_CELLS], times[i : i + _BATCH_CELLS])
             for i in range(0, len(cells), _BATCH_CELLS)]  # fmt: skip
    values = np.concatenate(parts) if parts else np.empty((0, runner.horizon, len(runner.measurements)), np.float32)
    forecasts = Forecasts(
        model_version=loaded.version,
        measurements=runner.measurements,
        period_ms=period_ms,
        made_at_ms=int(arrays.times_ms[-1]),
        cell_ids=tuple(arrays.cell_ids[i] for i in cells),
        node_ids=tuple(arrays.node_ids[i] for i in cells),
        values=values,
    )
    return Round(forecasts, short=short)


@dataclass
class ForecastStats:
    """What the service did since it started."""

    rounds: int = 0
    breaches_opened: int = 0
    breaches_closed: int = 0
    last_error: str | None = None


class ForecastService:
    """Forecasts every cell each round and raises predicted-breach events; see the module's docstring.

    `current_version` names the model version in use (None: none yet); `on_breaches` receives new events."""

    def __init__(
        self,
        settings: ForecastSettings,
        current_version: Callable[[], Awaitable[str | None]],
        on_breaches: Callable[[Sequence[BreachEvent]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ForecastStats()
        self.loaded: LoadedForecaster | None = None
        self.latest: Round = Round(None, "no forecast made yet")
        self.tracker = BreachTracker(settings.clear_after)
        self.events: deque[BreachEvent] = deque(maxlen=settings.keep_events)
        self._current_version = current_version
        self._on_breaches = on_breaches

    async def refresh(self) -> list[BreachEvent]:
        """One round: load the forecaster of the version in use if it changed, forecast, track breaches;
        the round's new events."""
        version = await self._current_version()
        if version is None:
            self.loaded = None
            self.latest = Round(None, "no model version in use: no ranomaly-model policy and none promoted")
            return []
        if self.loaded is None or self.loaded.version != version:
            try:
                self.loaded = await asyncio.to_thread(load_forecaster, self.settings.work_dir, version)
            except ForecasterUnavailable as exc:
                self.loaded = None
                self.latest = Round(None, str(exc))
                return []
            log.info("forecaster_loaded", version=version, window=self.loaded.runner.window,
                     horizon=self.loaded.runner.horizon)  # fmt: skip
        self.latest = await asyncio.to_thread(
            forecast_history, self.loaded, self.settings.history_dir, self.settings.min_share
        )
        self.stats.rounds += 1
        forecasts = self.latest.forecasts
        if forecasts is None:
            return []
        events = self.tracker.update(forecasts, find_breaches(forecasts, self.settings.limits))
        for event in events:
            log.info("breach_predicted" if event.event == "open" else "breach_cleared", cell=event.cell_id,
                     measurement=event.measurement, direction=event.direction, threshold=event.threshold,
                     breach_at=iso(event.breach_ms), predicted=event.predicted,
                     version=event.model_version)  # fmt: skip
        self.stats.breaches_opened += sum(event.event == "open" for event in events)
        self.stats.breaches_closed += sum(event.event == "close" for event in events)
        self.events.extend(events)
        if events and self._on_breaches is not None:
            self._on_breaches(events)
        return events

    async def run(self, stop: asyncio.Event) -> None:
        """A round now and every interval_s until stop is set."""
        while not stop.is_set():
            try:
                await self.refresh()
                self.stats.last_error = None
            except Exception as exc:  # a failed round (A1, Redis, a file) must not end the loop: logged, retried
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("forecast_round_failed")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.interval_s)

    def missing(self, cell_id: str) -> str:
        """Why the latest round, which has forecasts, has none of this cell."""
        window = 0 if self.loaded is None else self.loaded.runner.window
        reported = self.latest.short.get(cell_id)
        if reported is not None:
            needed = math.ceil(self.settings.min_share * window)
            return f"cell {cell_id!r} has no forecast: it reported in {reported} of the last {window} periods, " \
                   f"{needed} needed"  # fmt: skip
        made_at = "" if self.latest.forecasts is None else f" up to {iso(self.latest.forecasts.made_at_ms)}"
        return f"cell {cell_id!r} has no forecast: no KPM history of it in the last {window} periods{made_at}"

    def active(self) -> list[BreachEvent]:
        """The open events of the breaches still forecast, oldest first."""
        return sorted((state.opened for state in self.tracker.active.values()), key=lambda e: e.opened_ms)

    def health(self) -> dict[str, Any]:
        """Counts for the rApp's health."""
        forecasts = self.latest.forecasts
        return {"model_version": None if self.loaded is None else self.loaded.version,
                "cells": 0 if forecasts is None else len(forecasts.cell_ids),
                "made_at": None if forecasts is None else iso(forecasts.made_at_ms),
                "problem": self.latest.problem or None, "active_breaches": len(self.tracker.active),
                **vars(self.stats)}  # fmt: skip
