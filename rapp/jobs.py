"""Training jobs: train a candidate on the collected history, judge it against the model scoring now,
promote and publish it only if it is not worse, name it in the `ranomaly-model` A1 policy, and wait (with a
timeout) until the Near-RT side reports it enforced. Rollback names an earlier promoted version the same way.

Jobs run one at a time, off the request path. Training runs in a subprocess (`ranomaly train`), so torch
never enters this process; it trains the forecaster too when `train_forecaster` is on and the training
history holds one forecaster window and horizon, and a promoted version's forecaster is kept for
`rapp.forecasts` under `work_dir/models/<version>/`; judging runs the exported artifacts through ONNX
Runtime in a worker thread.
"Not worse" means: on the newest `eval_share` of the history, on the cell-periods outside any incident
the xApp recorded (quiet data), the candidate alarms at most `promote_tolerance` more than the current
model (relative, with an absolute allowance of 0.1 % of cell-periods).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from models.artifact import Artifact, load_session, read_artifact
from models.forecaster.config import ForecasterConfig
from models.scoring import score_arrays
from ranomaly_contracts.dataset import Dataset, KpmArrays, to_arrays, write_dataset
from rapp.a1.client import A1Client, A1Error
from rapp.forecasts import keep_forecaster
from rapp.registry import ModelRegistry

log = structlog.get_logger(__name__)

POLICY_TYPE_ID = 20100
MODEL_INSTANCE_ID = "ranomaly-model"
ABSOLUTE_ALLOWANCE = 0.001


class HistorySource(Protocol):
    """What training reads: the collected KPM history and the incidents the xApp raised."""

    def dataset(self) -> Dataset:
        """Every collected KPM row (within retention) as a dataset."""

    def incident_windows(self) -> Sequence[tuple[str, int, int]]:
        """(cell id, first period ms, last period ms) of every recorded incident."""


@dataclass
class Job:
    """One job's state, as the API shows it."""

    id: str
    kind: str  # "train" | "rollback"
    reason: str
    state: str = "queued"  # queued, running, succeeded, rejected, failed
    created: float = field(default_factory=time.time)
    finished: float | None = None
    log: list[str] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)

    def step(self, message: str, **fields: Any) -> None:
        """Record progress (shown by the API) and log it."""
        self.log.append(f"{time.strftime('%H:%M:%S')} {message}")
        log.info("job_step", job=self.id, kind=self.kind, step=message, **fields)

    def public(self) -> dict[str, Any]:
        """The job as JSON."""
        names = ("id", "kind", "reason", "state", "created", "finished", "log", "outcome")
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class JobSettings:
    """What jobs need from the rApp's settings."""

    work_dir: Path
    eval_share: float = 0.25
    promote_tolerance: float = 0.25
    enforce_timeout_s: float = 2700.0
    train_forecaster: bool = True  # also train the forecaster (when the history is long enough for it)
    train_command: tuple[str, ...] = (sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "train")


