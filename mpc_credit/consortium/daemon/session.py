"""What a party daemon keeps per session, and the local `score` client waiting on one."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from mpc_credit.consortium.messages import Request

# error kinds, as the CLI maps them to exit codes
REFUSED, TIMEOUT, FAILED_KIND, INPUT = "refused", "timeout", "failed", "input"


class SessionAbort(Exception):
    """A session ends without a result; `kind` is one of refused/timeout/failed/input."""

    def __init__(self, reason: str, kind: str = FAILED_KIND) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass
class Session:
    """One session as this daemon tracks it."""

    req: Request
    port: int
    parties: tuple[str, ...]
    ports: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    all_acked: asyncio.Event = field(default_factory=asyncio.Event)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    abort_reason: str = ""
    abort_kind: str = FAILED_KIND
    phase: str = "queued"  # queued, connecting, computing, finishing, ended
    t0: float = field(default_factory=time.perf_counter)
    ids: list[str] | None = None  # known at the requester (batch) or from the request

    remote: bool = False  # the abort was learnt from another party's report

    def abort(self, reason: str, kind: str = FAILED_KIND, *, remote: bool = False) -> None:
        if not self.aborted.is_set() and self.phase != "ended":
            self.abort_reason, self.abort_kind, self.remote = reason, kind, remote
            self.aborted.set()

    @property
    def sid(self) -> str:
        return self.req.session

    def remaining(self) -> float:
        return self.req.deadline - time.time()


class LocalClient:
    """A `score` CLI connected to the control socket, waiting for one session."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.finished = asyncio.get_running_loop().create_future()
        self.ids: list[str] | None = None  # a batch's ids, sent to the others over MPC

    def send(self, event: str, **fields: Any) -> None:
        if self.writer.is_closing():
            return
        line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
        self.writer.write(line.encode())

    def finish(self, event: str, **fields: Any) -> None:
        self.send(event, **fields)
        if not self.finished.done():
            self.finished.set_result(None)


async def until(event: asyncio.Event, *others: asyncio.Event, timeout: float) -> None:
    """Wait for any of the events, at most `timeout` seconds (no exception on timeout)."""
    waits = [asyncio.ensure_future(e.wait()) for e in (event, *others)]
    try:
        await asyncio.wait(waits, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def until_task(task: asyncio.Future[Any], event: asyncio.Event, timeout: float) -> None:
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait(
            [task, waiter], timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
