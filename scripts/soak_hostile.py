"""Soak the party daemons while one member misbehaves (issue 12).

Starts a consortium on loopback (fresh keys; mosquitto with the generated configuration when
its binary is installed, else the embedded broker; three daemons: bank, bureau, telco) and
sends steady good traffic from the honest requesters bank and bureau for --minutes: single
decisions and small batches, the reveal policies in turn, each result checked against the
plaintext reference. The time is cut into equal slices: a baseline, then one per way telco,
a member with its own valid keys and a requester policy of its own (score and decision
only), misbehaves:

1. `mpc-flood`: every other session, millions of empty MPC messages with distinct program
   counters to bank's MPC port (telco's daemon runs tests/attacks/hostile.py);
2. `idle`: idle TCP connections (no TLS) to the honest parties' MPC ports and to the broker,
   as many as the file-descriptor limit allows (at most --idle), closed at the slice's end;
   they leave from the parties' own address (a member on their host), or --idle-source;
3. `retained`: retained messages on telco's own session topics, --retained-rate a second;
4. `refused`: requests its policy refuses (reveal `reasons`), 100 ids each, --hostile-rate a
   second, published on the broker past its own daemon's checks;
5. `stall`: requests every party accepts (one id, `decision`, the longest deadline the policy
   allows, or --stall-timeout) whose MPC telco never joins, --hostile-rate a second.

Every --sample seconds it reads each process's VmRSS, VmHWM and open descriptors from /proc.
At the end it prints one row per slice: good requests sent, served, failed (reasons
counted), p50 and p99 latency, each party's and the broker's peak resident memory and
descriptors, with the p99 and the honest parties' peaks as ratios to the baseline; --json
writes the same figures. Everything runs on loopback and stops by itself.

    python scripts/soak_hostile.py [--minutes 30] [--json OUT] [--broker auto]
        [--slices baseline,idle] [--idle-source 127.0.0.2] [--keep DIR]

Slices share one consortium, so what a daemon remembers carries over (a requester's stalls
count for 10 minutes, the broker keeps retained messages): --slices runs a few on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_credit.consortium.broker import write_loopback_mosquitto_files  # noqa: E402
from mpc_credit.consortium.config import load_consortium  # noqa: E402
from mpc_credit.consortium.create import PartyPlan, init_consortium  # noqa: E402
from mpc_credit.consortium.requester import score_request  # noqa: E402
from mpc_credit.errors import MpcCreditError  # noqa: E402
from mpc_credit.jsonwire import WireError, read_event  # noqa: E402
from mpc_credit.local.consortium import start_daemons, stop_daemons, wait_all_online  # noqa: E402
from mpc_credit.local.ports import free_port_blocks, free_ports  # noqa: E402
from mpc_credit.scorecard.data import load_owner_csv  # noqa: E402
from mpc_credit.scorecard.model import load_model  # noqa: E402
from mpc_credit.scorecard.reference import reference  # noqa: E402
from mpc_credit.vocabulary import REVEALS  # noqa: E402
from scripts.bench_api import CLI, ENV, MOSQUITTO, start, stop, wait_port  # noqa: E402
from scripts.load_daemons import Tally, percentile  # noqa: E402
from tests.attacks import hostile  # noqa: E402

PARTIES = ROOT / "mpc_credit" / "demo"  # the demo consortium's files
MODEL = PARTIES / "bank" / "german-credit-demo.json"
OWNERS = ("bank", "bureau", "telco")  # pids 0, 1, 2: the flood's victim is pid 0, bank
HONEST = ("bank", "bureau")  # the honest requesters
HOSTILE = "telco"
HOSTILE_REVEALS = ["score", "decision"]  # telco's policy: `reasons` is refused
IDLE = "idle"
SLICES = ("baseline", hostile.MPC_FLOOD, IDLE, hostile.RETAINED, hostile.REFUSED, hostile.STALL)
MPC_PORTS = 8  # each party's MPC port range
GOOD_TIMEOUT = 30.0  # deadline of a good request
MAX_INFLIGHT = 16  # good requests open at once; beyond, a send is counted as `skipped`
BROKER_IDLE_SHARE = 0.5  # of the idle connections, the share aimed at the broker


# ---------------------------------------------------------------- the figures


@dataclass
class Slice:
    """One slice of the soak: its good requests and the processes' samples."""

    name: str
    tally: Tally = field(default_factory=Tally)
    samples: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    hostile: dict[str, int] = field(default_factory=dict)  # what telco's daemon did
    idle: dict[str, int] = field(default_factory=dict)  # what the idle flood held
    sent: int = 0

    def sample(self, pids: dict[str, int]) -> None:
        """VmRSS (MB), VmHWM (MB) and open descriptors of every process now."""
        for name, pid in pids.items():
            with contextlib.suppress(OSError, KeyError):
                mem = hostile.memory_kb(pid)
                row = (mem["VmRSS"] / 1024, mem["VmHWM"] / 1024, hostile.open_fds(pid))
                self.samples.setdefault(name, []).append(row)

    def peak(self, name: str) -> tuple[float, int]:
        """The process's peak VmRSS (MB) and peak descriptors sampled in this slice."""
        rows = self.samples.get(name) or [(float("nan"), float("nan"), 0)]
        return max(r[0] for r in rows), max(r[2] for r in rows)

    def figures(self) -> dict[str, Any]:
        t = self.tally
        lat = t.latencies
        return {
            "slice": self.name,
            "sent": self.sent,
            "served": t.outcomes["done"],
            "failed": self.sent - t.outcomes["done"] - t.outcomes["skipped"],
            "skipped": t.outcomes["skipped"],
            "wrong": t.wrong,
            "outcomes": dict(t.outcomes),
            "reasons": dict(t.reasons.most_common(8)),
            "p50_ms": round(1000 * percentile(lat, 0.5), 1) if lat else None,
            "p99_ms": round(1000 * percentile(lat, 0.99), 1) if lat else None,
            "peaks": {
                n: {"rss_mb": round(self.peak(n)[0], 1), "fds": self.peak(n)[1]}
                for n in self.samples
            },
            "vmhwm_mb": {n: round(rows[-1][1], 1) for n, rows in self.samples.items()},
            "hostile": self.hostile,
            "idle": self.idle,
        }


