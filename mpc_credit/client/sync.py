"""`Client`: the API over a blocking httpx connection pool (see the package's docstring)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx

from mpc_credit.client import calls
from mpc_credit.client import results as res
from mpc_credit.client.errors import error_of, problem_error

T = TypeVar("T")


class Client:
    """A connection to `mpc-credit serve` at `base_url`, as the client of `token`.

    `timeout`: seconds per call (a decision waits for its MPC session: keep it above the
    server's session timeout, 60 s by default). Other keyword arguments go to httpx.Client
    (`verify`, `cert` for mutual TLS, `transport` for tests).
    """

    def __init__(
        self, base_url: str, token: str | None = None, *, timeout: float = 90.0, **httpx_args: Any
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, **httpx_args)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: calls.Call[T]) -> T:
        r = self._http.request(
            call.method,
            call.path,
            json=call.json,
            params=call.params,
            content=call.content,
            headers=call.headers,
        )
        if r.is_error and r.status_code not in call.accept:
            raise error_of(r)
        return call.parse(r)

    def decisions(
        self,
        applicants: Iterable[str],
        reveal: str = "decision",
        *,
        model: str | None = None,
        mode: str | None = None,
    ) -> res.Decisions:
        """Results for a few applicants (one MPC session; at most 1,000 ids)."""
        return self._do(calls.decisions(applicants, reveal, model, mode))

    def decide(self, applicant: str, reveal: str = "decision", **kw: Any) -> res.Result:
        """The result for one applicant."""
        return self.decisions([applicant], reveal, **kw).results[0]

    def models(self) -> list[res.Model]:
        return self._do(calls.models())

    def model(self, model_id: str) -> res.Model:
        return self._do(calls.model(model_id))

    def submit_batch(
        self,
        applicants: Iterable[str],
        reveal: str = "decision",
        *,
        model: str | None = None,
        mode: str | None = None,
    ) -> res.BatchJob:
        """Start a batch job (up to 100,000 ids); poll it with `batch` or `wait_batch`."""
        return self._do(calls.submit_batch(applicants, reveal, model, mode))

    def batch(self, job_id: str) -> res.BatchJob:
        return self._do(calls.batch(job_id))

    def wait_batch(
        self, job_id: str, *, timeout: float = 3600.0, poll: float = 0.2
    ) -> res.BatchJob:
        """Poll until the job is done (returned) or failed (its problem raised)."""
        end = time.monotonic() + timeout
        while True:
            job = self.batch(job_id)
            if job.state == "failed":
                raise problem_error(int((job.error or {}).get("status", 502)), job.error or {})
            if job.state == "done":
                return job
            if time.monotonic() > end:
                raise TimeoutError(f"batch job {job_id} not finished after {timeout} s")
            time.sleep(poll)

    def batch_result(self, job_id: str) -> str:
        """The result CSV (as `mpc-credit score --out` writes it)."""
        return self._do(calls.batch_result(job_id))

    def ready(self) -> res.Readiness:
        return self._do(calls.ready())

    def health(self) -> bool:
        return self._do(calls.health())

    def metrics(self) -> str:
        return self._do(calls.metrics())
