"""Soak the party daemons: many sessions in a row, watching each daemon's memory.

A long-lived daemon must not grow with every session (MPyC runtimes, tasks, caches).
This starts the demo consortium (embedded broker, three daemons), sends --sessions
requests one after another and prints each daemon's resident memory as it goes.

    python scripts/soak_daemons.py [--sessions 200] [--reveal reasons]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_credit.consortium.broker import start_embedded_broker  # noqa: E402
from mpc_credit.consortium.create import PartyPlan, init_consortium  # noqa: E402
from mpc_credit.consortium.requester import score_request  # noqa: E402
from mpc_credit.local.consortium import start_daemons, stop_daemons, wait_all_online  # noqa: E402
from mpc_credit.local.ports import free_port_blocks, free_ports  # noqa: E402
from mpc_credit.local.worker import memory_mb  # noqa: E402

PARTIES = ROOT / "mpc_credit" / "demo"  # the demo consortium's files
OWNERS = ("bank", "bureau", "telco")


async def soak(sessions: int, reveal: str, work: Path) -> None:
    (port,) = free_ports(1)
    bases = free_port_blocks(len(OWNERS), 4)
    plans = [
        PartyPlan(o, "127.0.0.1", b, PARTIES / o / "applicants.csv") for o, b in zip(OWNERS, bases)
    ]
    model = PARTIES / "bank" / "german-credit-demo.json"
    init_consortium(work, model, parties=plans, broker_port=port, mpc_ports=4, force=True)
    broker = await start_embedded_broker("127.0.0.1", port)
    procs = await start_daemons([work / p.name / "party.toml" for p in plans])
    config = work / "bank" / "party.toml"
    try:
        await wait_all_online(config)
        print("| sessions | seconds | " + " | ".join(f"{o} MB" for o in OWNERS) + " |")
        print("|---:|---:|" + "---:|" * len(OWNERS))
        t0 = time.perf_counter()
        marks = {1, 10, 50, sessions} | set(range(100, sessions + 1, 100))
        for i in range(1, sessions + 1):
            await score_request(config, ["A0191", "A0867"], reveal=reveal)
            if i in marks:
                mem = " | ".join(f"{memory_mb('VmRSS', p.pid):.0f}" for p in procs)
                print(f"| {i} | {time.perf_counter() - t0:.1f} | {mem} |", flush=True)
    finally:
        await stop_daemons(procs)
        await broker.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--reveal", default="reasons")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpc-credit-soak-") as tmp:
        asyncio.run(soak(args.sessions, args.reveal, Path(tmp)))


if __name__ == "__main__":
    main()