def reason_of(exc: MpcCreditError) -> str:
    """A failure's reason, with session ids and numbers folded so that alike ones count as one."""
    text = re.sub(r"\b[0-9a-f]{16,}\b", "<id>", str(exc))
    return re.sub(r"\d+(\.\d+)?", "N", text)[:110]


# ---------------------------------------------------------------- the consortium


def create(work: Path, tls: bool) -> int:
    """A fresh consortium in `work` (bank, bureau and telco may all request; telco only what
    HOSTILE_REVEALS allows); returns the broker port."""
    (port,) = free_ports(1)
    bases = free_port_blocks(len(OWNERS), MPC_PORTS)
    plans = [
        PartyPlan(o, "127.0.0.1", b, PARTIES / o / "applicants.csv") for o, b in zip(OWNERS, bases)
    ]
    init_consortium(
        work,
        MODEL,
        parties=plans,
        broker_port=port,
        broker_tls=tls,
        mpc_ports=MPC_PORTS,
        requesters=OWNERS,
        force=True,
    )
    cons_file = work / "consortium.json"
    data = json.loads(cons_file.read_text())
    data["policy"]["requesters"][HOSTILE]["reveal"] = HOSTILE_REVEALS
    cons_file.write_text(json.dumps(data, indent=2))
    return port


def start_broker(work: Path, port: int, kind: str) -> subprocess.Popen[bytes]:
    """mosquitto with the generated configuration, or the embedded broker; its log in a file
    (a pipe nobody reads would stall mosquitto once it fills: docs/deployment.md)."""
    if kind == "mosquitto":
        conf, _ = write_loopback_mosquitto_files(work, work / "mosquitto", port)
        proc = start([str(MOSQUITTO), "-c", str(conf)], work / "broker.log")
    else:
        proc = start([*CLI, "broker", "--port", str(port)], work / "broker.log")
    wait_port(port)
    return proc


async def start_hostile(config: Path, orders: Path) -> asyncio.subprocess.Process:
    """Telco's daemon with its hostile side (tests/attacks/hostile.py), once it is ready."""
    with open(config.parent / "daemon.log", "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.attacks.hostile", str(config), str(orders)),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            env=ENV,
        )
    assert proc.stdout is not None
    with contextlib.suppress(WireError, asyncio.TimeoutError):
        ev = await asyncio.wait_for(read_event(proc.stdout), 30)
        if ev is not None and ev["event"] == "ready":
            return proc
    await stop_daemons([proc])
    raise SystemExit(f"the hostile daemon did not start: see {config.parent / 'daemon.log'}")


