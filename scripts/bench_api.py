"""Benchmark the HTTP API: `mpc-credit serve` -> the bank's daemon -> three daemons -> broker.

Run from the repository root::

    python scripts/bench_api.py [--broker mosquitto|embedded] [--single 300] [--cli 20]
                                [--batch 1000] [--concurrent 200 --threads 8]
                                [--reveal decision] [--json F]

It writes a random 20-feature scorecard and random data for `--batch` applicants over bank,
bureau and telco (fixed seed) into a temporary folder, creates a consortium there (`pki
init`), starts the broker, three daemon processes and `mpc-credit serve` on loopback, all
warm, and measures:

- one applicant per call through the API (`--single` calls in a row over one keep-alive
  connection): p50 and p99, next to the same request made in process through the control
  socket (`score_request`: the daemon path without HTTP) and the `mpc-credit score` command
  (a fresh Python process per call: the baseline a caller without the API pays); the
  in-process calls also time the daemon's progress events (request published, every party
  accepted, MPC links up, computed, own `done` reported), which show where a decision's
  time goes;
- the control socket alone: a `status` round trip (connection per call, as the server does);
- `--batch` applicants as one batch job (upload, poll, result CSV) against `mpc-credit score
  --batch --out` (both checked equal);
- `--concurrent` decision calls from `--threads` client threads: all must be answered 200;
  p50 and p99; the server's and the daemons' resident memory before and after.

The broker is mosquitto when its binary is installed (the consortium then has broker TLS
and mosquitto runs the configuration `write_mosquitto_files` generates, as a deployment
would), else the embedded amqtt broker (plain TCP on loopback); `--broker` chooses.

Every API result is checked against the plaintext reference; a difference aborts. The
machine may be shared with other jobs: run it twice and read the figures as indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_credit.api.tokens import create_token  # noqa: E402
from mpc_credit.consortium.broker import write_mosquitto_files  # noqa: E402
from mpc_credit.consortium.config import load_consortium, load_party_config  # noqa: E402
from mpc_credit.consortium.create import PartyPlan, init_consortium  # noqa: E402
from mpc_credit.consortium.requester import daemon_status, score_request  # noqa: E402
from mpc_credit.local import synthetic  # noqa: E402
from mpc_credit.local.consortium import daemon_argv  # noqa: E402
from mpc_credit.local.ports import free_port_blocks, free_ports  # noqa: E402
from mpc_credit.scorecard.model import dump_model  # noqa: E402
from mpc_credit.scorecard.reference import reference  # noqa: E402

OWNERS = ("bank", "bureau", "telco")
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
CLI = [sys.executable, "-m", "mpc_credit"]
# the daemon's progress messages during one decision (mpc_credit.consortium.daemon), in order
PHASES = (
    ("request published", "request "),
    ("every party accepted", "all parties accepted"),
    ("MPC links up", "connected to all parties"),
    ("computed", "secure computation done"),
    ("own 'done' reported", "result received"),
)
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stats(xs: list[float]) -> dict[str, float]:
    ms = sorted(1000 * x for x in xs)
    return {
        "p50": round(statistics.median(ms), 1),
        "p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
        "n": len(ms),
    }


class Clock:
    """When each of PHASES' progress messages arrived, in seconds from the clock's start."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.seen: dict[str, float] = {}

    def mark(self, message: str) -> None:
        for phase, start in PHASES:
            if message.startswith(start):
                self.seen.setdefault(phase, time.perf_counter() - self.t0)


