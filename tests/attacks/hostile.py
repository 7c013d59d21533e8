"""A hostile consortium member, importable by the attack tests and scripts/soak_hostile.py.

Two parts:

- pieces of a hostile MPC peer: `flood_empty_messages` writes empty MPC messages, each with
  a program counter no step uses, straight onto a link (tests/attacks/test_mpc_exhaustion.py);
  `memory_kb` and `open_fds` read a process's figures from /proc;
- a hostile party daemon: `python -m tests.attacks.hostile CONFIG ORDERS` runs the member's
  real daemon (its own keys, honest by default) and misbehaves as the JSON file ORDERS says,
  re-read every ORDERS_POLL seconds: `{"mode": MODE, "rate": R, "ids": [...]}` with MODE one of
  MODES. What it did is counted in ORDERS + ".done" (JSON), rewritten every second.

It holds no tests. It patches only its own process (the daemon's session runner), never a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

QUIET = "quiet"  # behaves
MPC_FLOOD = "mpc-flood"  # every other session: millions of empty MPC messages to VICTIM_PID
RETAINED = "retained"  # retained messages on its own session topics, `rate` a second
REFUSED = "refused"  # requests its policy forbids (a reveal not allowed), 100 ids each
STALL = "stall"  # requests every party accepts, then it never connects to their MPC
MODES = (QUIET, MPC_FLOOD, RETAINED, REFUSED, STALL)
VICTIM_PID = 0  # the party whose MPC port the flood hits (bank in the soak's consortium)
FLOOD_MESSAGES = 3_000_000  # empty messages per flooded session (the link drops far earlier)
FLOOD_STEP = 500_000  # messages per write
ORDERS_POLL = 0.2  # seconds between reads of the orders file
FORBIDDEN_REVEAL = "reasons"  # the reveal the soak's policy refuses this member


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def open_fds(pid: int | str = "self") -> int:
    """How many file descriptors a process holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def flood_empty_messages(
    mpc: Any, target: int, count: int = FLOOD_MESSAGES, *, pause: float = 0.05
) -> int:
    """Write `count` empty messages to party `target` over the runtime's link, each labelled
    with a program counter from 2**40 on (no step uses one); stop when the link closes.
    Returns how many were written."""
    import numpy as np

    link = mpc.parties[target].protocol
    written = 0
    for start in range(0, count, FLOOD_STEP):
        if link.transport is None or link.transport.is_closing():
            break
        n = min(FLOOD_STEP, count - start)
        msgs = np.zeros(n, dtype=[("pc", "<i8"), ("size", "<u4")])
        msgs["pc"] = np.arange(start, start + n) + (1 << 40)
        link.transport.write(msgs.tobytes())
        written += n
        await asyncio.sleep(pause)
    return written


# ---------------------------------------------------------------- the hostile daemon


class Member:
    """The member's hostile side inside its own daemon process: reads its orders, counts
    what it did."""

    def __init__(self, orders: Path) -> None:
        self.orders_file = orders
        self.orders: dict[str, Any] = {"mode": QUIET}
        self.read_at = 0.0
        self.did: Counter[str] = Counter()
        self.sessions = 0  # sessions started while flooding (every other one is flooded)
        self.tasks: set[asyncio.Future[Any]] = set()  # floods under way

    def order(self, key: str = "mode", default: Any = QUIET) -> Any:
        """The current order `key` (the file re-read at most every ORDERS_POLL seconds)."""
        if time.monotonic() - self.read_at > ORDERS_POLL:
            self.read_at = time.monotonic()
            with contextlib.suppress(OSError, ValueError):
                self.orders = json.loads(self.orders_file.read_text())
        return self.orders.get(key, default)

    def record(self) -> None:
        """Write the counters beside the orders (atomically)."""
        tmp = self.orders_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(self.did)))
        tmp.replace(self.orders_file.with_name(self.orders_file.name + ".done"))


MEMBER: Member | None = None


def _member() -> Member:
    assert MEMBER is not None, "install() first"
    return MEMBER


async def _connect_then_flood(original: Any, mpc: Any, *args: Any, **kwargs: Any) -> Any:
    """The runner's connect, then (flooding, every other session) a flood on the victim's link
    in the background."""
    out = await original(mpc, *args, **kwargs)
    m = _member()
    if m.order() == MPC_FLOOD:
        m.sessions += 1
        if m.sessions % 2:
            m.did["flooded sessions"] += 1

            async def flood() -> None:
                m.did["empty MPC messages"] += await flood_empty_messages(mpc, VICTIM_PID)

            task = asyncio.ensure_future(flood())
            m.tasks.add(task)
            task.add_done_callback(m.tasks.discard)
    return out