def mpc_ports(work: Path, parties: tuple[str, ...]) -> list[int]:
    """Every MPC port of `parties`."""
    cons = load_consortium(work / "consortium.json")
    return [cons.party(p).mpc_port + k for p in parties for k in range(cons.party(p).mpc_ports)]


# ---------------------------------------------------------------- good traffic


class Traffic:
    """Good requests from the honest requesters at a steady rate, checked against the
    plaintext reference."""

    def __init__(self, work: Path, rate: float, seed: int = 12) -> None:
        self.work, self.rate = work, rate
        self.model = load_model(MODEL)
        self.tables = {
            o: load_owner_csv(PARTIES / o / "applicants.csv", self.model, o) for o in OWNERS
        }
        self.known = sorted(set.intersection(*(set(t.ids) for t in self.tables.values())))
        self.rng = random.Random(seed)
        self.reveals = itertools.cycle(REVEALS)
        self.requesters = itertools.cycle(HONEST)
        self.tasks: set[asyncio.Task[None]] = set()

    def next_request(self) -> tuple[str, list[str], str]:
        """Requester, ids (one, or a batch of 2 to 10 every fourth time), reveal."""
        n = 1 if self.rng.random() < 0.75 else self.rng.randint(2, 10)
        return next(self.requesters), self.rng.sample(self.known, n), next(self.reveals)

    async def run(self, current: Slice, end: float) -> None:
        """Send until `end` (monotonic), one request every 1/rate seconds."""
        while time.monotonic() < end:
            current.sent += 1
            if len(self.tasks) >= MAX_INFLIGHT:
                current.tally.outcomes["skipped"] += 1
            else:
                task = asyncio.ensure_future(self.one(current.tally, *self.next_request()))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(1 / self.rate)

    async def one(self, tally: Tally, requester: str, ids: list[str], reveal: str) -> None:
        """One good request, its outcome and latency in `tally`."""
        config = self.work / requester / "party.toml"
        t0 = time.perf_counter()
        try:
            out = await asyncio.wait_for(
                score_request(config, ids, reveal=reveal, timeout=GOOD_TIMEOUT), GOOD_TIMEOUT + 30
            )
        except asyncio.TimeoutError:
            tally.outcomes["hung"] += 1
            return
        except MpcCreditError as exc:
            tally.outcomes[exc.kind] += 1
            tally.reasons[reason_of(exc)] += 1
            return
        tally.latencies.append(time.perf_counter() - t0)
        tally.outcomes["done"] += 1
        if out.rows != reference(self.model, self.tables, ids, reveal).rows():  # type: ignore[arg-type]
            tally.wrong += 1

    async def drain(self) -> None:
        """Until every request sent has ended (each is bounded by its own timeout)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


# ---------------------------------------------------------------- the idle flood


class IdleFlood:
    """Idle TCP connections (no TLS handshake) to the broker and the honest parties' MPC
    ports, held until `stop`; in a thread of its own."""

    def __init__(self, broker_port: int, ports: list[int], budget: int, source: str) -> None:
        self.broker_port, self.ports, self.budget = broker_port, ports, budget
        self.source = (source, 0)  # the address the connections leave from
        self.held: list[socket.socket] = []
        self.counts: Counter[str] = Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self, port: int, what: str) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", port), 0.5, self.source)
            s.setblocking(False)  # so that `_prune` can peek without waiting
            self.held.append(s)
            self.counts[f"{what} opened"] += 1
        except OSError:
            self.counts[f"{what} refused"] += 1

    def _prune(self) -> None:
        """Close the connections the other end has closed (each still costs us a descriptor)."""
        alive = []
        for s in self.held:
            try:
                closed = s.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                s.close()
                self.counts["closed by the other end"] += 1
            else:
                alive.append(s)
        self.held = alive
        self.counts["peak held"] = max(self.counts["peak held"], len(alive))

    def _run(self) -> None:
        for _ in range(int(self.budget * BROKER_IDLE_SHARE)):  # bounded: the broker's share
            if self.stopping.is_set():
                return
            self._connect(self.broker_port, "broker")
        self._prune()
        last = time.monotonic()
        while not self.stopping.is_set():  # MPC ports listen only while a session connects
            for port in self.ports:
                if len(self.held) < self.budget:
                    self._connect(port, "MPC")
            if time.monotonic() - last > 1.0:
                self._prune()
                last = time.monotonic()
            self.stopping.wait(0.01)

    def __enter__(self) -> IdleFlood:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(30)
        self._prune()
        for s in self.held:
            s.close()
        self.held = []


def idle_budget(wanted: int) -> int:
    """How many idle connections this process can hold: the soft descriptor limit raised to
    the hard one, less a margin for the soak's own work."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return max(0, min(wanted, soft - 1024))