def ok(r: httpx.Response) -> httpx.Response:
    """`r` if it succeeded, else exit with its status and problem."""
    if r.is_success:
        return r
    raise SystemExit(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")


def wait_http(url: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=fh)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    model = synthetic.scorecard(rng, OWNERS)
    ids, tables = synthetic.tables(rng, model, args.batch)
    model_file = work / "model.json"
    dump_model(model, model_file)
    data = {}
    for o, t in tables.items():
        data[o] = work / f"{o}.csv"
        synthetic.write_owner_csv(t, data[o])
    (broker_port, api_port) = free_ports(2)
    plans = [PartyPlan(o, "127.0.0.1", b, data[o]) for o, b in zip(OWNERS, free_port_blocks(3, 8))]
    cons = work / "consortium"
    tls = args.broker == "mosquitto"
    init_consortium(
        cons, model_file, parties=plans, broker_port=broker_port, broker_tls=tls, force=True
    )
    config = cons / "bank" / "party.toml"
    token = create_token(config.parent / "serve-tokens.json", "bench", [args.reveal], 1_000_000)
    want = {r[0]: r for r in reference(model, tables, ids, args.reveal).rows()}
    url = f"http://127.0.0.1:{api_port}"
    if tls:
        conf, _ = write_mosquitto_files(
            load_consortium(cons / "consortium.json"),
            work / "mosquitto",
            cons / "broker",
            port=broker_port,
            bind="127.0.0.1",
            user="root" if os.geteuid() == 0 else None,
        )
        broker = start([MOSQUITTO, "-c", str(conf)], work / "broker.log")  # type: ignore[list-item]
    else:
        broker = start([*CLI, "broker", "--port", str(broker_port)], work / "broker.log")
    wait_port(broker_port)
    daemons = [start(daemon_argv(cons / o / "party.toml"), work / f"{o}.log") for o in OWNERS]
    server = start(
        [*CLI, "serve", "--config", str(config), "--port", str(api_port)],
        work / "serve.log",
    )
    out: dict[str, Any] = {"applicants": args.batch, "reveal": args.reveal, "broker": args.broker}
    try:
        wait_http(url + "/readyz")
        body = lambda aid: {"applicants": [aid], "reveal": args.reveal}  # noqa: E731
        headers = {"Authorization": f"Bearer {token}"}

        # one applicant per call, warm, over one keep-alive connection
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            for i in range(10):
                ok(c.post("/v1/decisions", json=body(ids[i])))
            lat = []
            for i in range(args.single):
                aid = ids[i % len(ids)]
                t = time.perf_counter()
                r = c.post("/v1/decisions", json=body(aid))
                lat.append(time.perf_counter() - t)
                ok(r)
                got = [str(v) for v in r.json()["results"][0].values()]
                assert got == want[aid], (got, want[aid])
        out["api_single_ms"] = stats(lat)

        # the same through the control socket in process (with the time of each progress
        # event the daemon sends: where a decision's time goes), and a status round trip
        async def in_process() -> tuple[list[float], list[float]]:
            cfg = load_party_config(config)
            xs, ys = [], []
            for i in range(min(args.single, 100)):
                clock = Clock()
                await score_request(cfg, [ids[i]], reveal=args.reveal, progress=clock.mark)
                xs.append(time.perf_counter() - clock.t0)
                for phase, at in clock.seen.items():
                    phases.setdefault(phase, []).append(at)
            for _ in range(200):
                t = time.perf_counter()
                await daemon_status(cfg)
                ys.append(time.perf_counter() - t)
            return xs, ys

        phases: dict[str, list[float]] = {}
        socket_single, status_rt = asyncio.run(in_process())
        out["socket_single_ms"] = stats(socket_single)
        out["phases_ms"] = {k: stats(phases[k]) for k, _ in PHASES if k in phases}
        out["socket_status_ms"] = stats(status_rt)
        t = time.perf_counter()
        for _ in range(1000):
            load_party_config(config)
        out["read_party_toml_us"] = round(1e6 * (time.perf_counter() - t) / 1000, 1)

        # the CLI baseline: a fresh process per call
        score = [*CLI, "score", "--config", str(config), "--reveal", args.reveal]
        cli = []
        for i in range(args.cli):
            t = time.perf_counter()
            p = subprocess.run(
                [*score, "--applicant", ids[i], "--quiet"],
                capture_output=True,
                env=ENV,
            )
            cli.append(time.perf_counter() - t)
            if p.returncode != 0:
                raise SystemExit(f"CLI failed: {p.stderr.decode().strip()}")
        out["cli_single_ms"] = stats(cli)

        # the batch: API job against `score --batch --out`
        upload = ("applicant_id\n" + "".join(f"{a}\n" for a in ids)).encode()
        with httpx.Client(base_url=url, headers=headers, timeout=600) as c:
            t = time.perf_counter()
            r = c.post(
                "/v1/batches",
                params={"reveal": args.reveal},
                content=upload,
                headers={"Content-Type": "text/csv"},
            )
            job = ok(r).json()
            while job["state"] in ("queued", "running"):
                time.sleep(0.05)
                job = c.get(f"/v1/batches/{job['id']}").json()
            if job["state"] != "done":
                raise SystemExit(f"batch job failed: {job['error']}")
            api_csv = c.get(job["result"]).text
            out["api_batch_s"] = round(time.perf_counter() - t, 3)
        (work / "ids.txt").write_text("\n".join(ids) + "\n")
        t = time.perf_counter()
        subprocess.run(
            [*score, "--batch", str(work / "ids.txt"), "--out", str(work / "cli.csv"), "--quiet"],
            check=True,
            capture_output=True,
            env=ENV,
        )
        out["cli_batch_s"] = round(time.perf_counter() - t, 3)
        assert api_csv == (work / "cli.csv").read_text(), "API batch differs from the CLI's"

        # concurrent calls from client threads
        pids = {"serve": server.pid, **{o: d.pid for o, d in zip(OWNERS, daemons)}}
        out["rss_before_mb"] = {k: round(rss_mb(p), 1) for k, p in pids.items()}

        def worker(k: int) -> list[tuple[int, float]]:
            got = []
            with httpx.Client(base_url=url, headers=headers, timeout=300) as c:
                for i in range(k, args.concurrent, args.threads):
                    aid = ids[i % len(ids)]
                    t = time.perf_counter()
                    r = c.post("/v1/decisions", json=body(aid))
                    got.append((r.status_code, time.perf_counter() - t))
                    if r.status_code == 200:
                        vals = [str(v) for v in r.json()["results"][0].values()]
                        assert vals == want[aid]
            return got

        t = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            results = [x for xs in pool.map(worker, range(args.threads)) for x in xs]
        wall = time.perf_counter() - t
        codes: dict[int, int] = {}
        for code, _ in results:
            codes[code] = codes.get(code, 0) + 1
        out["concurrent"] = {
            **stats([s for _, s in results]),
            "statuses": codes,
            "wall_s": round(wall, 2),
            "calls_per_s": round(len(results) / wall, 1),
        }
        out["rss_after_mb"] = {k: round(rss_mb(p), 1) for k, p in pids.items()}
    except BaseException:
        stop([server, *daemons])
        stop([broker])
        for f in sorted(work.glob("*.log")):  # the temporary folder goes with the error
            tail = f.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {f.name} (last lines)", *tail, sep="\n", file=sys.stderr)
        raise
    stop([server, *daemons])
    stop([broker])  # last: the daemons say offline through it
    return out


def table(res: dict[str, Any], args: argparse.Namespace) -> str:
    api, sock, cli = res["api_single_ms"], res["socket_single_ms"], res["cli_single_ms"]
    conc = res["concurrent"]
    rows = [
        ("measure", "p50", "p99", "note"),
        ("---", "---", "---", "---"),
        (f"API, one applicant ({api['n']} calls)", api["p50"], api["p99"], "ms, keep-alive"),
        (
            f"control socket in process ({sock['n']})",
            sock["p50"],
            sock["p99"],
            f"ms; HTTP adds {api['p50'] - sock['p50']:.1f} ms at p50",
        ),
        (
            f"`mpc-credit score` command ({cli['n']})",
            cli["p50"],
            cli["p99"],
            f"ms; API / CLI = {api['p50'] / cli['p50']:.2f}",
        ),
        (
            "control socket status round trip",
            res["socket_status_ms"]["p50"],
            res["socket_status_ms"]["p99"],
            f"ms; reading party.toml: {res['read_party_toml_us']} us",
        ),
        (
            f"{res['applicants']} applicants, API batch job",
            res["api_batch_s"],
            "",
            f"s; CLI --batch --out: {res['cli_batch_s']} s "
            f"(ratio {res['api_batch_s'] / res['cli_batch_s']:.2f})",
        ),
        (
            f"{args.concurrent} calls from {args.threads} threads",
            conc["p50"],
            conc["p99"],
            f"ms; statuses {conc['statuses']}; {conc['calls_per_s']} calls/s",
        ),
    ]
    text = "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in rows)
    before, after = res["rss_before_mb"], res["rss_after_mb"]
    mem = ", ".join(f"{k} {before[k]} -> {after[k]}" for k in before)
    where = (
        "mosquitto (generated configuration, broker TLS)"
        if res["broker"] == "mosquitto"
        else "embedded amqtt (plain TCP on loopback)"
    )
    marks = [f"{k} {v['p50']}" for k, v in res["phases_ms"].items()]
    marks.append(f"result {sock['p50']}")
    phases = (
        "One decision through the control socket, ms from the call at p50 (the daemon's "
        "progress events):\n" + ", ".join(marks)
    )
    mem = f"RSS (MB) before -> after the concurrent calls: {mem}"
    return f"broker: {where}\n\n{text}\n\n{phases}\n\n{mem}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--broker",
        choices=("mosquitto", "embedded"),
        default="mosquitto" if MOSQUITTO else "embedded",
        help="the control-plane broker (default: mosquitto when installed)",
    )
    ap.add_argument("--single", type=int, default=300, help="one-applicant API calls")
    ap.add_argument("--cli", type=int, default=20, help="one-applicant CLI runs")
    ap.add_argument("--batch", type=int, default=1000, help="applicants (and batch size)")
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--reveal", default="decision")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.broker == "mosquitto" and MOSQUITTO is None:
        ap.error("--broker mosquitto: the mosquitto binary is absent (apt-get install mosquitto)")
    print(f"bench_api: broker {args.broker}, starting", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        res = run(args, Path(tmp))
    print(table(res, args))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