class JobRunner:
    """Runs training and rollback jobs one at a time."""

    def __init__(self, history: HistorySource, registry: ModelRegistry, a1: A1Client, settings: JobSettings) -> None:
        self.history = history
        self.registry = registry
        self.a1 = a1
        self.settings = settings
        self.jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[tuple[Job, Callable[[Job], Any]]] = asyncio.Queue()
        self._ids = itertools.count(1)

    def submit_training(self, reason: str) -> Job:
        """Queue a training job."""
        return self._submit(Job(f"job-{next(self._ids)}", "train", reason), self._train)

    def submit_rollback(self, version: str, reason: str) -> Job:
        """Queue a job that makes an earlier promoted version score again."""
        job = Job(f"job-{next(self._ids)}", "rollback", reason, outcome={"version": version})
        return self._submit(job, self._rollback)

    def _submit(self, job: Job, work: Callable[[Job], Any]) -> Job:
        self.jobs[job.id] = job
        self._queue.put_nowait((job, work))
        job.step("queued")
        return job

    async def run(self) -> None:
        """Work through the queue until cancelled."""
        while True:
            job, work = await self._queue.get()
            job.state = "running"
            try:
                await work(job)
            except Exception as exc:  # a job's failure is its own: recorded, and the runner goes on
                job.state = "failed"
                job.outcome["error"] = f"{type(exc).__name__}: {exc}"
                job.step(f"failed: {exc}")
            job.finished = time.time()

    async def _train(self, job: Job) -> None:
        folder = self.settings.work_dir / job.id
        dataset = await asyncio.to_thread(self.history.dataset)
        cells, rows = dataset.kpm["cell_id"].nunique(), len(dataset.kpm)
        job.step(f"history: {rows} rows of {cells} cells at {dataset.period_s:g} s")
        fit, judge = _split(dataset, self.settings.eval_share)
        await asyncio.to_thread(write_dataset, fit, folder / "data", "parquet")
        began = time.monotonic()
        await self._run_training(job, folder, self._forecaster_fits(job, fit))
        candidate = read_artifact(folder / "model")
        job.outcome.update(candidate=candidate.manifest.version, training_s=round(time.monotonic() - began, 1))
        job.step(f"trained {candidate.manifest.version} in {job.outcome['training_s']} s")
        current_version = await self.current_version()
        current = await self.registry.get(current_version) if current_version else None
        windows = self.history.incident_windows()
        judged = await asyncio.to_thread(_judge, candidate, current, to_arrays(judge), windows)
        job.outcome["judgement"] = judged
        limit = judged["current_alarm_rate"] * (1 + self.settings.promote_tolerance) + ABSOLUTE_ALLOWANCE
        if current is not None and judged["candidate_alarm_rate"] > limit:
            job.state = "rejected"
            job.step(f"rejected: alarms on {judged['candidate_alarm_rate']:.3%} of quiet cell-periods, "
                     f"the current model on {judged['current_alarm_rate']:.3%}")  # fmt: skip
            return
        job.step(f"judged not worse: {judged}")
        kept = await asyncio.to_thread(keep_forecaster, folder / "model", self.settings.work_dir)
        if kept is not None:
            job.step(f"kept its forecaster in {kept}")
        version = await self.registry.publish(folder / "model")
        job.step(f"published and promoted {version}")
        await self._enforce(job, version)

    async def _rollback(self, job: Job) -> None:
        version = job.outcome["version"]
        if version not in await self.registry.promoted():
            job.state = "failed"
            job.step(f"version {version} is not a promoted version in the registry")
            return
        await self._enforce(job, version)

    def _forecaster_fits(self, job: Job, fit: Dataset) -> bool:
        """Whether to train the forecaster: on, and the training history holds a window and its horizon."""
        if not self.settings.train_forecaster:
            return False
        periods, config = fit.kpm["timestamp"].nunique(), ForecasterConfig()
        if periods < config.window + config.horizon:
            job.step(f"no forecaster: {periods} periods of training history, it needs {config.window} + "
                     f"{config.horizon}")  # fmt: skip
            return False
        return True

    async def _run_training(self, job: Job, folder: Path, forecaster: bool) -> None:
        command = [*self.settings.train_command, "--data", str(folder / "data"), "--out", str(folder / "model")]
        if not forecaster:
            command.append("--no-forecaster")
        job.step("training the detector" + (" and the forecaster" if forecaster else ""))
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace").strip()
        if process.returncode != 0:
            raise RuntimeError(f"training exited with {process.returncode}: {text[-500:]}")
        job.step(text.splitlines()[-1] if text else "trained")

    async def current_version(self) -> str | None:
        """The model version in use: the one the model policy names, else the newest promoted (None: none)."""
        try:
            body = await self.a1.instance(POLICY_TYPE_ID, MODEL_INSTANCE_ID)
            named = body.get("model_version")
            if isinstance(named, str):
                return named
        except A1Error as exc:
            if exc.status != 404:
                raise
        promoted = await self.registry.promoted()
        return promoted[-1] if promoted else None

    async def _enforce(self, job: Job, version: str) -> None:
        """Name the version in the model policy and wait until the Near-RT side enforces it."""
        await self.a1.put(POLICY_TYPE_ID, MODEL_INSTANCE_ID, {"enabled": True, "model_version": version})
        job.step(f"A1 policy {MODEL_INSTANCE_ID} names {version}; waiting for the Near-RT RIC to enforce it")
        deadline = time.monotonic() + self.settings.enforce_timeout_s
        while time.monotonic() < deadline:
            status = await self.a1.status(POLICY_TYPE_ID, MODEL_INSTANCE_ID)
            if status.get("enforceStatus") == "ENFORCED":
                job.state = "succeeded"
                job.outcome.update(version=version, enforced=True)
                job.step(f"{version} enforced")
                return
            await asyncio.sleep(0.5)
        job.state = "failed"
        job.outcome.update(version=version, enforced=False)
        job.step(f"{version} not enforced within {self.settings.enforce_timeout_s:g} s")


def _split(dataset: Dataset, eval_share: float) -> tuple[Dataset, Dataset]:
    """The older part to train on and the newest `eval_share` to judge on, by time."""
    times = dataset.kpm["timestamp"]
    cut = times.min() + (times.max() - times.min()) * (1 - eval_share)
    older, newer = dataset.kpm[times <= cut], dataset.kpm[times > cut]
    return replace(dataset, kpm=older.reset_index(drop=True)), replace(dataset, kpm=newer.reset_index(drop=True))


def _alarm_rate(artifact: Artifact, arrays: KpmArrays, quiet: np.ndarray) -> float:
    scores = score_arrays(artifact, load_session(artifact), arrays)
    verdicts = scores.verdicts(artifact.manifest.thresholds.score)
    judged = quiet & ~np.isnan(verdicts)
    return float(verdicts[judged].mean()) if judged.any() else 0.0


def _judge(
    candidate: Artifact, current: Artifact | None, arrays: KpmArrays, windows: Sequence[tuple[str, int, int]]
) -> dict[str, Any]:
    """Alarm rates of both models on the quiet cell-periods of the judging data."""
    quiet = arrays.reported.copy()
    column = {cell: i for i, cell in enumerate(arrays.cell_ids)}
    for cell, first_ms, last_ms in windows:
        if cell in column:
            quiet[(arrays.times_ms >= first_ms) & (arrays.times_ms <= last_ms), column[cell]] = False
    result: dict[str, Any] = {
        "quiet_cell_periods": int(quiet.sum()),
        "candidate_alarm_rate": _alarm_rate(candidate, arrays, quiet),
        "current": None if current is None else current.manifest.version,
        "current_alarm_rate": 0.0,
    }
    if current is not None:
        result["current_alarm_rate"] = _alarm_rate(current, arrays, quiet)
    return result
