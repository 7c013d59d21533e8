"""Joint training on German credit against optbinning + scikit-learn on the pooled data.

Run from the repository root::

    python scripts/bench_train.py [--seed 7] [--epsilon E] [--runs 1] [--c 1.0] [--clip B]
        [--bins 10] [--min-iv 0.02] [--regression quadratic|logistic] [--json FILE]

Splits the 1000 applicants 70/30 (fixed seed), deals the features to bank (lender, labels),
bureau and telco as the demo does (scripts/train_demo.py OWNERS), writes each party's CSV (the
bank's with the label column `default`) and the holdout ids, and runs `mpc-credit train`'s path
(mpc_credit.local.train: 3 party processes over mutual TLS, each reading only its own CSV, the
holdout then scored by the engine's MPC scoring and AUC computed at the lender). Prints the test
AUC next to optbinning's Scorecard fitted on the pooled training rows, the wall seconds end to
end (launch to holdout metrics) and the seconds of each training phase (slowest party). Without
--epsilon the run has no DP; with it, --runs repeats the training to report mean, standard
deviation, min and max (the ledgers go to a temporary folder). The split's seed stays fixed; what
varies between runs is what `train` draws from the OS's randomness each time: the DP noise and
the lender's secret row permutation (they cannot be seeded, by design). --json appends every
run's figures as a JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from train_demo import DEFAULT_DATA, OWNERS, PARTIES, cell, fit_scorecard, load_data  # noqa: E402

from mpc_credit.local.train import Training, TrainOutcome, train_locally  # noqa: E402
from mpc_credit.training.session import Options  # noqa: E402

LENDER = MODEL_OWNER = "bank"


def split(seed: int):
    """Features, labels and ids of the training and test rows."""
    frame, y, ids = load_data(DEFAULT_DATA)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.7 * len(y))
    return frame, y, np.array(ids), order[:cut], order[cut:]


def write_inputs(folder: Path, seed: int) -> tuple[dict[str, Path], Path]:
    """Each party's CSV of all 1000 applicants (the bank's with `default`) and test.txt."""
    frame, y, ids, _, test_rows = split(seed)
    data = {}
    for party in PARTIES:
        mine = [c for c, o in OWNERS.items() if o == party]
        label = ["default"] if party == LENDER else []
        path = data[party] = folder / f"{party}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["applicant_id", *mine, *label])
            for i, aid in enumerate(ids):
                extra = [int(y[i])] if label else []
                w.writerow([aid, *(cell(frame.iloc[i][c]) for c in mine), *extra])
    test = folder / "test.txt"
    test.write_text("\n".join(ids[test_rows]) + "\n")
    return data, test


def run_once(args: argparse.Namespace, folder: Path) -> tuple[float, float, dict[str, float], int]:
    """Test AUC, wall seconds, the slowest party's seconds per phase, kept features."""
    opts = Options(
        "joint-german",
        500,
        epsilon=args.epsilon,
        c=args.c,
        clip=args.clip,
        bins=args.bins,
        min_iv=args.min_iv,
        regression=args.regression,
    )
    data, test = write_inputs(folder, args.seed)
    out, wall, phases = timed_training(data, opts, folder, test)
    return out.holdout.metrics.auc, wall, phases, len(out.model["features"])


def timed_training(
    data: dict[str, Path], opts: Options, folder: Path, test: Path
) -> tuple[TrainOutcome, float, dict[str, float]]:
    """`train` with the bank as lender (label `default`) and model owner, the holdout `test`:
    its outcome, the wall seconds from launch to holdout metrics, the seconds per phase."""
    t = Training(data, LENDER, "default", MODEL_OWNER, opts, folder / "model.json",
                 ledger_dir=folder / "ledgers", budget=1e9, test_ids=test)  # fmt: skip
    t0 = time.perf_counter()
    out = train_locally(t)
    wall = time.perf_counter() - t0
    assert out.holdout is not None
    return out, wall, {**out.phases, "holdout scoring": out.holdout.seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epsilon", type=float, default=None)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--c", type=float, default=1.0, help="inverse regularization (sklearn's C)")
    ap.add_argument("--clip", type=float, default=None, help="WOE clip B (default: the rule)")
    ap.add_argument("--bins", type=int, default=10, help="candidate bins per feature")
    ap.add_argument("--min-iv", type=float, default=0.02, help="IV threshold to keep a feature")
    ap.add_argument("--regression", choices=["quadratic", "logistic"], default="quadratic")
    ap.add_argument("--json", type=Path, default=None, help="append each run as a JSON line")
    args = ap.parse_args()
    from sklearn.metrics import roc_auc_score

    frame, y, _, train_rows, test_rows = split(args.seed)
    t0 = time.perf_counter()
    reference = fit_scorecard(frame.iloc[train_rows], y[train_rows])
    ref_s = time.perf_counter() - t0
    ref_auc = roc_auc_score(y[test_rows], -reference.score(frame.iloc[test_rows]))
    aucs = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            auc, wall, phases, kept = run_once(args, Path(tmp))
            aucs.append(auc)
            if args.json is not None:
                record = {**vars(args), "json": None, "auc": auc, "wall": wall, "kept": kept}
                with args.json.open("a") as fh:
                    fh.write(json.dumps({**record, "phases": phases}) + "\n")
            print(
                f"joint run: test AUC {auc:.4f}, {kept} features, {wall:.1f} s wall end to end; "
                "phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()),
                flush=True,
            )
    dp = "no DP" if args.epsilon is None else f"epsilon {args.epsilon:g} (delta 1e-6)"
    clip = "by rule" if args.clip is None else f"{args.clip:g}"
    dp += f", C {args.c:g}, WOE clip {clip}, {args.bins} bins, min IV {args.min_iv:g}"
    dp += f", {args.regression} regression"
    print(f"German credit, 70/30 split seed {args.seed}, {len(train_rows)} training rows, {dp}")
    print(f"  optbinning + scikit-learn, pooled: test AUC {ref_auc:.4f} ({ref_s:.1f} s)")
    spread = ""
    if len(aucs) > 1:
        spread = (
            f" (sd {statistics.stdev(aucs):.4f}, min {min(aucs):.4f}, max {max(aucs):.4f}, "
            f"{len(aucs)} runs)"
        )
    print(f"  joint training, 3 parties:          test AUC {statistics.mean(aucs):.4f}{spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
