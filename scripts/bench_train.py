"""Joint training on German credit against optbinning + scikit-learn on the pooled data.

Run from the repository root::

    python scripts/bench_train.py [--seed 7] [--epsilon E] [--runs 1] [--c 1.0] [--clip 4.0]
        [--sigmoid poly|linear]

Splits the 1000 applicants 70/30 (fixed seed), deals the features to bank (lender, labels),
bureau and telco as the demo does (scripts/train_demo.py OWNERS), and runs the training
session (mpc_credit.training.session) in 3 party processes over loopback, each building its
own table from its own columns of the training rows only. The model owner (bank) returns the
model; the launcher scores the 300 held-out applicants with it in plaintext (the engine's MPC
scoring gives the same integers) and prints the test AUC next to optbinning's Scorecard fitted
on the pooled training rows, and the seconds of each phase (slowest party). Without
--epsilon the run has no DP; with it, --runs repeats the training to report mean and spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from train_demo import DEFAULT_DATA, OWNERS, PARTIES, fit_scorecard, load_data  # noqa: E402

from mpc_credit.engine.runtime import make_runtime  # noqa: E402
from mpc_credit.local.ports import free_ports  # noqa: E402
from mpc_credit.scorecard.model import from_dict  # noqa: E402
from mpc_credit.training.session import Options, Setup, Table, train  # noqa: E402

LENDER = MODEL_OWNER = "bank"


def split(seed: int):
    """Features, labels and ids of the training and test rows."""
    frame, y, ids = load_data(DEFAULT_DATA)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.7 * len(y))
    return frame, y, np.array(ids), order[:cut], order[cut:]


def column(frame, name: str, rows: np.ndarray) -> np.ndarray:
    values = frame[name].to_numpy()[rows]
    return values.astype(float) if values.dtype.kind in "iuf" else values.astype(object)


def party_table(party: str, seed: int) -> Table:
    """One party's own training table: its columns of the training rows; labels at the lender."""
    frame, y, ids, train_rows, _ = split(seed)
    mine = [c for c, o in OWNERS.items() if o == party]
    labels = y[train_rows] if party == LENDER else None
    return Table(list(ids[train_rows]), {c: column(frame, c, train_rows) for c in mine}, labels)


async def party_main(pid: int, ports: list[int], args: argparse.Namespace) -> dict:
    fast = {"sigmoid": "linear", "newton_steps": 2} if args.sigmoid == "linear" else {}
    opts = Options("joint-german", 500, epsilon=args.epsilon, c=args.c, clip=args.clip, **fast)
    setup = Setup(PARTIES, LENDER, MODEL_OWNER, opts)
    table = party_table(PARTIES[pid], args.seed)
    mpc = make_runtime(pid, [("127.0.0.1", p) for p in ports], ssl=False)
    await mpc.start()
    out = await train(mpc, setup, table)
    await mpc.shutdown()
    return {"model": out.model, "seconds": out.seconds, "kept": out.kept}


def run_once(args: argparse.Namespace) -> tuple[dict, dict[str, float]]:
    """The model and the slowest party's seconds per phase."""
    ports = free_ports(3)
    eps = [] if args.epsilon is None else ["--epsilon", str(args.epsilon)]
    eps += ["--c", str(args.c), "--clip", str(args.clip), "--seed", str(args.seed)]
    eps += ["--sigmoid", args.sigmoid]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--party",
                str(pid),
                "--ports",
                *map(str, ports),
                *eps,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for pid in range(3)
    ]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit(f"a party failed (exit {p.returncode})")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    model = outs[PARTIES.index(MODEL_OWNER)]["model"]
    phases = {k: max(o["seconds"][k] for o in outs) for k in outs[0]["seconds"]}
    return model, phases


def scores(model: dict, frame, rows: np.ndarray) -> np.ndarray:
    card = from_dict(model)
    total = np.full(len(rows), card.intercept, dtype=np.int64)
    for f in card.features:
        total += f.bin_points[f.bins(column(frame, f.name, rows))]
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epsilon", type=float, default=None)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--c", type=float, default=1.0, help="inverse regularization (sklearn's C)")
    ap.add_argument("--clip", type=float, default=4.0, help="WOE clip bound B")
    ap.add_argument("--sigmoid", choices=["poly", "linear"], default="poly")
    ap.add_argument("--party", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ports", type=int, nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.party is not None:
        out = asyncio.run(party_main(args.party, args.ports, args))
        print(json.dumps(out), flush=True)
        return 0
    from sklearn.metrics import roc_auc_score

    frame, y, _, train_rows, test_rows = split(args.seed)
    t0 = time.perf_counter()
    reference = fit_scorecard(frame.iloc[train_rows], y[train_rows])
    ref_s = time.perf_counter() - t0
    ref_auc = roc_auc_score(y[test_rows], -reference.score(frame.iloc[test_rows]))
    aucs = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        model, phases = run_once(args)
        wall = time.perf_counter() - t0
        aucs.append(roc_auc_score(y[test_rows], -scores(model, frame, test_rows)))
        print(
            f"joint run: test AUC {aucs[-1]:.4f}, {len(model['features'])} features, "
            f"{wall:.1f} s wall; phases (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()),
            flush=True,
        )
    dp = "no DP" if args.epsilon is None else f"epsilon {args.epsilon:g} (delta 1e-6)"
    dp += f", C {args.c:g}, WOE clip {args.clip:g}, {args.sigmoid} sigmoid"
    print(f"German credit, 70/30 split seed {args.seed}, {len(train_rows)} training rows, {dp}")
    print(f"  optbinning + scikit-learn, pooled: test AUC {ref_auc:.4f} ({ref_s:.1f} s)")
    spread = f" (sd {statistics.stdev(aucs):.4f}, {len(aucs)} runs)" if len(aucs) > 1 else ""
    print(f"  joint training, 3 parties:          test AUC {statistics.mean(aucs):.4f}{spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