async def _stall_or_run(original: Any, runner: Any, s: Any, local: Any) -> Any:
    """Stalling: a session this member requested never connects (it waits out the session);
    any other session runs as usual."""
    from mpc_credit.errors import SessionError

    if _member().order() != STALL or s.req.requester != runner.party:
        return await original(runner, s, local)
    _member().did["stalled sessions"] += 1
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(s.aborted.wait(), max(0.0, s.remaining()))
    return None, SessionError(f"party {runner.party} stalled on purpose")


def install(orders: Path) -> None:
    """Patch this process's session runner and daemon with the member's hostile side."""
    import functools

    from mpc_credit.consortium.daemon import daemon as daemon_mod
    from mpc_credit.consortium.daemon import runner as runner_mod

    global MEMBER
    MEMBER = Member(orders)
    connect = functools.partial(_connect_then_flood, runner_mod.connect_runtime)
    runner_mod.connect_runtime = connect  # type: ignore[assignment]
    secure_part = runner_mod.SessionRunner._secure_part

    async def secure(runner: Any, s: Any, local: Any) -> Any:
        return await _stall_or_run(secure_part, runner, s, local)

    runner_mod.SessionRunner._secure_part = secure  # type: ignore[method-assign]
    run = daemon_mod.PartyDaemon.run

    async def run_and_misbehave(daemon: Any, ready: Any = None) -> None:
        task = asyncio.ensure_future(_misbehave(daemon))
        try:
            await run(daemon, ready)
        finally:
            task.cancel()

    daemon_mod.PartyDaemon.run = run_and_misbehave  # type: ignore[method-assign]


async def _misbehave(daemon: Any) -> None:
    """Publish what the orders say, at their rate, until the daemon stops."""
    m = _member()
    last_record = 0.0
    while True:
        mode = m.order()
        rate = float(m.order("rate", 1.0))
        with contextlib.suppress(Exception):  # a hostile member keeps going whatever happens
            if mode == RETAINED:
                await _retained(daemon, m)
            elif mode in (REFUSED, STALL):
                await _request(daemon, m, mode)
        if time.monotonic() - last_record > 1.0:
            last_record = time.monotonic()
            m.record()
        await asyncio.sleep(1.0 / rate if mode in (RETAINED, REFUSED, STALL) else ORDERS_POLL)


async def _retained(daemon: Any, m: Member) -> None:
    """One retained message on a session topic of its own: a signed `failed` report of a
    session nobody runs, or junk (alternately)."""
    from mpc_credit.consortium.messages import status

    sid = uuid.uuid4().hex
    if m.did["retained messages"] % 2:
        payload = status(daemon.key, sid, daemon.party, "failed", reason="x" * 200)
    else:
        payload = b'{"type":"status","junk":"' + b"y" * 2000 + b'"}'
    topic = daemon.link.topics.session(sid, daemon.party)
    if await daemon.link.publish(topic, payload, retain=True):
        m.did["retained messages"] += 1


async def _request(daemon: Any, m: Member, mode: str) -> None:
    """One signed request published straight on the broker (past its own daemon's checks):
    refused (a reveal its policy forbids, 100 ids) or accepted (one id, allowed reveal: then
    stalled by `_stall_or_run`)."""
    from mpc_credit.consortium.daemon.admission import choose_model
    from mpc_credit.consortium.messages import new_request

    ids = list(m.order("ids", []))
    info = choose_model(daemon.cons, None)
    refused = mode == REFUSED
    req = new_request(
        daemon.key,
        requester=daemon.party,
        model_id=info.id,
        model_digest=info.digest,
        mode="shared",
        reveal=FORBIDDEN_REVEAL if refused else str(m.order("reveal", "decision")),
        ids=ids[:100] if refused else ids[:1],
        timeout=float(m.order("timeout", 30.0)),
    )
    if await daemon.link.publish(daemon.link.topics.request, req.to_json()):
        m.did["refused requests sent" if refused else "stalling requests sent"] += 1


def main(argv: list[str]) -> int:
    """`python -m tests.attacks.hostile CONFIG ORDERS`: the member's daemon, hostile."""
    from mpc_credit.consortium.daemon.daemon import run_daemon

    config, orders = argv
    install(Path(orders).resolve())
    return run_daemon(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
