"""A whole consortium on this machine: fresh keys, the embedded broker, one daemon per party.

Used by `mpc-credit demo` (after the one-shot simulation), by scripts/bench_daemon.py and
by the tests: it exercises the path a deployment takes, with every party on localhost.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.errors import MpcCreditError, UsageError
from mpc_credit.jsonwire import WireError, read_event
from mpc_credit.local.ports import free_port_blocks, free_ports
from mpc_credit.scorecard.model import load_model


@dataclass
class DemoOutcome:
    """What `run_local_consortium_demo` did."""

    columns: list[str]
    rows: list[list[str]]
    seconds: float  # the scoring request, end to end, with warm daemons
    startup_seconds: float  # broker and daemons up


async def run_local_consortium_demo(
    model: str | Path,
    data: Mapping[str, str | Path],
    *,
    applicants: Sequence[str] | None = None,
    reveal: str = "reasons",
    mode: str = "shared",
    echo: Callable[[str], None] = print,
    workdir: str | Path | None = None,
) -> DemoOutcome:
    """The whole consortium path on localhost: a fresh consortium (keys, certificates,
    configurations) in a temporary folder, the embedded broker, one daemon process per
    party, and one signed request from the first party's CLI side for `applicants`
    (default: the first 3 ids of that party's file). Everything is stopped afterwards.
    """

    from mpc_credit.consortium.broker import start_embedded_broker
    from mpc_credit.consortium.create import PartyPlan, init_consortium
    from mpc_credit.consortium.requester import score_request

    t0 = time.perf_counter()
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="mpc-credit-consortium-")) if own else Path(workdir)  # type: ignore[arg-type]
    (port,) = free_ports(1)
    plans = [PartyPlan(p, data=Path(d).resolve()) for p, d in data.items()]
    bases = free_port_blocks(len(plans), 4)
    plans = [PartyPlan(p.name, "127.0.0.1", b, p.data) for p, b in zip(plans, bases)]
    procs: list[asyncio.subprocess.Process] = []
    broker = None
    try:
        init_consortium(
            work, model, parties=plans, name="demo", broker_port=port, mpc_ports=4, force=True
        )
        broker = await start_embedded_broker("127.0.0.1", port)
        echo(f"consortium: broker on 127.0.0.1:{port}, {len(plans)} party daemons")
        procs = await start_daemons([work / p.name / "party.toml" for p in plans])
        await wait_all_online(work / plans[0].name / "party.toml")
        startup = time.perf_counter() - t0
        first = plans[0]
        ids = list(applicants or [])
        if not ids:
            from mpc_credit.scorecard.data import load_owner_csv as _load

            ids = list(_load(first.data, load_model(model), first.name).ids[:3])  # type: ignore[arg-type]
        t1 = time.perf_counter()
        out = await score_request(
            work / first.name / "party.toml",
            ids,
            reveal=reveal,
            mode=mode,
            progress=lambda m: echo(f"  {m}"),
        )
        seconds = time.perf_counter() - t1
        return DemoOutcome(out.columns, out.rows, seconds, startup)
    finally:
        await stop_daemons(procs)
        if broker is not None:
            await broker.shutdown()
        if own:
            shutil.rmtree(work, ignore_errors=True)


async def wait_all_online(config: str | Path, timeout: float = 15.0) -> None:
    """Until the party's daemon is connected and sees every consortium party online."""
    from mpc_credit.consortium.requester import daemon_status

    names = load_consortium(load_party_config(config).consortium_file).names
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(MpcCreditError, OSError, ValueError):
            st = await daemon_status(config)
            if st["connected"] and all(st["presence"].get(n) == "online" for n in names):
                return
        if time.monotonic() > deadline:
            raise UsageError(f"the consortium of {config} did not come online in {timeout:.0f} s")
        await asyncio.sleep(0.05)


def daemon_argv(config: str | Path) -> list[str]:
    """The command that runs one party's daemon: `mpc-credit party run --config CONFIG`."""
    return [sys.executable, "-m", "mpc_credit", "party", "run", "--config", str(config)]


async def start_daemons(
    configs: Sequence[Path], timeout: float = 30.0
) -> list[asyncio.subprocess.Process]:
    """Start one daemon process per config and wait until each is connected.

    Each daemon's log (stderr) goes to `daemon.log` beside its config, so that no pipe
    can fill up and stall a daemon that keeps running.
    """
    procs = []
    for cfg in configs:
        with open(Path(cfg).parent / "daemon.log", "ab") as log:
            procs.append(
                await asyncio.create_subprocess_exec(
                    *daemon_argv(cfg),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )
            )
    for cfg, p in zip(configs, procs):
        assert p.stdout is not None
        try:
            ev = await asyncio.wait_for(read_event(p.stdout), timeout)
        except WireError:
            ev = None
        if ev is None or ev["event"] != "ready":
            await stop_daemons(procs)
            err = (Path(cfg).parent / "daemon.log").read_text(errors="replace").strip().splitlines()
            raise UsageError(f"daemon {cfg} did not start: {err[-1] if err else 'no output'}")
    return procs


async def stop_daemons(procs: Sequence[asyncio.subprocess.Process], timeout: float = 10.0) -> None:
    """SIGTERM (drain), then SIGKILL after `timeout`."""
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()
