"""Training jobs: train a candidate on the collected history, judge it against the model scoring now,
promote and publish it only if it is not worse, name it in the `ranomaly-model` A1 policy, and wait (with a
timeout) until the Near-RT side reports it enforced. Rollback signs an earlier promoted version anew (a newer
promotion counter, `rapp.registry`) and names it the same way.

Jobs run one at a time, off the request path, with at most `waiting_max` waiting (beyond: QueueFull); they
are kept in the data layer (`rapp.jobrecord`), and a job the rApp stopped under reads failed (interrupted)
after its restart. Training runs in a subprocess (`ranomaly train`) in its own process group, stopped with
the job or the rApp (`rapp.child`), its output lines kept in the job's bounded log; so torch never enters
this process; it trains the forecaster too when `train_forecaster` is on and the training
history holds one forecaster window and horizon, and a promoted version's forecaster is kept for
`rapp.forecasts` under `work_dir/models/<version>/`; judging runs the exported artifacts through ONNX
Runtime in a worker thread.
"Not worse" means: on the newest `eval_share` of the history, on the cell-periods outside any incident
the xApp recorded (quiet data), the candidate alarms at most `promote_tolerance` more than the current
model (relative, with an absolute allowance of 0.1 % of cell-periods).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from models.artifact import Artifact, load_session, read_artifact
from models.forecaster.config import ForecasterConfig
from models.scoring import score_arrays
from ranomaly_contracts.dataset import Dataset, KpmArrays, to_arrays, write_dataset
from ranomaly_contracts.redact import redact_paths
from ranomaly_contracts.redis_client import REDIS_ERRORS
from rapp.a1.client import A1Client, A1Error
from rapp.child import run_group, stop_stale_group
from rapp.forecasts import keep_forecaster
from rapp.jobrecord import ACTIVE, Job, JobStore
from rapp.registry import ModelRegistry

log = structlog.get_logger(__name__)

POLICY_TYPE_ID = 20100
MODEL_INSTANCE_ID = "ranomaly-model"
ABSOLUTE_ALLOWANCE = 0.001
SAVE_EVERY_S = 0.5  # the most often changed jobs are written to the data layer


class HistorySource(Protocol):
    """What training reads: the collected KPM history and the incidents the xApp raised."""

    def dataset(self) -> Dataset:
        """Every collected KPM row (within retention) as a dataset."""

    def incident_windows(self) -> Sequence[tuple[str, int, int]]:
        """(cell id, first period ms, last period ms) of every recorded incident."""


@dataclass(frozen=True)
class JobSettings:
    """What jobs need from the rApp's settings."""

    work_dir: Path
    eval_share: float = 0.25
    promote_tolerance: float = 0.25
    enforce_timeout_s: float = 2700.0
    train_forecaster: bool = True  # also train the forecaster (when the history is long enough for it)
    train_command: tuple[str, ...] = (sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "train")
    waiting_max: int = 3  # jobs that may wait behind the running one
    jobs_kept: int = 100  # finished jobs kept
    log_lines: int = 200  # lines of a job's log kept
    stop_grace_s: float = 10.0  # SIGTERM to SIGKILL of a training child's group
    retry_after_s: int = 60  # what a refused submission is told


class QueueFull(RuntimeError):
    """No room for another waiting job; `retry_after_s` is when to ask again."""

    def __init__(self, waiting: int, retry_after_s: int) -> None:
        super().__init__(f"{waiting} jobs already wait behind the running one; try again later")
        self.retry_after_s = retry_after_s


