"""A party process for one session: `python -m mpc_credit.local.worker SPEC.json`.

It talks to its launcher in JSON lines (local/processes.py): `ready` (or `error` with its
kind) after the local checks, then waits for `go` on stdin, runs the session, and reports
`done`. The receiver writes its result to the spec's `out` path; every other
party writes nothing. This is where a one-shot party reads its files: the engine's
`SessionSpec` names no path.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

from mpc_credit.engine.runtime import close_runtime, make_runtime
from mpc_credit.engine.session import (
    Prepared,
    SessionSpec,
    assemble,
    execute,
    session_limits,
)
from mpc_credit.errors import ModelError, UsageError
from mpc_credit.jsonwire import WireError, decode_object, emit, encode
from mpc_credit.local.processes import memory_mb, party_main, wait_for_go
from mpc_credit.scorecard.data import ignored_note, load_ids, load_owner_csv
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


def prepare(spec: WorkerSpec) -> tuple[Prepared, str | None]:
    """Load and check this party's model, data and id list; no network. Also returns the
    line naming its CSV's columns the model does not use (None: there are none)."""
    model = load_model(spec.model)
    if model.part is not None and model.part.mode != spec.session.mode:
        raise ModelError(
            f"{spec.model}: is a {model.part.mode}-mode part, the session is {spec.session.mode}"
        )
    ids = load_ids(spec.ids)
    table, note = None, None
    if spec.data is not None and spec.party in model.owners:
        table = load_owner_csv(spec.data, model, spec.party)
        note = ignored_note(table, model)
    return assemble(spec.session, model, ids, table), note


async def run(spec: WorkerSpec) -> int:
    prep, note = prepare(spec)
    if note is None:
        emit("ready", party=spec.party, rows=len(prep.ids))
    else:  # the launcher prints it once (local/simulate.py)
        emit("ready", party=spec.party, rows=len(prep.ids), note=note)
    if not await wait_for_go():
        return 1
    mpc = make_runtime(spec.pid, spec.addresses, ssl=spec.tls is not None)
    from mpc_credit.engine.links import start_runtime  # imports MPyC: after make_runtime did

    limits = session_limits(mpc, spec.session, prep.model, len(prep.ids))
    # checked links, no pickles, each peer held to what this session needs
    await start_runtime(mpc, spec.tls, names=spec.session.parties, limits=limits)
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
    return party_main(sys.argv[1:] if argv is None else argv, WorkerSpec.loads, run)


if __name__ == "__main__":
    sys.exit(main())
