"""Batch jobs: many applicants in one session, run in the background, fetched as a CSV.

`POST /v1/batches` creates a job and answers at once (202, its id); the job asks the daemon
for one session over all its ids (the daemon splits the MPC work into its own batches, as
`mpc-credit score --batch` does), records the daemon's progress lines, and keeps the result
for `job_ttl` seconds. The result is streamed as the CSV `score --out` writes (header
`applicant_id,<reveal columns>`, rows in upload order). A job belongs to the client that
created it: another client gets 404 for its id, as for one that does not exist. Jobs live in
this process's memory: a restart loses them (the daemon's audit log keeps the sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mpc_credit.api.catalog import ModelView
from mpc_credit.api.gateway import DaemonGateway
from mpc_credit.api.metrics import Metrics
from mpc_credit.api.problems import Problem, from_error
from mpc_credit.consortium.fields import clean_text
from mpc_credit.consortium.requester import ScoreOutcome
from mpc_credit.errors import MpcCreditError

STATES = ("queued", "running", "done", "failed")
ROWS_PER_CHUNK = 2_000


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """One batch job and, once finished, its outcome."""

    id: str
    owner: str
    ids: list[str]
    reveal: str
    mode: str
    model: ModelView
    created: float = field(default_factory=time.time)
    state: str = "queued"
    finished: float | None = None
    message: str = ""
    outcome: ScoreOutcome | None = None
    error: Problem | None = None

    def view(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "applicants": len(self.ids),
            "reveal": self.reveal,
            "model": {"id": self.model.id, "digest": self.model.digest},
            "created": _iso(self.created),
            "finished": _iso(self.finished),
            "message": self.message,
            "result": f"/v1/batches/{self.id}/result" if self.state == "done" else None,
            "error": self.error.document() if self.error is not None else None,
        }
        return d

    def csv_chunks(self) -> Iterator[str]:
        """The result CSV, a few thousand rows at a time."""
        assert self.outcome is not None
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.outcome.columns)
        rows = self.outcome.rows
        for i in range(0, len(rows), ROWS_PER_CHUNK):
            w.writerows(rows[i : i + ROWS_PER_CHUNK])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        rest = buf.getvalue()
        if rest:
            yield rest


class BatchStore:
    """The jobs of this server, run one task each through the gateway."""

    def __init__(
        self,
        gateway: DaemonGateway,
        metrics: Metrics,
        *,
        max_jobs: int,
        ttl: float,
        timeout: float,
    ) -> None:
        self.gateway, self.metrics = gateway, metrics
        self.max_jobs, self.ttl, self.timeout = max_jobs, ttl, timeout
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, owner: str, ids: list[str], reveal: str, mode: str, model: ModelView) -> Job:
        self._evict()
        if len(self.jobs) >= self.max_jobs:
            raise Problem(
                429,
                "too-many-jobs",
                f"{len(self.jobs)} batch jobs are kept; fetch or wait for the running ones",
                headers={"Retry-After": "10"},
                reason="too many batch jobs",
            )
        job = Job(secrets.token_hex(16), owner, ids, reveal, mode, model)
        self.jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._count()
        return job

    def get(self, owner: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            raise Problem(404, "unknown-job", "no such batch job of this client")
        return job

    async def _run(self, job: Job) -> None:
        job.state = "running"
        self._count()

        def progress(message: str) -> None:
            job.message = clean_text(message, 200)

        try:
            job.outcome = await self.gateway.score(
                job.ids,
                reveal=job.reveal,
                mode=job.mode,
                model_id=job.model.id,
                timeout=self.timeout,
                progress=progress,
            )
            job.state = "done"
            self.metrics.applicants.labels(job.reveal).inc(len(job.ids))
        except Problem as exc:
            job.error, job.state = exc, "failed"
        except MpcCreditError as exc:
            job.error, job.state = from_error(exc), "failed"
        except asyncio.CancelledError:
            job.error = Problem(503, "shutting-down", "the server stopped before the job ended")
            job.state = "failed"
            raise
        except Exception as exc:  # a bug: the job fails, the server keeps serving
            job.error = Problem(500, "internal", f"internal error ({type(exc).__name__})")
            job.state = "failed"
        finally:
            job.finished = time.time()
            self._count()

    def _evict(self, now: float | None = None) -> None:
        """Drop finished jobs past their time to live, then the oldest finished ones while
        the store is full."""
        t = time.time() if now is None else now
        for jid, job in list(self.jobs.items()):
            if job.finished is not None and t - job.finished > self.ttl:
                del self.jobs[jid]
        done = sorted((j for j in self.jobs.values() if j.finished), key=lambda j: j.finished or 0)
        while len(self.jobs) >= self.max_jobs and done:
            del self.jobs[done.pop(0).id]
        self._count()

    def _count(self) -> None:
        for s in STATES:
            self.metrics.jobs.labels(s).set(sum(j.state == s for j in self.jobs.values()))

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
