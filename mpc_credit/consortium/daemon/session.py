"""What a party daemon keeps per session, and the waits a session runner needs.

A session ends in one of two ways: a result (at the receiver) or an error from
`mpc_credit.errors` (SessionError, or its RefusedError and TimedOutError), whose `kind`
travels in the party's `failed` report and to the local client; the report's reason is only
`public(error, party)`, a category (the full text stays in the party's log and audit line).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpc_credit.consortium.messages import Request
from mpc_credit.consortium.reasons import Refusal, public_reason
from mpc_credit.consortium.train_request import TrainRequest
from mpc_credit.errors import RefusedError, SessionError, TimedOutError


class PolicyRefusal(RefusedError):
    """The policy refused a session once it ran (a batch's ids over the per-applicant limit)."""

    def __init__(self, party: str, refusal: Refusal) -> None:
        super().__init__(f"party {party} refused: {refusal}", refusal.category)
        self.refusal = refusal


class LinkFailure(SessionError):
    """A failure of the MPC links or of what travels on them before any input is read (who
    is on a link, the session id, a batch's ids): its text names parties, never a value, so
    the broker may carry it whole (which party's certificate claimed to be which)."""


class ConnectTimeout(TimedOutError):
    """Some parties did not acknowledge or connect within the policy's `connect_seconds`:
    its text names them only, so the broker may carry it whole; `stalled` lists them."""

    def __init__(self, stalled: Sequence[str], seconds: float) -> None:
        self.stalled = tuple(stalled)
        super().__init__(f"party {', '.join(self.stalled)} did not connect within {seconds:g} s")


def stall_facts(error: BaseException) -> dict[str, list[str]]:
    """The audit's `stalled` field of an abort: who did not connect in time (else none)."""
    return {"stalled": list(error.stalled)} if isinstance(error, ConnectTimeout) else {}


@contextlib.contextmanager
def link_failures() -> Iterator[None]:
    """Raise the SessionErrors of the block as LinkFailure (same text and kind)."""
    try:
        yield
    except LinkFailure:
        raise
    except SessionError as exc:
        if type(exc) is not SessionError:  # a timeout or a refusal keeps its own kind
            raise
        raise LinkFailure(str(exc)) from exc


def public(error: BaseException, party: str) -> str:
    """What the broker may say of `error`: `party: category`, never a file, row or value;
    a link failure's text names parties only, and goes whole."""
    if isinstance(error, LinkFailure):
        return f"{party}: MPC link: {error}"
    if isinstance(error, ConnectTimeout):
        return f"{party}: {error}"
    if isinstance(error, PolicyRefusal):
        return public_reason(error.refusal, party)
    while type(error) is SessionError and error.__cause__ is not None:
        error = error.__cause__  # a plain wrapper: the category is its cause's
    return public_reason(error, party)


@dataclass
class Session:
    """One session as this daemon tracks it."""

    req: Request | TrainRequest  # a scoring or a training session
    port: int  # this party's MPC port for the session
    parties: tuple[str, ...]
    ports: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    all_acked: asyncio.Event = field(default_factory=asyncio.Event)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    error: SessionError | None = None  # why it was aborted
    phase: str = "queued"  # queued, connecting, computing, finishing, ended
    t0: float = field(default_factory=time.perf_counter)
    ids: list[str] | None = None  # known at the requester (batch) or from the request
    remote: bool = False  # the abort was learnt from another party's report
    connect_by: float = float("inf")  # every party acked and connected by then (time.time())
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # party: its last audit head

    def abort(self, error: SessionError, *, remote: bool = False) -> None:
        """Abort once (the first reason wins); an ended session stays ended."""
        if not self.aborted.is_set() and self.phase != "ended":
            self.error, self.remote = error, remote
            self.aborted.set()

    def acked(self, party: str, port: int) -> None:
        self.ports[party] = port
        if all(p in self.ports for p in self.parties):
            self.all_acked.set()

    def finished(self, party: str) -> None:
        self.done.add(party)
        if all(p in self.done for p in self.parties):
            self.all_done.set()

    def reported_head(self, party: str, head: tuple[int, str] | None) -> None:
        """Keep the audit head (seq, hash) `party` last reported in this session."""
        if head is not None:
            self.heads[party] = head

    def heads_record(self) -> dict[str, list[Any]]:
        """The heads the other parties reported, as the session's end line records them."""
        return {party: [seq, digest] for party, (seq, digest) in sorted(self.heads.items())}

    @property
    def sid(self) -> str:
        return self.req.session

    def remaining(self) -> float:
        return self.req.deadline - time.time()

    def connect_left(self) -> float:
        """Seconds left to connect: to the connect window's end or the deadline's."""
        return min(self.connect_by, self.req.deadline) - time.time()


async def until(event: asyncio.Event, *others: asyncio.Event, timeout: float) -> None:
    """Wait for any of the events, at most `timeout` seconds (no exception on timeout)."""
    waits = [asyncio.ensure_future(e.wait()) for e in (event, *others)]
    try:
        await asyncio.wait(waits, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def until_task(task: asyncio.Future[Any], event: asyncio.Event, timeout: float) -> None:
    """Wait for the task to end or the event, at most `timeout` seconds."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait(
            [task, waiter], timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
