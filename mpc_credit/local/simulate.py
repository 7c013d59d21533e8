"""A whole consortium on localhost: one OS process per party, mutual TLS between them.

The launcher acts for the receiver: it fixes the id list (from `--ids`, checked against
the receiver's own file, or all of the receiver's applicants), gives each party only
its own model part and its own CSV path, starts the processes, and moves the
receiver's result into place only when every party has finished. Any failure kills
every party and leaves no output file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mpc_credit.consortium.pki import ephemeral_consortium
from mpc_credit.engine.plan import make_plan
from mpc_credit.engine.session import SessionSpec
from mpc_credit.errors import DataError, ModelError, SessionError, UsageError
from mpc_credit.local.ports import free_ports
from mpc_credit.local.processes import Event, run_parties, staged_output
from mpc_credit.local.worker import WorkerSpec
from mpc_credit.names import check_name, join
from mpc_credit.scorecard.data import check_known, load_ids, load_owner_csv
from mpc_credit.scorecard.model import Scorecard, dump_model, load_model
from mpc_credit.vocabulary import Mode, Reveal


@dataclass(frozen=True)
class Simulation:
    """A `simulate` request."""

    model: Path
    data: Mapping[str, Path]
    receiver: str
    reveal: Reveal
    out: Path
    ids: Path | None = None
    mode: Mode = "shared"
    model_owner: str | None = None
    helpers: Sequence[str] = ()
    batch: int = 0  # 0: session.default_batch(reveal)
    timeout: float = 3600.0
    tls: bool = True


@dataclass
class Outcome:
    """What a finished simulation reports."""

    rows: int
    seconds: float  # from `go` to the last party done, TLS connection set-up included
    mpc_seconds: float = 0.0  # connections up to result, the slowest party
    received: dict[str, bool] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)  # each party's peak resident memory
    notes: list[str] = field(default_factory=list)  # CSV columns each party ignored, one line each


def parse_data_args(values: Sequence[str], flag: str = "--data") -> dict[str, Path]:
    """`owner=path` pairs from the command line (option `flag`)."""
    out: dict[str, Path] = {}
    for v in values:
        owner, sep, path = v.partition("=")
        if not sep or not owner or not path:
            raise UsageError(f"{flag} {v!r}: expected OWNER=PATH")
        check_name(owner, f"{flag} (a party name)")  # a party's folder and ledger file
        if owner in out:
            raise UsageError(f"{flag}: owner {owner!r} given twice")
        out[owner] = Path(path)
    return out


def _check(sim: Simulation, model: Scorecard) -> list[str]:
    """Validate the request against the model; returns the parties in pid order."""
    if model.part is not None:
        raise ModelError(f"{sim.model}: is one owner's part; simulate needs the full model")
    for owner in sim.data:
        if owner not in model.owners:
            raise UsageError(f"--data {owner}=...: {owner!r} owns no feature in {sim.model}")
    missing = [o for o in model.owners if o not in sim.data]
    if missing:
        raise UsageError(f"no --data for owner(s) {', '.join(missing)} of {sim.model}")
    parties = [*sim.data, *sim.helpers]
    make_plan(
        model,
        parties,
        mode=sim.mode,
        reveal=sim.reveal,
        receiver=sim.receiver,
        model_owner=sim.model_owner or sim.receiver,
    )
    return parties


def _request_ids(sim: Simulation, model: Scorecard) -> list[str]:
    """The ids to score: the receiver's request, checked against its own file."""
    own = sim.data.get(sim.receiver)
    if own is None:
        if sim.ids is None:
            raise UsageError(f"receiver {sim.receiver} holds no data: give --ids")
        return load_ids(sim.ids)
    table = load_owner_csv(own, model, sim.receiver)
    if sim.ids is None:
        if not table.ids:
            raise DataError(f"{own}: no applicants to score (the file has a header only)")
        return list(table.ids)
    ids = load_ids(sim.ids)
    check_known(ids, table, str(sim.ids))
    return ids


def _write_specs(
    sim: Simulation, model: Scorecard, parties: list[str], ids: list[str], work: Path, staged: Path
) -> list[Path]:
    """Each party's spec file, model part and TLS folder under `work`."""
    (work / "ids.txt").write_text("\n".join(ids) + "\n")
    tls = ephemeral_consortium(work / "tls", len(parties)) if sim.tls else [None] * len(parties)
    ports = free_ports(len(parties))
    model_owner = sim.model_owner or sim.receiver
    session = uuid.uuid4().hex
    specs = []
    for pid, party in enumerate(parties):
        folder = join(work, party, "", "party name")
        folder.mkdir(exist_ok=True)
        if sim.mode == "secret" and party == model_owner:
            model_file = sim.model.resolve()
        else:
            model_file = folder / "model-part.json"
            dump_model(model.split(party, sim.mode, helper=party in sim.helpers), model_file)
        spec = WorkerSpec(
            session=SessionSpec(
                session_id=session,
                party=party,
                parties=tuple(parties),
                mode=sim.mode,
                reveal=sim.reveal,
                receiver=sim.receiver,
                model_owner=model_owner,
                batch=sim.batch,
            ),
            addresses=tuple(("127.0.0.1", p) for p in ports),
            model=str(model_file),
            ids=str(work / "ids.txt"),
            data=str(sim.data[party].resolve()) if party in sim.data else None,
            out=str(staged) if party == sim.receiver else None,
            tls=str(tls[pid]) if tls[pid] is not None else None,
        )
        path = folder / "spec.json"
        path.write_text(spec.dumps())
        specs.append(path)
    return specs


def to_stderr(note: str) -> None:
    """The default `notice`: one line on stderr."""
    print(f"mpc-credit: {note}", file=sys.stderr, flush=True)


async def run_simulation(
    sim: Simulation,
    on_started: Callable[[dict[str, int]], None] | None = None,
    notice: Callable[[str], None] = to_stderr,
) -> Outcome:
    """Run the whole consortium; raise MpcCreditError (one line) on any failure.

    `on_started` receives each party's OS process id once the secure part has begun;
    `notice` each line a party reports before it (its CSV's columns the model does not use,
    one line per file), once.
    """
    model = load_model(sim.model)
    parties = _check(sim, model)
    ids = _request_ids(sim, model)
    out, staged = staged_output(sim.out, "--out")
    work = Path(tempfile.mkdtemp(prefix="mpc-credit-"))
    try:
        specs = _write_specs(sim, model, parties, ids, work, staged)
        notes: list[str] = []

        def ready(events: list[Event]) -> None:
            for ev in events:
                if isinstance(ev.get("note"), str):
                    notes.append(ev["note"])
                    notice(ev["note"])

        done = await run_parties(
            "mpc_credit.local.worker",
            list(zip(parties, specs)),
            sim.timeout,
            "scoring",
            on_started,
            on_ready=ready,
        )
        events = done.events
        received = {name: bool(ev.get("received")) for name, ev in zip(parties, events)}
        if not staged.exists():
            raise SessionError(f"receiver {sim.receiver} reported done but wrote no result")
        os.replace(staged, out)
        peak = {name: float(ev.get("peak_mb", 0.0)) for name, ev in zip(parties, events)}
        mpc_s = max(float(ev.get("mpc_s", 0.0)) for ev in events)
        return Outcome(len(ids), done.seconds, mpc_s, received, peak, notes)
    finally:
        staged.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def simulate(
    sim: Simulation,
    on_started: Callable[[dict[str, int]], None] | None = None,
    notice: Callable[[str], None] = to_stderr,
) -> Outcome:
    """Blocking wrapper around `run_simulation`."""
    return asyncio.run(run_simulation(sim, on_started, notice))
