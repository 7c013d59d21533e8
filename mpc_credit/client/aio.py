"""`AsyncClient`: the API over an asynchronous httpx connection pool; the methods of
`Client` as coroutines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx

from mpc_credit.client import calls
from mpc_credit.client import results as res
from mpc_credit.client.errors import error_of, problem_error

T = TypeVar("T")


class AsyncClient:
    """As `Client`, for asyncio code (`async with AsyncClient(url, token) as api: ...`)."""

    def __init__(
        self, base_url: str, token: str | None = None, *, timeout: float = 90.0, **httpx_args: Any
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, **httpx_args
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _do(self, call: calls.Call[T]) -> T:
        r = await self._http.request(
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

    async def decisions(
        self,
        applicants: Iterable[str],
        reveal: str = "decision",
        *,
        model: str | None = None,
        mode: str | None = None,
    ) -> res.Decisions:
        return await self._do(calls.decisions(applicants, reveal, model, mode))

    async def decide(self, applicant: str, reveal: str = "decision", **kw: Any) -> res.Result:
        return (await self.decisions([applicant], reveal, **kw)).results[0]

    async def models(self) -> list[res.Model]:
        return await self._do(calls.models())

    async def model(self, model_id: str) -> res.Model:
        return await self._do(calls.model(model_id))

    async def submit_batch(
        self,
        applicants: Iterable[str],
        reveal: str = "decision",
        *,
        model: str | None = None,
        mode: str | None = None,
    ) -> res.BatchJob:
        return await self._do(calls.submit_batch(applicants, reveal, model, mode))

    async def batch(self, job_id: str) -> res.BatchJob:
        return await self._do(calls.batch(job_id))

    async def wait_batch(
        self, job_id: str, *, timeout: float = 3600.0, poll: float = 0.2
    ) -> res.BatchJob:
        end = time.monotonic() + timeout
        while True:
            job = await self.batch(job_id)
            if job.state == "failed":
                raise problem_error(int((job.error or {}).get("status", 502)), job.error or {})
            if job.state == "done":
                return job
            if time.monotonic() > end:
                raise TimeoutError(f"batch job {job_id} not finished after {timeout} s")
            await asyncio.sleep(poll)

    async def batch_result(self, job_id: str) -> str:
        return await self._do(calls.batch_result(job_id))

    async def ready(self) -> res.Readiness:
        return await self._do(calls.ready())

    async def health(self) -> bool:
        return await self._do(calls.health())

    async def metrics(self) -> str:
        return await self._do(calls.metrics())
