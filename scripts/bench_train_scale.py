"""Joint training at scale: synthetic applicants over 3 institutions against plaintext pooling.

Run from the repository root::

    python scripts/bench_train_scale.py [--n 10000 100000] [--epsilon E]
        [--regression quadratic|logistic] [--features 20] [--seed 11] [--json FILE]

For each N, draws N applicants of the lender (`bank`) with 20 features dealt round-robin to
bank, bureau and telco (numeric and categorical, correlated through a common factor, a few
cells empty), and a label at the bank from a known logistic model of the features (so AUC
means something: the true model's AUC is printed as the ceiling). The bureau does not know
10 % of the bank's applicants and the telco 5 %; each owner also holds 5 % applicants the bank
does not have (PSI has something to hide). 30 % of the bank's applicants are the holdout.

The joint side is `mpc-credit train`'s path (mpc_credit.local.train: 3 party processes over
mutual TLS, each reading only its own CSV; the holdout scored by the engine's MPC scoring),
with its default configuration (one-shot quadratic regression), without DP or at --epsilon.
Its seconds per phase are the parties' own (the slowest party's), its peak memory
each party process's VmHWM. The plaintext side pools the same training rows (an owner's
unknown applicants missing) and times optbinning's BinningProcess (monotone numeric bins, as
scripts/train_demo.py), scikit-learn's LogisticRegression on the WOE, and the scoring of the
holdout. The table prints both side by side with their ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench_train import timed_training  # noqa: E402
from train_demo import MONOTONIC_TREND  # noqa: E402

from mpc_credit.training.session import Options  # noqa: E402

PARTIES = ("bank", "bureau", "telco")  # bank: the lender, label holder and model owner
ABSENT = {"bank": 0.0, "bureau": 0.10, "telco": 0.05}  # share of the bank's applicants unknown
EXTRA = 0.05  # each owner's applicants the bank does not have, as a share of N
MISSING = 0.02  # empty cells among known applicants
BAD_RATE = 0.25
TEST_SHARE = 0.3
CATEGORIES = 6


@dataclass
class Synthetic:
    """The pooled truth: features (NaN where an owner lacks the applicant), labels, true PD."""

    frame: pd.DataFrame  # index: the bank's applicant ids
    y: np.ndarray
    pd_true: np.ndarray
    owner: dict[str, str]  # feature -> party


def synthesize(n: int, n_features: int, seed: int) -> tuple[Synthetic, dict[str, pd.DataFrame]]:
    """The pooled data and each party's own table (its known and extra applicants)."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(n)
    cols, effect = {}, np.zeros(n)
    for j in range(n_features):
        name = f"f{j:02d}"
        beta = 0.0 if j % 5 == 4 else rng.uniform(0.25, 0.7) * rng.choice([-1, 1])
        if j % 4 == 3:  # categorical: uneven category shares, an effect per category
            p = rng.dirichlet(np.full(CATEGORIES, 2.0))
            k = rng.choice(CATEGORIES, size=n, p=p)
            effect += (beta != 0) * rng.normal(0, 0.6, CATEGORIES)[k]
            cols[name] = np.array([f"k{i}" for i in range(CATEGORIES)], dtype=object)[k]
        else:  # numeric, monotone but not linear in the log-odds
            x = np.sqrt(0.7) * rng.standard_normal(n) + np.sqrt(0.3) * common
            effect += beta * np.tanh(1.5 * x)
            cols[name] = np.round(50 + 10 * x, 1)
    lo, hi = -10.0, 10.0
    for _ in range(60):  # the intercept giving the target bad rate
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(mid + effect)))) < BAD_RATE else (lo, mid)
    pd_true = 1 / (1 + np.exp(-(lo + effect)))
    y = (rng.random(n) < pd_true).astype(np.int64)
    ids = np.array([f"S{i:07d}" for i in range(n)])
    owner = {name: PARTIES[j % len(PARTIES)] for j, name in enumerate(cols)}
    full = pd.DataFrame(cols, index=ids)
    pooled = full.copy()
    tables = {}
    for party in PARTIES:
        mine = [c for c, o in owner.items() if o == party]
        known = rng.random(n) >= ABSENT[party]
        own = full.loc[known, mine].copy()
        for c in mine:
            own.loc[rng.random(len(own)) < MISSING, c] = np.nan
            pooled[c] = own[c].reindex(ids)  # unknown applicants are missing for the pool too
        if party != "bank":
            extra = int(EXTRA * n)
            other = full.iloc[rng.integers(0, n, extra)][mine].copy()
            other.index = [f"X{party[:2]}{i:07d}" for i in range(extra)]
            own = pd.concat([own, other])
        else:
            own["default"] = y
        tables[party] = own.iloc[rng.permutation(len(own))]
    return Synthetic(pooled, y, pd_true, owner), tables


def write_csvs(folder: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Each party's CSV: applicant_id then its columns (empty cell = missing)."""
    out = {}
    for party, table in tables.items():
        path = out[party] = folder / f"{party}.csv"
        cells = table.astype(object).where(table.notna(), "")
        with path.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["applicant_id", *table.columns])
            w.writerows([aid, *row] for aid, row in zip(table.index, cells.itertuples(False)))
    return out


