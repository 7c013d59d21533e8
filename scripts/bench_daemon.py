"""Benchmark the consortium path: warm party daemons, embedded broker, the `score` CLI.

Run from the repository root::

    python scripts/bench_daemon.py [--single 30] [--cli 10] [--batch 10000]
                                   [--reveal decision] [--mode shared] [--json FILE]

It writes a random 20-feature scorecard and random data for `--batch` applicants over
bank, bureau and telco (fixed seed) into a temporary folder, creates a consortium there
(`pki init`), starts the embedded broker and three daemon processes, and measures:

- one applicant end to end with warm daemons: `score_request` in this process (what the
  CLI does after its imports) and the whole `mpc-credit score` command as a subprocess
  (adds Python start-up and imports); medians over the runs;
- the batch through the daemons, against `simulate` on the same data and reveal policy
  (`simulate`'s own figure counts from `go` to the last party done; its wall time adds
  process start-up and CSV loading).

Targets: single applicant median <= 300 ms; batch <= 1.2 x simulate. Results are checked
against the plaintext reference; any difference aborts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_credit.consortium.create import PartyPlan, init_consortium  # noqa: E402
from mpc_credit.consortium.requester import score_request  # noqa: E402
from mpc_credit.local import synthetic  # noqa: E402
from mpc_credit.local.consortium import (  # noqa: E402
    start_daemons,
    stop_daemons,
    wait_all_online,
)
from mpc_credit.local.ports import free_port_blocks, free_ports  # noqa: E402
from mpc_credit.local.simulate import Simulation, run_simulation  # noqa: E402
from mpc_credit.scorecard.model import dump_model  # noqa: E402
from mpc_credit.scorecard.reference import reference  # noqa: E402

OWNERS = ("bank", "bureau", "telco")


async def bench(args: argparse.Namespace, work: Path) -> dict[str, object]:
    rng = np.random.default_rng(7)
    model = synthetic.scorecard(rng, OWNERS)
    ids, tables = synthetic.tables(rng, model, args.batch)
    model_file = work / "model.json"
    dump_model(model, model_file)
    data = {}
    for o, t in tables.items():
        data[o] = work / f"{o}.csv"
        synthetic.write_owner_csv(t, data[o])
    (broker_port,) = free_ports(1)
    bases = free_port_blocks(3, 8)
    plans = [PartyPlan(o, "127.0.0.1", b, data[o]) for o, b in zip(OWNERS, bases)]
    cons_dir = work / "consortium"
    init_consortium(cons_dir, model_file, parties=plans, broker_port=broker_port, force=True)
    config = cons_dir / "bank" / "party.toml"
    broker = subprocess.Popen(
        [sys.executable, "-m", "mpc_credit", "broker", "--port", str(broker_port)],
        stdout=subprocess.DEVNULL,
    )
    procs = []
    out: dict[str, object] = {"batch": args.batch, "reveal": args.reveal, "mode": args.mode}
    try:
        time.sleep(0.5)
        procs = await start_daemons([cons_dir / o / "party.toml" for o in OWNERS])
        await wait_all_online(config)
        ref = reference(model, tables, ids, args.reveal).rows()
        want = dict((r[0], r) for r in ref)

        # warm-up, then one applicant in this process
        await score_request(config, ids[:1], reveal="score", mode=args.mode)
        single = []
        for i in range(args.single):
            r = await score_request(config, [ids[i]], reveal=args.reveal, mode=args.mode)
            assert r.rows == [want[ids[i]]], (r.rows, want[ids[i]])
            single.append(r.seconds)
        out["single_in_process_ms"] = _stats(single)

        # one applicant through the CLI command (a fresh Python process each time)
        cli = []
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for i in range(args.cli):
            t = time.perf_counter()
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mpc_credit",
                    "score",
                    "--config",
                    str(config),
                    "--applicant",
                    ids[i],
                    "--reveal",
                    args.reveal,
                    "--mode",
                    args.mode,
                    "--quiet",
                ],
                capture_output=True,
                env=env,
            )
            cli.append(time.perf_counter() - t)
            if p.returncode != 0:
                raise SystemExit(f"CLI failed: {p.stderr.decode().strip()}")
        out["single_cli_ms"] = _stats(cli)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mpc_credit.cli.app"], env=env, check=True)
        out["cli_import_ms"] = round(1000 * (time.perf_counter() - t), 1)

        # the batch through the daemons
        t = time.perf_counter()
        r = await score_request(config, ids, reveal=args.reveal, mode=args.mode, timeout=3600)
        daemon_s = time.perf_counter() - t
        assert r.rows == ref, "daemon batch differs from the reference"
        out["batch_daemon_s"] = round(daemon_s, 3)
    finally:
        await stop_daemons(procs)
        broker.terminate()
        broker.wait()

    # the same batch through simulate
    t = time.perf_counter()
    sim = await run_simulation(
        Simulation(
            model=model_file,
            data=data,
            receiver="bank",
            reveal=args.reveal,  # type: ignore[arg-type]
            out=work / "sim.csv",
            mode=args.mode,
        )  # type: ignore[arg-type]
    )
    wall = time.perf_counter() - t
    out["batch_simulate_s"] = round(sim.seconds, 3)
    out["batch_simulate_wall_s"] = round(wall, 3)
    out["batch_ratio_vs_simulate"] = round(daemon_s / sim.seconds, 3)
    out["batch_ratio_vs_simulate_wall"] = round(daemon_s / wall, 3)
    return out


def _stats(xs: list[float]) -> dict[str, float]:
    ms = sorted(1000 * x for x in xs)
    return {
        "median": round(statistics.median(ms), 1),
        "p90": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "min": round(ms[0], 1),
        "n": len(ms),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--single", type=int, default=30, help="in-process single-applicant runs")
    ap.add_argument("--cli", type=int, default=10, help="CLI single-applicant runs")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--reveal", default="decision")
    ap.add_argument("--mode", default="shared")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        res = asyncio.run(bench(args, Path(tmp)))
    single = res["single_in_process_ms"]["median"]  # type: ignore[index]
    cli = res["single_cli_ms"]["median"]  # type: ignore[index]
    ratio = res["batch_ratio_vs_simulate"]
    print("| measure | value | target |\n|---|---|---|")
    print(
        f"| one applicant, warm daemons, request path (median) | {single} ms | "
        f"<= 300 ms {'PASS' if single <= 300 else 'FAIL'} |"
    )
    print(
        f"| one applicant, whole `mpc-credit score` process (median) | {cli} ms | "
        f"<= 300 ms {'PASS' if cli <= 300 else 'FAIL'} |"
    )
    print(f"| `import mpc_credit.cli.app` alone | {res['cli_import_ms']} ms | |")
    print(
        f"| {res['batch']} applicants, daemons | {res['batch_daemon_s']} s | "
        f"<= 1.2 x simulate {'PASS' if ratio <= 1.2 else 'FAIL'} ({ratio}x) |"
    )
    print(
        f"| {res['batch']} applicants, simulate (go to done / wall) | "
        f"{res['batch_simulate_s']} s / {res['batch_simulate_wall_s']} s | |"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
