"""An MPyC runtime built from explicit settings instead of the command line.

MPyC builds its global runtime from sys.argv when `mpyc.runtime` is first imported and
accepts abbreviated options, so a program with options of its own must keep its argv
away from MPyC. Here the import sees an empty argv, and each session gets a runtime of
its own, with its parties, threshold and TLS setting given as arguments.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from mpc_credit.engine import accel


def load_mpyc() -> tuple[Any, Any]:
    """Import MPyC (`mpyc`, `mpyc.runtime`) with an empty argv; a daemon calls it at start so
    that the first session pays no import and MPyC never parses the daemon's options."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import mpyc
        import mpyc.runtime as rt
    finally:
        sys.argv = saved
    return mpyc, rt


def make_runtime(
    pid: int,
    addresses: Sequence[tuple[str, int]],
    *,
    ssl: bool = True,
    threshold: int | None = None,
) -> Any:
    """A runtime for party `pid` of len(addresses) parties; t = (m - 1) // 2 by default.

    With `ssl`, MPyC reads `.config/mpyc_ca.crt` and `.config/party_{pid}.{crt,key}`
    relative to the working directory when the runtime starts: run it from the party's
    folder (the worker and the daemon change into it).
    """
    mpyc, rt = load_mpyc()
    if os.environ.get("MPC_CREDIT_NO_ACCEL") != "1":
        accel.install()
    m = len(addresses)
    options = mpyc._get_arg_parser().parse_args([])
    options.ssl = ssl and m > 1
    options.no_log = True
    options.no_async = m == 1
    options.threshold = (m - 1) // 2 if threshold is None else threshold
    if 2 * options.threshold >= m:
        raise ValueError(f"threshold {options.threshold} too large for {m} parties")
    parties = [rt.Party(i, host, port) for i, (host, port) in enumerate(addresses)]
    runtime = rt.Runtime(pid, parties, options)
    for module in (
        mpyc.sectypes,
        mpyc.asyncoro,
        mpyc.mpctools,
        mpyc.seclists,
        mpyc.secpols,
        mpyc.secgroups,
        mpyc.random,
        mpyc.statistics,
    ):
        module.runtime = runtime
    return runtime


async def close_runtime(mpc: Any, timeout: float | None = None) -> None:
    """MPyC's closing barrier with every party (at most `timeout` seconds when given)."""
    await asyncio.wait_for(mpc.shutdown(), timeout)