def plaintext(data: Synthetic, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """optbinning + scikit-learn on the pooled training rows: seconds per phase, test AUC."""
    from optbinning import BinningProcess
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    frame = data.frame
    names = list(frame.columns)
    numeric = [c for c in names if frame[c].dtype.kind in "f"]
    t0 = time.perf_counter()
    x_train = frame.iloc[train]
    bp = BinningProcess(
        variable_names=names,
        binning_fit_params={c: {"monotonic_trend": MONOTONIC_TREND} for c in numeric},
    ).fit(x_train, data.y[train])
    t1 = time.perf_counter()
    lr = LogisticRegression(max_iter=1000).fit(bp.transform(x_train), data.y[train])
    t2 = time.perf_counter()
    p = lr.predict_proba(bp.transform(frame.iloc[test]))[:, 1]
    t3 = time.perf_counter()
    return {
        "binning": t1 - t0,
        "regression": t2 - t1,
        "holdout scoring": t3 - t2,
        "auc": float(roc_auc_score(data.y[test], p)),
        "features": int(sum(bp.get_support())),
    }


def joint(args: argparse.Namespace, folder: Path, paths: dict[str, Path], test: Path) -> dict:
    """One `train` run: the slowest party's seconds per phase, peak MB per party, test AUC."""
    opts = Options("synthetic", 550, epsilon=args.epsilon, regression=args.regression)
    out, wall, phases = timed_training(paths, opts, folder, test)
    assert out.holdout is not None
    return {
        "phases": phases,
        "wall": wall,
        "training": out.seconds,
        "peak_mb": out.peak_mb,
        "auc": out.holdout.metrics.auc,
        "features": len(out.model["features"]),
        "rows": out.rows,
    }


def run(args: argparse.Namespace, n: int) -> dict:
    """Data, the plaintext baseline and the joint run for N applicants."""
    from sklearn.metrics import roc_auc_score

    data, tables = synthesize(n, args.features, args.seed)
    order = np.random.default_rng(args.seed + 1).permutation(n)
    cut = int((1 - TEST_SHARE) * n)
    train, test = np.sort(order[:cut]), np.sort(order[cut:])
    base = plaintext(data, train, test)
    base["auc_true_model"] = float(roc_auc_score(data.y[test], data.pd_true[test]))
    with tempfile.TemporaryDirectory(prefix="bench-train-scale-") as tmp:
        folder = Path(tmp)
        paths = write_csvs(folder, tables)
        test_ids = folder / "test.txt"
        test_ids.write_text("\n".join(data.frame.index[test]) + "\n")
        runs = [joint(args, folder, paths, test_ids) for _ in range(args.runs)]
        result = runs[0]
        result["aucs"] = [r["auc"] for r in runs]
    privacy = "no DP" if args.epsilon is None else f"epsilon {args.epsilon:g}"
    return {"n": n, "train_rows": cut, "privacy": privacy, "regression": args.regression,
            "plain": base, "joint": result}  # fmt: skip


def show(r: dict) -> None:
    j, p = r["joint"], r["plain"]
    print(
        f"\nN = {r['n']:,} applicants ({r['train_rows']:,} training rows), 20 features over "
        f"3 parties, {r['privacy']}, {r['regression']} regression"
    )
    print("| phase | joint, 3 parties (s) | plaintext, pooled (s) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for phase in ("alignment", "binning", "regression", "points", "holdout scoring"):
        mine, theirs = j["phases"].get(phase, 0.0), p.get(phase)
        ratio = f"{mine / theirs:,.0f}x" if theirs else ""
        plain = f"{theirs:.2f}" if theirs is not None else "(pooling)"
        print(f"| {phase} | {mine:.1f} | {plain} | {ratio} |")
    total = sum(p[k] for k in ("binning", "regression", "holdout scoring"))
    print(f"| wall, launch to holdout metrics | {j['wall']:.1f} | {total:.2f} | "
          f"{j['wall'] / total:,.0f}x |")  # fmt: skip
    if len(j["aucs"]) > 1:
        a = j["aucs"]
        print(f"test AUC over {len(a)} runs: mean {statistics.mean(a):.4f}, sd "
              f"{statistics.stdev(a):.4f}, min {min(a):.4f}, max {max(a):.4f}")  # fmt: skip
    peaks = ", ".join(f"{k} {v:,.0f}" for k, v in j["peak_mb"].items())
    print(f"peak memory per party (MB, VmHWM): {peaks}")
    print(
        f"test AUC: joint {j['auc']:.4f} ({j['features']} features), plaintext "
        f"{p['auc']:.4f} ({p['features']} features), difference {j['auc'] - p['auc']:+.4f}; "
        f"the true model {p['auc_true_model']:.4f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000])
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--epsilon", type=float, default=None, help="default: no DP")
    ap.add_argument("--runs", type=int, default=1, help="joint runs (DP draws) per N")
    ap.add_argument("--regression", choices=["quadratic", "logistic"], default="quadratic")
    ap.add_argument("--json", type=Path, default=None, help="append each result as a JSON line")
    args = ap.parse_args()
    for n in args.n:
        r = run(args, n)
        show(r)
        if args.json is not None:
            with args.json.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
