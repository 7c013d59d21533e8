"""A party process for one session: `python -m mpc_credit.local.worker SPEC.json`.

It talks to its launcher in JSON lines (`mpc_credit.jsonwire`): `ready` (or `error` with
its kind) after the local checks, then waits for `go` on stdin, runs the session, and
reports `done`. The receiver writes its result to the spec's `out` path; every other
party writes nothing. This is where a one-shot party reads its files: the engine's
`SessionSpec` names no path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mpc_credit.engine.runtime import close_runtime, make_runtime
from mpc_credit.engine.session import Prepared, SessionSpec, assemble, execute
from mpc_credit.errors import ModelError, MpcCreditError, UsageError
from mpc_credit.jsonwire import WireError, decode_object, emit, encode
from mpc_credit.scorecard.data import load_ids, load_owner_csv
from mpc_credit.scorecard.model import load_model


@dataclass(frozen=True)
class WorkerSpec:
    """What one party process needs for one session: the engine's spec and its own files."""

    session: SessionSpec
    addresses: tuple[tuple[str, int], ...]  # every party's MPC address, in pid order
    model: str  # this party's model (part)
    ids: str  # the id list, one per line
    data: str | None = None  # this party's CSV, if it owns features
    out: str | None = None  # where the receiver writes its result
    tls: str | None = None  # the folder holding this party's .config/

    @property
    def party(self) -> str:
        return self.session.party

    @property
    def pid(self) -> int:
        return self.session.pid

    def dumps(self) -> str:
        return encode(asdict(self)).decode("utf-8")

    @classmethod
    def loads(cls, text: str) -> WorkerSpec:
        try:
            d = decode_object(text)
            s = d.pop("session")
            session = SessionSpec(**{**s, "parties": tuple(s["parties"])})
            addresses = tuple((str(h), int(p)) for h, p in d.pop("addresses"))
            return cls(session, addresses, **d)
        except (WireError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid worker spec: {exc}") from None


def prepare(spec: WorkerSpec) -> Prepared:
    """Load and check this party's model, data and id list; no network."""
    model = load_model(spec.model)
    if model.part is not None and model.part.mode != spec.session.mode:
        raise ModelError(
            f"{spec.model}: is a {model.part.mode}-mode part, the session is {spec.session.mode}"
        )
    ids = load_ids(spec.ids)
    table = None
    if spec.data is not None and spec.party in model.owners:
        table = load_owner_csv(spec.data, model, spec.party)
    return assemble(spec.session, model, ids, table)


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


async def run(spec: WorkerSpec) -> int:
    prep = prepare(spec)
    emit("ready", party=spec.party, rows=len(prep.ids))
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        emit("error", kind="failed", message="launcher withdrew the session")
        return 1
    mpc = make_runtime(spec.pid, spec.addresses, ssl=spec.tls is not None)
    from mpc_credit.engine.links import start_runtime  # imports MPyC: after make_runtime did

    await start_runtime(mpc, spec.tls, names=spec.session.parties)  # checked links, no pickles
    t0 = time.perf_counter()
    result = await execute(prep, mpc)
    mpc_s = time.perf_counter() - t0
    await close_runtime(mpc)
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
    # MPyC's import sends the root log to stdout unless it is configured already; stdout
    # carries this worker's events, so the log goes to stderr
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    logging.disable(logging.INFO)
    try:
        spec = WorkerSpec.loads(Path(argv[0]).read_text())
        profile_dir = os.environ.get("MPC_CREDIT_PROFILE")  # developers: cProfile each party
        if profile_dir:
            import cProfile

            out = Path(profile_dir) / f"{spec.party}.prof"
            with cProfile.Profile() as prof:
                rc = asyncio.run(run(spec))
            prof.dump_stats(out)
            return rc
        return asyncio.run(run(spec))
    except MpcCreditError as exc:
        emit("error", kind=exc.kind, message=str(exc))
    except Exception as exc:
        emit("error", kind="failed", message=f"internal error: {type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