class JobRunner:
    """Runs training and rollback jobs one at a time, with at most `waiting_max` waiting (see `rapp.jobrecord`
    for how they are kept across restarts)."""

    def __init__(self, history: HistorySource, registry: ModelRegistry, a1: A1Client, settings: JobSettings,
                 store: JobStore | None = None) -> None:  # fmt: skip
        self.history = history
        self.registry = registry
        self.a1 = a1
        self.settings = settings
        self.store = store
        self.jobs: dict[str, Job] = {}
        self.refused = 0  # submissions refused because the queue was full
        self._queue: asyncio.Queue[tuple[Job, Callable[[Job], Any]]] = asyncio.Queue()
        self._dirty: set[str] = set()  # jobs changed since they were last saved
        self._forgotten: list[str] = []  # jobs dropped from the bound, to delete from the store
        self._changed = asyncio.Event()

    def submit_training(self, reason: str) -> Job:
        """Queue a training job; QueueFull when `waiting_max` jobs wait already."""
        return self._submit(self._new("train", reason), self._train)

    def submit_rollback(self, version: str, reason: str) -> Job:
        """Queue a job that makes an earlier promoted version score again; QueueFull as submit_training."""
        job = self._new("rollback", reason)
        job.outcome["version"] = version
        return self._submit(job, self._rollback)

    def newest(self, offset: int = 0, limit: int | None = None) -> list[Job]:
        """Jobs, newest first, from offset on (at most limit)."""
        ordered = sorted(self.jobs.values(), key=lambda job: (job.created, job.id), reverse=True)
        return ordered[offset : None if limit is None else offset + limit]

    def own_instances(self) -> dict[tuple[int, str], dict[str, Any]]:
        """The A1 instances jobs named, which the Near-RT side must keep: the model policy as last named."""
        for job in self.newest():
            if job.outcome.get("named"):
                body = {"enabled": True, "model_version": job.outcome["version"]}
                return {(POLICY_TYPE_ID, MODEL_INSTANCE_ID): body}
        return {}

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    def _new(self, kind: str, reason: str) -> Job:
        return Job(f"job-{uuid.uuid4().hex[:12]}", kind, reason, log_lines=self.settings.log_lines)

    def _submit(self, job: Job, work: Callable[[Job], Any]) -> Job:
        waiting = sum(1 for known in self.jobs.values() if known.state == "queued")
        if waiting >= self.settings.waiting_max:
            self.refused += 1
            log.warning("job_refused", kind=job.kind, waiting=waiting, waiting_max=self.settings.waiting_max)
            raise QueueFull(waiting, self.settings.retry_after_s)
        self.jobs[job.id] = job
        self._queue.put_nowait((job, work))
        job.step("queued")
        self._touch(job)
        return job

    def _touch(self, job: Job) -> None:
        """Mark a job to be saved, and drop the oldest finished jobs beyond the bound."""
        self._dirty.add(job.id)
        finished = [known for known in self.newest() if known.state not in ACTIVE]
        for old in finished[self.settings.jobs_kept :]:
            del self.jobs[old.id]
            self._dirty.discard(old.id)
            self._forgotten.append(old.id)
        self._changed.set()

    async def run(self) -> None:
        """Restore the stored jobs, then work through the queue until cancelled; a job running when cancelled
        is marked failed (interrupted) and its training child stopped."""
        if self.store is not None:
            await self._restore()
        saver = asyncio.create_task(self._save_loop(), name="jobs-saver")
        try:
            await self._work()
        finally:
            for job in self.jobs.values():
                if job.state == "running":
                    job.interrupt()
                    self._touch(job)
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            with contextlib.suppress(Exception):  # best effort: a restart marks it interrupted anyway
                await asyncio.wait_for(self._save(), 2.0)

    async def _work(self) -> None:
        while True:
            job, work = await self._queue.get()
            if job.state != "queued":
                continue  # restored as interrupted
            job.state = "running"
            self._touch(job)
            try:
                await work(job)
            except Exception as exc:  # a job's failure is its own: recorded, and the runner goes on
                job.state = "failed"
                job.outcome["error"] = redact_paths(f"{type(exc).__name__}: {exc}")
                job.step(f"failed: {exc}")
            job.finished = time.time()
            self._touch(job)

    async def _restore(self) -> None:
        """Load the stored jobs (retried until the data layer answers); those that were queued or running when
        the rApp stopped are marked failed (interrupted), and a training child a killed rApp left is stopped."""
        assert self.store is not None
        delay = 0.1
        while True:
            try:
                stored = await self.store.load(self.settings.log_lines)
                break
            except REDIS_ERRORS as exc:
                log.warning("jobs_store_unavailable", problem=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
        for job in stored:
            if job.id in self.jobs:
                continue
            self.jobs[job.id] = job
            if job.child_pid is not None and stop_stale_group(job.child_pid, str(self.settings.work_dir / job.id)):
                log.warning("job_child_stopped", job=job.id, pid=job.child_pid)
            job.child_pid = None
            if job.state in ACTIVE:
                job.interrupt()
            self._touch(job)
        log.info("jobs_restored", jobs=len(stored))

    async def _save_loop(self) -> None:
        """Save changed jobs as they change, at most every SAVE_EVERY_S (a chatty training child's lines are
        saved together); failures are retried."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self._save()
            except REDIS_ERRORS as exc:
                log.warning("jobs_save_failed", problem=str(exc))
                self._changed.set()
            await asyncio.sleep(SAVE_EVERY_S)

    async def _save(self) -> None:
        if self.store is None:
            self._dirty.clear()
            self._forgotten.clear()
            return
        dirty, forgotten = [self.jobs[i] for i in self._dirty if i in self.jobs], list(self._forgotten)
        self._dirty.clear()
        self._forgotten.clear()
        try:
            await self.store.save(dirty, forgotten)
        except BaseException:
            self._dirty.update(job.id for job in dirty)
            self._forgotten.extend(forgotten)
            raise

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
        self._touch(job)
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
        self._touch(job)
        await self._enforce(job, version)

    async def _rollback(self, job: Job) -> None:
        version = job.outcome["version"]
        if version not in await self.registry.promoted():
            job.state = "failed"
            job.step(f"version {version} is not a promoted version in the registry")
            return
        await self.registry.promote_again(version)
        job.step(f"signed {version} again at a new promotion counter")
        self._touch(job)
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
        self._touch(job)

        def output(line: str) -> None:
            job.note(line)
            self._touch(job)

        def started(pid: int) -> None:
            job.child_pid = pid
            self._touch(job)

        try:
            status = await run_group(command, output, self.settings.stop_grace_s, started)
        finally:
            job.child_pid = None
        if status != 0:
            raise RuntimeError(f"training exited with {status}; its last lines are in the job's log")

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
        job.outcome.update(version=version, named=True)
        job.step(f"A1 policy {MODEL_INSTANCE_ID} names {version}; waiting for the Near-RT RIC to enforce it")
        self._touch(job)
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
