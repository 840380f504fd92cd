"""A job's record and where it is kept: JSON in the data layer's HASH_RAPP_JOBS (field = job id), so jobs and
their outcome survive a restart of the rApp.

A record is the job as the API shows it (`Job.public()`): id, kind, reason, state, created, finished, log,
outcome, plus `log_dropped` (lines dropped from the front of a log that reached its bound) and `child_pid`
(the training child's process group while it runs, not shown by the API: a restart stops a child its
predecessor left). Every text in it is bounded and names no server path (`ranomaly_contracts.redact`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from ranomaly_contracts.redact import redact_paths
from ranomaly_contracts.redis_client import AsyncRedis
from ranomaly_contracts.sdl import as_text

log = structlog.get_logger(__name__)

REASON_MAX = 200  # characters of a job's reason
LINE_MAX = 300  # characters of one log line
ACTIVE = ("queued", "running")
INTERRUPTED = "interrupted: the rApp stopped while the job was {state}"


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
    log_lines: int = 200  # the bound of `log`: the newest lines stay
    log_dropped: int = 0
    child_pid: int | None = None  # the training child (leader of its own process group) while it runs

    def __post_init__(self) -> None:
        self.reason = self.reason[:REASON_MAX]

    def step(self, message: str, **fields: Any) -> None:
        """Record progress (shown by the API) and log it."""
        self.note(message)
        log.info("job_step", job=self.id, kind=self.kind, step=message, **fields)

    def note(self, line: str) -> None:
        """Keep one line in the bounded log, timestamped, without logging it."""
        text = redact_paths(line.rstrip())
        text = text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "…"
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")
        excess = len(self.log) - self.log_lines
        if excess > 0:
            del self.log[:excess]
            self.log_dropped += excess

    def public(self) -> dict[str, Any]:
        """The job as JSON."""
        names = ("id", "kind", "reason", "state", "created", "finished", "log", "outcome", "log_dropped")
        return {name: getattr(self, name) for name in names}

    def record(self) -> dict[str, Any]:
        """The job as stored."""
        return {**self.public(), "child_pid": self.child_pid}

    def interrupt(self) -> None:
        """Mark a job the rApp stopped under as failed."""
        self.outcome.update(error=INTERRUPTED.format(state=self.state), interrupted=True)
        self.state = "failed"
        self.finished = time.time()
        self.step(self.outcome["error"])

    @classmethod
    def from_record(cls, record: dict[str, Any], log_lines: int) -> Job:
        """A job from its stored record."""
        job = cls(str(record["id"]), str(record["kind"]), str(record["reason"]), str(record["state"]),
                  float(record["created"]), record.get("finished"), [str(line) for line in record.get("log", [])],
                  dict(record.get("outcome", {})), log_lines, int(record.get("log_dropped", 0)),
                  record.get("child_pid"))  # fmt: skip
        if len(job.log) > log_lines:
            job.log_dropped += len(job.log) - log_lines
            del job.log[: len(job.log) - log_lines]
        return job


class JobStore:
    """Job records in one Redis hash."""

    def __init__(self, redis: AsyncRedis, key: str) -> None:
        self._redis = redis
        self._key = key

    async def load(self, log_lines: int) -> list[Job]:
        """Every stored job, oldest first; a record that cannot be read is logged and skipped."""
        jobs = []
        for name, value in (await self._redis.hgetall(self._key)).items():
            try:
                jobs.append(Job.from_record(json.loads(value), log_lines))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("job_record_unreadable", job=as_text(name), problem=str(exc))
        return sorted(jobs, key=lambda job: (job.created, job.id))

    async def save(self, jobs: list[Job], forget: list[str]) -> None:
        """Write these jobs and delete the forgotten ones, in one transaction."""
        async with self._redis.pipeline(transaction=True) as pipe:
            if jobs:
                pipe.hset(self._key, mapping={job.id: json.dumps(job.record()) for job in jobs})
            if forget:
                pipe.hdel(self._key, *forget)
            await pipe.execute()
