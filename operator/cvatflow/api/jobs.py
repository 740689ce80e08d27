"""Background jobs (dump + submit, batch annotation): run in a thread pool, tracked in memory with progress."""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cvatflow.api.models import Job as JobModel
from cvatflow.api.models import Problem
from cvatflow.errors import CvatflowError, ProblemsError, errors_only
from cvatflow.runs.run import now

log = logging.getLogger("cvatflow.api")
KEEP = 1000  # finished jobs kept for GET; older ones are forgotten (their runs stay in the backend)


@dataclass
class Job:
    """One piece of background work. Its fields change under the store's lock; readers get snapshots."""

    id: str
    kind: str
    execution: str | None = None
    cvat_task: int | None = None
    template: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    state: str = "queued"
    stage: str = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    problems: list[Problem] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    version: int = 0  # bumped on every change, so event streams send only what changed

    def model(self) -> JobModel:
        return JobModel(id=self.id, kind=self.kind, state=self.state, stage=self.stage, done=self.done,
                        total=self.total, message=self.message, problems=list(self.problems),
                        execution=self.execution, cvatTask=self.cvat_task, result=dict(self.result),
                        createdAt=self.created_at, updatedAt=self.updated_at)

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


class JobStore:
    """Runs jobs on a small thread pool and keeps their state; the slow work never runs in a request."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvatflow-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def create(self, kind: str, job_id: str | None = None, **fields: Any) -> Job:
        job = Job(id=job_id or f"{kind}-{uuid.uuid4().hex[:12]}", kind=kind, **fields)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        return job

    def start(self, job: Job, work: Callable[[Job], dict[str, Any] | None]) -> None:
        """Run `work(job)` in the pool; its return value becomes the job's result."""
        self._pool.submit(self._run, job, work)

    def _run(self, job: Job, work: Callable[[Job], dict[str, Any] | None]) -> None:
        self.update(job, state="running")
        try:
            result = work(job) or {}
        except ProblemsError as error:
            self.update(job, state="failed", stage="failed", message=str(error).splitlines()[0],
                        problems=[Problem.of(p) for p in errors_only(error.problems)])
        except CvatflowError as error:
            self.update(job, state="failed", stage="failed", message=str(error))
        except Exception as error:  # a bug: the job says so instead of vanishing; the log has the traceback
            log.exception("job %s failed", job.id)
            self.update(job, state="failed", stage="failed",
                        message=f"internal error ({error.__class__.__name__}); see the server log")
        else:
            self.update(job, state="succeeded", stage="done", result=result)

    def update(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            job.updated_at = now()
            job.version += 1

    def progress(self, job: Job, stage: str) -> Callable[[int, int], None]:
        """A progress callback (done, total) for the library calls a job makes."""
        def report(done: int, total: int) -> None:
            self.update(job, stage=stage, done=int(done), total=int(total))
        return report

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def find(self, execution: str, kind: str = "execution") -> Job | None:
        with self._lock:
            matches = [j for j in self._jobs.values() if j.execution == execution and j.kind == kind]
        return matches[-1] if matches else None

    def all(self, kind: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in reversed(self._jobs.values()) if kind is None or j.kind == kind]

    def snapshot(self, job: Job) -> JobModel:
        with self._lock:
            return job.model()

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished]
        for key in finished[:max(0, len(finished) - KEEP)]:
            del self._jobs[key]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