# ---------------------------------------------------------------- the soak


@dataclass
class Run:
    """A running consortium: where it is and its processes' pids."""

    work: Path
    broker_port: int
    orders: Path
    pids: dict[str, int]
    ids: list[str]  # applicant ids every party knows
    args: argparse.Namespace


def order(run: Run, mode: str) -> None:
    """Tell telco's daemon how to behave (it re-reads the file within a fraction of a second)."""
    a = run.args
    rate = a.retained_rate if mode == hostile.RETAINED else a.hostile_rate
    timeout = stall_deadline(run.work, a.stall_timeout)
    body = {"mode": mode, "rate": rate, "ids": run.ids[:100], "timeout": timeout}
    tmp = run.orders.with_suffix(".new")
    tmp.write_text(json.dumps(body))
    tmp.replace(run.orders)


def done_counts(run: Run) -> Counter[str]:
    """What telco's daemon has done so far, and how bank's audit log recorded telco's own
    requests (outcome and the reason's start)."""
    done: Counter[str] = Counter()
    with contextlib.suppress(OSError, ValueError):
        done.update(json.loads(run.orders.with_name(run.orders.name + ".done").read_text()))
    with contextlib.suppress(OSError), (run.work / "bank" / "audit.jsonl").open() as fh:
        for line in fh:
            with contextlib.suppress(ValueError, AttributeError):
                r = json.loads(line).get("record", {})
                if r.get("requester") == HOSTILE:
                    done[f"bank audit: {r.get('outcome')} {r.get('reason', '')[:60]}".strip()] += 1
    return done


def stall_deadline(work: Path, wanted: float | None) -> float:
    """The longest deadline the policy lets telco ask of a one-applicant request (or `wanted`):
    a stall is at its worst when it holds the others longest."""
    policy = json.loads((work / "consortium.json").read_text())["policy"]
    longest = policy.get("max_decision_seconds") or policy["max_session_seconds"]
    return min(wanted, longest) if wanted else float(longest) - 1.0


async def sampler(run: Run, slices: list[Slice]) -> None:
    """Sample every process into the current (last) slice, every --sample seconds."""
    while True:
        slices[-1].sample(run.pids)
        await asyncio.sleep(run.args.sample)


async def one_slice(run: Run, traffic: Traffic, s: Slice, seconds: float) -> None:
    """Good traffic for `seconds` while telco behaves as the slice says."""
    before = done_counts(run)
    order(run, s.name if s.name in hostile.MODES else hostile.QUIET)
    print(f"slice {s.name}: {seconds:.0f} s", flush=True)
    end = time.monotonic() + seconds
    if s.name == IDLE:
        ports = mpc_ports(run.work, HONEST)
        budget = idle_budget(run.args.idle)
        with IdleFlood(run.broker_port, ports, budget, run.args.idle_source) as flood:
            await traffic.run(s, end)
        s.idle = dict(flood.counts)
    else:
        await traffic.run(s, end)
    order(run, hostile.QUIET)
    s.sample(run.pids)
    await asyncio.sleep(1.5)  # the daemon's counters are written every second
    s.hostile = dict(done_counts(run) - before)


