"""One-shot party processes on one machine: both sides of their JSON-lines protocol.

Launcher side (`run_parties`): start `python -m MODULE SPEC.json` per party, wait until every
party reported `ready` (its local checks passed), send each `go`, and collect every `done`.
The first failure (an `error` event, a malformed line, a process that dies, the deadline)
kills every party and raises the error of its kind naming the party; the caller moves its
staged outputs into place only after `run_parties` returned, so a failure leaves none.

Party side (`party_main`, `wait_for_go`): stdout carries the events, logs go to stderr, and
every failure ends as one `error` event with its kind. `simulate` (local/worker.py) and
`train` (local/train_worker.py) both run on this.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mpc_credit.errors import MpcCreditError, SessionError, UsageError, error_of_kind
from mpc_credit.jsonwire import WireError, emit, read_event

Event = dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """Every party's `done` event (in the order started) and the seconds from `go` to the last."""

    events: list[Event]
    seconds: float


def staged_output(out: Path, flag: str) -> tuple[Path, Path]:
    """The resolved output path and the staged file beside it that a party writes first;
    UsageError (naming `flag`) when the output's folder is missing or it is a folder."""
    final = out.resolve()
    if not final.parent.is_dir():
        raise UsageError(f"{flag} {out}: folder {final.parent} does not exist")
    if final.is_dir():
        raise UsageError(f"{flag} {out}: is a folder, expected a file name")
    return final, final.parent / f".{final.name}.{os.getpid()}.part"


def exit_reason(rc: int) -> str:
    """How a process ended, in words."""
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


class PartyProcess:
    """A running party process and the events it reports."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc

    async def event(self) -> Event:
        """The next JSON event; an error event, a malformed line or a process that dies
        first raises the error of its kind, naming the party."""
        assert self.proc.stdout is not None
        try:
            ev = await read_event(self.proc.stdout)
        except WireError as exc:
            raise SessionError(f"party {self.name} sent a malformed event: {exc}") from None
        if ev is not None:
            if ev["event"] == "error":
                said, named = str(ev.get("message")), f"party {self.name}: "
                said = said if said.startswith(named) else named + said
                raise error_of_kind(ev.get("kind"), said)
            return ev
        rc = await self.proc.wait()
        raise SessionError(f"party {self.name} {exit_reason(rc)} before finishing the session")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def first_failure(tasks: list[asyncio.Task[Event]], timeout: float, what: str) -> list[Event]:
    """All tasks' results; the first exception (or the deadline) cancels the rest."""
    done, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
    for t in pending:
        t.cancel()
    for t in done:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    if pending:
        raise SessionError(f"session timed out after {timeout:.0f} s while {what}")
    return [t.result() for t in tasks]


async def _each(procs: list[PartyProcess], timeout: float, what: str) -> list[Event]:
    return await first_failure([asyncio.ensure_future(p.event()) for p in procs], timeout, what)


async def run_parties(
    module: str,
    specs: Sequence[tuple[str, Path]],
    timeout: float,
    what: str,
    on_started: Callable[[dict[str, int]], None] | None = None,
    on_ready: Callable[[list[Event]], None] | None = None,
) -> Finished:
    """Run one process of `module` per (party, spec file) to the end; see the module doc.

    `what` names the secure part in a timeout message ("scoring", "training"); `on_ready`
    receives every party's `ready` event (in the order started) before any is told to go;
    `on_started` receives each party's OS process id once every party has been told to go.
    """
    procs: list[PartyProcess] = []
    try:
        for name, spec in specs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                str(spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            procs.append(PartyProcess(name, proc))
        ready = await _each(procs, timeout, "parties prepared")
        if on_ready is not None:
            on_ready(ready)
        t0 = time.perf_counter()
        for p in procs:
            p.send("go")
        if on_started is not None:
            on_started({p.name: p.proc.pid for p in procs})
        events = await _each(procs, timeout, what)
        seconds = time.perf_counter() - t0
        for p in procs:
            await p.proc.wait()
        return Finished(events, seconds)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            await p.proc.wait()


# --- the party side --------------------------------------------------------------------------


class _Spec(Protocol):
    @property
    def party(self) -> str: ...


S = TypeVar("S", bound=_Spec)


async def wait_for_go() -> bool:
    """Block until the launcher's next line; True for `go`, else report the withdrawal."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() == "go":
        return True
    emit("error", kind="failed", message="launcher withdrew the session")
    return False


def memory_mb(field: str = "VmHWM", pid: int | str = "self") -> float:
    """A process's memory figure from /proc, in MB: VmHWM its peak resident set (of its own
    image: ru_maxrss would include the launcher's), VmRSS its current one."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def party_main(
    argv: list[str], loads: Callable[[str], S], run: Callable[[S], Coroutine[Any, Any, int]]
) -> int:
    """A party process's entry point: read the spec file argv[0], run, report any failure."""
    # MPyC's import sends the root log to stdout unless it is configured already; stdout
    # carries this process's events, so the log goes to stderr
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    logging.disable(logging.INFO)
    try:
        spec = loads(Path(argv[0]).read_text())
        profile_dir = os.environ.get("MPC_CREDIT_PROFILE")  # developers: cProfile each party
        if not profile_dir:
            return asyncio.run(run(spec))
        import cProfile

        with cProfile.Profile() as prof:
            rc = asyncio.run(run(spec))
        prof.dump_stats(Path(profile_dir) / f"{spec.party}.prof")
        return rc
    except MpcCreditError as exc:
        emit("error", kind=exc.kind, message=str(exc))
    except Exception as exc:
        emit("error", kind="failed", message=f"internal error: {type(exc).__name__}: {exc}")
    return 1
