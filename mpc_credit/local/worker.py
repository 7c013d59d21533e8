"""A party process for one session: `python -m mpc_credit.local.worker SPEC.json`.

It talks to its launcher in JSON lines: `ready` (or `error`) after the local checks,
then waits for `go` on stdin, runs the session, and reports `done`. The receiver
writes its result to the spec's `out` path; every other party writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

from mpc_credit.engine.runtime import make_runtime
from mpc_credit.engine.session import PartySpec, execute, prepare
from mpc_credit.errors import MpcCreditError, SessionError


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


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(spec: PartySpec) -> int:
    prep = prepare(spec)
    emit("ready", party=spec.party, rows=len(prep.ids))
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        emit("error", message="launcher withdrew the session")
        return 1
    mpc = make_runtime(spec.pid, spec.addresses, ssl=spec.tls is not None)
    if spec.tls is not None:
        os.chdir(spec.tls)  # MPyC reads .config/ relative to the working directory
    await mpc.start()
    t0 = time.perf_counter()
    result = await execute(prep, mpc)
    mpc_s = time.perf_counter() - t0
    await mpc.shutdown()
    if result is not None and spec.out is not None:
        result.write_csv(spec.out)
    peak_mb = memory_mb()
    emit(
        "done",
        party=spec.party,
        received=result is not None,
        peak_mb=round(peak_mb, 1),
        mpc_s=mpc_s,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.disable(logging.INFO)
    try:
        spec = PartySpec.loads(Path(argv[0]).read_text())
        profile_dir = os.environ.get("MPC_CREDIT_PROFILE")  # developers: cProfile each party
        if profile_dir:
            import cProfile

            out = Path(profile_dir) / f"{spec.party}.prof"
            with cProfile.Profile() as prof:
                rc = asyncio.run(run(spec))
            prof.dump_stats(out)
            return rc
        return asyncio.run(run(spec))
    except SessionError as exc:
        emit("error", message=str(exc))
    except MpcCreditError as exc:
        emit("error", message=str(exc), input=True)
    except Exception as exc:
        emit("error", message=f"internal error: {type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
