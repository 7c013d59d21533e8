"""Load the party daemons: many single-applicant requests from two requesters at once.

Starts a consortium on this machine (fresh keys, the embedded broker on loopback, three
daemons: bank, bureau, telco, with bank and bureau both allowed to request) and sends
--requests requests in all, half from each requester, each requester keeping --inflight
requests open at a time. Every request must end: with its result (checked against the
plaintext reference) or with a refusal or failure that gives a reason; none may hang
past its deadline. Prints outcomes, throughput, p50 and p99 latency, and each daemon's
resident memory before and after.

    python scripts/load_daemons.py [--requests 200] [--inflight 4] [--reveal decision]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_credit.consortium.broker import start_embedded_broker  # noqa: E402
from mpc_credit.consortium.create import PartyPlan, init_consortium  # noqa: E402
from mpc_credit.consortium.requester import score_request  # noqa: E402
from mpc_credit.errors import MpcCreditError  # noqa: E402
from mpc_credit.local.consortium import start_daemons, stop_daemons, wait_all_online  # noqa: E402
from mpc_credit.local.ports import free_port_blocks, free_ports  # noqa: E402
from mpc_credit.local.worker import memory_mb  # noqa: E402
from mpc_credit.scorecard.data import load_owner_csv  # noqa: E402
from mpc_credit.scorecard.model import load_model  # noqa: E402
from mpc_credit.scorecard.reference import reference  # noqa: E402

PARTIES = ROOT / "mpc_credit" / "demo"  # the demo consortium's files
MODEL = PARTIES / "bank" / "german-credit-demo.json"
OWNERS = ("bank", "bureau", "telco")
REQUESTERS = ("bank", "bureau")


class Tally:
    """Outcomes and latencies of every request."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.wrong = 0


async def requester(
    config: Path,
    ids: list[str],
    expected: dict[str, list[str]],
    args: argparse.Namespace,
    tally: Tally,
) -> None:
    """Send one request per id, keeping `inflight` open at a time."""
    gate = asyncio.Semaphore(args.inflight)

    async def one(aid: str) -> None:
        async with gate:
            t0 = time.perf_counter()
            try:
                out = await asyncio.wait_for(
                    score_request(config, [aid], reveal=args.reveal, timeout=args.timeout),
                    args.timeout + 30,
                )
            except asyncio.TimeoutError:
                tally.outcomes["hung"] += 1
                return
            except MpcCreditError as exc:
                tally.outcomes[exc.kind] += 1
                tally.reasons[str(exc)[:100]] += 1
                return
            tally.latencies.append(time.perf_counter() - t0)
            tally.outcomes["done"] += 1
            if out.rows != [expected[aid]]:
                tally.wrong += 1

    await asyncio.gather(*(one(a) for a in ids))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def load(args: argparse.Namespace, work: Path) -> int:
    (port,) = free_ports(1)
    bases = free_port_blocks(len(OWNERS), 8)
    plans = [
        PartyPlan(o, "127.0.0.1", b, PARTIES / o / "applicants.csv") for o, b in zip(OWNERS, bases)
    ]
    init_consortium(work, MODEL, parties=plans, broker_port=port, requesters=REQUESTERS, force=True)
    model = load_model(MODEL)
    tables = {o: load_owner_csv(PARTIES / o / "applicants.csv", model, o) for o in OWNERS}
    known = sorted(set(tables["bank"].ids) & set(tables["bureau"].ids))
    rng = random.Random(11)
    per = args.requests // len(REQUESTERS)
    broker = await start_embedded_broker("127.0.0.1", port)
    procs = await start_daemons([work / o / "party.toml" for o in OWNERS])
    tally = Tally()
    try:
        await wait_all_online(work / "bank" / "party.toml")
        before = [memory_mb("VmRSS", p.pid) for p in procs]
        jobs = []
        for r in REQUESTERS:
            ids = rng.sample(known, per)
            rows = reference(model, tables, ids, args.reveal).rows()  # type: ignore[arg-type]
            expected = {row[0]: row for row in rows}
            jobs.append(requester(work / r / "party.toml", ids, expected, args, tally))
        t0 = time.perf_counter()
        await asyncio.gather(*jobs)
        seconds = time.perf_counter() - t0
        after = [memory_mb("VmRSS", p.pid) for p in procs]
    finally:
        await stop_daemons(procs)
        await broker.shutdown()
    lat = tally.latencies
    print(
        f"{args.requests} requests ({per} each from {', '.join(REQUESTERS)}), "
        f"{args.inflight} in flight per requester, reveal {args.reveal}"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| outcomes | {', '.join(f'{k} {v}' for k, v in sorted(tally.outcomes.items()))} |")
    for reason, n in tally.reasons.most_common(5):
        print(f"| refusal/failure | {n} x {reason} |")
    print(f"| wrong results | {tally.wrong} |")
    print(f"| wall time | {seconds:.1f} s |")
    print(f"| throughput | {len(lat) / seconds:.1f} completed requests/s |")
    print(
        f"| latency p50 / p99 | {1000 * percentile(lat, 0.5):.0f} / "
        f"{1000 * percentile(lat, 0.99):.0f} ms |"
    )
    if lat:
        print(f"| latency mean | {1000 * statistics.mean(lat):.0f} ms |")
    for o, b, a in zip(OWNERS, before, after):
        print(f"| {o} resident memory | {b:.0f} MB -> {a:.0f} MB |")
    return 1 if tally.wrong or tally.outcomes["hung"] else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--reveal", default="decision")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpc-credit-load-") as tmp:
        return asyncio.run(load(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
