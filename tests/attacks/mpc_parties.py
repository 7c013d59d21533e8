"""Party processes for the attacks on the MPC links (test_mpc_links.py, test_mpc_exhaustion.py).

Each party is its own OS process (`spawn`) running one session's work under `watch`, which
ends it as the daemons' watchdog would (a failed MPyC coroutine, a lost link, TIMEOUT) and
reports the outcome as the process's last JSON line; `outcomes` collects those lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from typing import Any

from tests.conftest import ROOT

SID = "session-7"
TIMEOUT = 60.0  # a party process gives up by itself after this many seconds
RUNNING: list[Any] = []  # the party process's runtime, once connected


async def watch(work: Coroutine[Any, Any, Any]) -> dict[str, Any]:
    """Run `work` until it ends, an MPyC coroutine fails, a link drops or TIMEOUT passes (then
    it is cancelled and awaited); its result as {"ok": ...} or {"error": ...}."""
    from mpc_credit.engine.links import MPC_FAILURES, lost_peers
    from mpc_credit.errors import SessionError

    task = asyncio.ensure_future(work)
    t0 = time.monotonic()
    lost: list[int] = []
    while not task.done() and not MPC_FAILURES and not lost and time.monotonic() - t0 < TIMEOUT:
        await asyncio.sleep(0.05)
        lost = lost_peers(RUNNING[0]) if RUNNING else []  # as the daemons' watchdog does
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if MPC_FAILURES:
            return {"error": str(MPC_FAILURES[0])}
        return {"error": f"lost the MPC link to {lost}" if lost else "timeout"}
    exc = task.exception()
    if exc is not None:
        return {"error": str(exc), "session_error": isinstance(exc, SessionError)}
    return {"ok": task.result()}


def spawn(module: str, *args: str) -> Any:
    """A party process running `module`'s `main(args)`."""
    code = f"import sys; from {module} import main; main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def outcomes(procs: list[Any], honest: list[int]) -> list[dict[str, Any]]:
    """Each process's last line; the others are stopped once the `honest` ones are done."""
    outs: list[dict[str, Any]] = [{} for _ in procs]
    for i in honest + [i for i in range(len(procs)) if i not in honest]:
        p = procs[i]
        if i not in honest and p.poll() is None:
            p.kill()
        stdout, stderr = p.communicate(timeout=TIMEOUT + 30)
        lines = [x for x in stdout.decode().splitlines() if x.startswith("{")]  # MPyC logs too
        if i in honest:
            assert lines, stderr.decode()[-3000:]
        outs[i] = json.loads(lines[-1]) if lines else {}
    return outs