async def soak(args: argparse.Namespace, work: Path) -> list[Slice]:
    kind = args.broker if args.broker != "auto" else ("mosquitto" if MOSQUITTO else "embedded")
    port = create(work, kind == "mosquitto")
    traffic = Traffic(work, args.rate)
    orders = work / "orders.json"
    broker = start_broker(work, port, kind)
    procs: list[asyncio.subprocess.Process] = []
    slices: list[Slice] = []
    watch = None
    try:
        procs = await start_daemons([work / p / "party.toml" for p in HONEST])
        procs.append(await start_hostile(work / HOSTILE / "party.toml", orders))
        await wait_all_online(work / "bank" / "party.toml", timeout=30)
        pids = {**{p: proc.pid for p, proc in zip(OWNERS, procs)}, "broker": broker.pid}
        run = Run(work, port, orders, pids, traffic.known, args)
        print(f"consortium up: broker {kind} on 127.0.0.1:{port}, pids {pids}", flush=True)
        watch = asyncio.ensure_future(sampler(run, slices))
        for name in args.slices:
            slices.append(Slice(name))
            await one_slice(run, traffic, slices[-1], args.minutes * 60 / len(args.slices))
        await traffic.drain()
    finally:
        if watch is not None:
            watch.cancel()
        await stop_daemons(procs)
        stop([broker])
    return slices


# ---------------------------------------------------------------- the report


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base or value != value or base != base:
        return "-"
    return f"{value / base:.2f}x"


def table(rows: list[dict[str, Any]]) -> str:
    """One markdown row per slice, the p99 and the honest parties' peaks against the
    baseline's."""
    base = rows[0]
    names = list(base["peaks"])
    head = ["slice", "sent", "served", "failed", "skipped", "wrong", "p50 ms", "p99 ms", "p99/base"]
    head += [f"{n} peak RSS MB (/base)" for n in names] + [f"{n} peak fds" for n in names]
    out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in rows:
        cells = [r["slice"], r["sent"], r["served"], r["failed"], r["skipped"], r["wrong"]]
        cells += [r["p50_ms"] or "-", r["p99_ms"] or "-", ratio(r["p99_ms"], base["p99_ms"])]
        for n in names:
            rss = r["peaks"].get(n, {}).get("rss_mb")
            cells.append(f"{rss} ({ratio(rss, base['peaks'][n]['rss_mb'])})")
        cells += [r["peaks"].get(n, {}).get("fds", "-") for n in names]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def details(rows: list[dict[str, Any]]) -> str:
    """Per slice: failure reasons counted, what telco did, what the idle flood held."""
    out = []
    for r in rows:
        out.append(f"{r['slice']}: outcomes {r['outcomes']}")
        out += [f"    {n} x {reason}" for reason, n in r["reasons"].items()]
        if r["hostile"]:
            out.append(f"    telco did: {r['hostile']}")
        if r["idle"]:
            out.append(f"    idle flood: {r['idle']}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="in all, cut into equal slices")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto")
    ap.add_argument("--rate", type=float, default=1.0, help="good requests a second")
    ap.add_argument("--hostile-rate", type=float, default=2.0, help="refused/stalling a second")
    ap.add_argument("--retained-rate", type=float, default=20.0, help="retained messages a second")
    ap.add_argument("--stall-timeout", type=float, help="stalled requests' deadline (policy's)")
    ap.add_argument("--idle", type=int, default=4000, help="idle connections at most")
    ap.add_argument(
        "--idle-source",
        default="127.0.0.1",
        help="where idle connections leave from: 127.0.0.1, the parties' own address (a member "
        "on their host or network); 127.0.0.2, a stranger's, which MPC ports close at once",
    )
    ap.add_argument(
        "--slices",
        type=lambda text: text.split(","),
        default=list(SLICES),
        help=f"which slices, in order (default {','.join(SLICES)}); the first is the baseline",
    )
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--keep", type=Path, help="work in this new folder and keep it (logs, audit)")
    args = ap.parse_args()
    if not set(args.slices) <= set(SLICES):
        ap.error(f"--slices: choose from {','.join(SLICES)}")
    deadline = args.minutes * 60 + GOOD_TIMEOUT + 300  # set-up, drain and stop included
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        slices = asyncio.run(asyncio.wait_for(soak(args, work), deadline))
    rows = [s.figures() for s in slices]
    print(table(rows))
    print(details(rows))
    if args.json:
        figures = {"args": {k: str(v) for k, v in vars(args).items()}, "slices": rows}
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if any(r["wrong"] or r["outcomes"].get("hung") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
