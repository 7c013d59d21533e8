"""Plaintext simulation of joint training's DP mechanisms, to compare them before (and after)
they run in MPC.

Run from the repository root::

    python scripts/simulate_dp.py [--data german|synthetic] [--n 100000] [--epsilon 1 4]
        [--runs 40] [--mechanism ssp output ...] [--json FILE]

Each run goes through the same steps as `mpc-credit train` with the same library code
(candidate bins, merging, WOE, the DP plan of mpc_credit.training.privacy, the quadratic fit of
mpc_credit.training.ssp, the points of mpc_credit.training.points), but computes in the clear
what the MPC computes, and draws each released value's noise as one rounded Gaussian of the
variance the MPC's shares add up to. Mechanisms:

- `ssp` (the shipped default): noisy good/bad counts (the lender's own exact when it is the
  model owner), noisy sufficient statistics A = X~^T X~, b = X~^T y to the model owner, the
  quadratic fit;
- `ssp-exact-counts`, `ssp-exact-stats`: one of the two releases without noise, to see where
  the loss comes from;
- `ssp-noisy-lender`: the lender's own counts noised too (as when it is not the model owner);
- `ssp-full-scale`: every contributor adds its noise at full scale (the previous way: twice
  the variance with three parties);
- `output`: the previous mechanism (bad counts only, both contributors at full scale, the
  logistic optimum with output perturbation at C 1, WOE clip 4), for the baseline;
- `none`: no DP (the quadratic fit on exact statistics).

German credit: the 70/30 split of scripts/bench_train.py (seed 7) with the demo's owners.
Synthetic: scripts/bench_train_scale.py's generator (seed 11), 30 % holdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from mpc_credit.scorecard.model import Scaling  # noqa: E402
from mpc_credit.training import privacy, ssp  # noqa: E402
from mpc_credit.training.bins import Candidates, propose  # noqa: E402
from mpc_credit.training.ledger import rho_for  # noqa: E402
from mpc_credit.training.metrics import metrics  # noqa: E402
from mpc_credit.training.points import build_model, owner_feature  # noqa: E402
from mpc_credit.training.stats import StatsSpec  # noqa: E402
from mpc_credit.training.woe import Binned, merge  # noqa: E402

LENDER = "bank"
SCALING = Scaling(20, 50, 600)


@dataclass
class Data:
    """Training and holdout columns per party (NaN / None = unknown), labels."""

    train: dict[str, dict[str, np.ndarray]]
    y_train: np.ndarray
    test: dict[str, dict[str, np.ndarray]]
    y_test: np.ndarray
    name: str = ""


@dataclass
class Config:
    mechanism: str = "ssp"
    epsilon: float | None = 1.0
    bins: int = 10
    c: float = 1.0
    clip: float | None = None
    min_iv: float = 0.02
    extra: dict = field(default_factory=dict)


def _column(values) -> np.ndarray:
    try:
        return np.array([float(v) if v == v and v is not None else np.nan for v in values])
    except (TypeError, ValueError):
        return np.array([None if v != v else str(v) for v in values], dtype=object)


def german(seed: int = 7) -> Data:
    from bench_train import split
    from train_demo import OWNERS

    frame, y, _, tr, te = split(seed)
    parts: list[dict[str, dict[str, np.ndarray]]] = [{}, {}]
    for k, rows in enumerate((tr, te)):
        for name, owner in OWNERS.items():
            parts[k].setdefault(owner, {})[name] = _column(frame[name].to_numpy()[rows])
    return Data(parts[0], y[tr], parts[1], y[te], "German credit")


def synthetic(n: int, seed: int = 11) -> Data:
    from bench_train_scale import synthesize

    data, _ = synthesize(n, 20, seed)
    order = np.random.default_rng(seed).permutation(n)
    cut = int(0.7 * n)
    parts: list[dict[str, dict[str, np.ndarray]]] = [{}, {}]
    for k, rows in enumerate((order[:cut], order[cut:])):
        for name, owner in data.owner.items():
            parts[k].setdefault(owner, {})[name] = _column(data.frame[name].to_numpy()[rows])
    return Data(parts[0], data.y[order[:cut]], parts[1], data.y[order[cut:]], f"synthetic {n}")


def _noisy(x: np.ndarray, var: float, rng: np.random.Generator) -> np.ndarray:
    return x + np.rint(rng.normal(0, np.sqrt(var), np.shape(x))) if var else x


def _final_bins(b: Binned, column: np.ndarray) -> np.ndarray:
    cand = b.cand.bin_of(column)
    final = np.full(b.cand.n_bins, len(b.groups), dtype=np.int64)
    for i, g in enumerate(b.groups):
        final[list(g)] = i
    return final[cand]


def binning(data: Data, cfg: Config, rng: np.random.Generator) -> dict[str, list[Binned]]:
    """Every party's features binned from (noisy) good and bad counts."""
    y = data.y_train
    dp = cfg.epsilon is not None and cfg.mechanism not in ("none",)
    rho = rho_for(cfg.epsilon) if dp else None
    old = cfg.mechanism == "output"
    noised = [p for p in data.train if old or p != LENDER or cfg.mechanism == "ssp-noisy-lender"]
    f = sum(len(data.train[p]) for p in noised)
    var = 0.0
    if rho is not None and cfg.mechanism != "ssp-exact-counts":
        if old:  # 2F sensitivity of the bad counts, both contributors at full scale
            var = 2 * max(2 * f / rho, 25)
        else:
            var = privacy.count_sigma2(f, privacy.Budget(rho).counts) * _scale(cfg)
    out = {}
    for party, cols in data.train.items():
        out[party] = []
        for name, col in cols.items():
            cand: Candidates = propose(name, col, max_bins=cfg.bins)
            idx = cand.bin_of(col)
            bad = np.bincount(idx, weights=y, minlength=cand.n_bins)
            good = np.bincount(idx, weights=1 - y, minlength=cand.n_bins)
            if party in noised and var:
                bad = np.maximum(_noisy(bad, var, rng), 0)
                good = good if old else np.maximum(_noisy(good, var, rng), 0)
            out[party].append(merge(cand, good + bad, bad, min_iv=cfg.min_iv))
    return out


def _scale(cfg: Config) -> float:
    """The variance factor of full-scale contributions: 2 contributors with three parties."""
    return 2.0 if cfg.mechanism == "ssp-full-scale" else 1.0


def _woe(b: Binned, column: np.ndarray, clip: float) -> np.ndarray:
    return privacy.clipped_woe(b.woe, clip)[_final_bins(b, column)]


def fit(data: Data, kept: dict[str, list[Binned]], cfg: Config, rng) -> tuple[np.ndarray, float]:
    """Coefficients (in kept order, lender first) and intercept."""
    clip = (
        cfg.clip
        if cfg.clip is not None
        else privacy.clip_for(None if cfg.mechanism == "none" else cfg.epsilon)
    )
    cols, own = [], []
    for party, bs in kept.items():
        for b in bs:
            cols.append(_woe(b, data.train[party][b.cand.name], clip))
            own.append(party == LENDER)
    n = len(data.y_train)
    x = np.column_stack([*cols, np.ones(n)])
    a, bvec = x.T @ x, x.T @ data.y_train
    noise_sd = 0.0
    if (
        cfg.epsilon is not None
        and cfg.mechanism.startswith("ssp")
        and cfg.mechanism != ("ssp-exact-stats")
    ):
        budget = privacy.Budget(rho_for(cfg.epsilon))
        own_mask = np.array([*own, True])
        d_other, d_own = int((~own_mask).sum()), int(own_mask.sum()) - 1
        da, db = privacy.stats_sensitivity(d_other, d_own, clip, labels_own=True)
        va = privacy.gaussian_sigma2(da, budget.a) * _scale(cfg)
        vb = privacy.gaussian_sigma2(db, budget.b) * _scale(cfg)
        mask = ~(own_mask[:, None] & own_mask[None, :])
        e = np.triu(rng.normal(0, np.sqrt(va), a.shape))
        e = e + np.triu(e, 1).T
        a = a + e * mask
        bvec = bvec + rng.normal(0, np.sqrt(vb), bvec.shape) * ~own_mask
        noise_sd = float(np.sqrt(va))
    if cfg.mechanism == "output":
        return _output_perturbation(x, data.y_train, cfg, rng, clip=4.0)
    spec = StatsSpec(n, 0, 0, [len(kept[p]) for p in kept])  # the lender (first) owns the model
    r = ssp.fit(a, bvec, n, c=cfg.c, noise_sd=noise_sd, noised=spec.noisy_features())
    return r.coefficients, r.intercept


def _output_perturbation(x, y, cfg: Config, rng, clip: float):
    """The previous default: the constrained logistic optimum at C plus output noise."""
    from scipy.optimize import minimize

    n, d1 = x.shape
    x = np.column_stack([np.clip(x[:, :-1], -clip, clip), x[:, -1]])
    lam = 1 / (cfg.c * n)

    def f(t):
        z = x @ t
        return np.mean(np.logaddexp(0, z) - y * z) + lam / 2 * t @ t

    def g(t):
        p = 1 / (1 + np.exp(-(x @ t)))
        return x.T @ (p - y) / n + lam * t

    bounds = [(None, 0)] * (d1 - 1) + [(None, None)]
    t = minimize(f, np.zeros(d1), jac=g, bounds=bounds, method="L-BFGS-B").x
    rho = rho_for(cfg.epsilon) / 2
    L = np.sqrt((d1 - 1) * clip**2 + 1)
    var = (2 * L * cfg.c) ** 2 / (2 * rho)
    t = t + rng.normal(0, np.sqrt(2 * var), d1)  # two contributors at full scale
    return np.minimum(t[:-1], 0), t[-1]


def run(data: Data, cfg: Config, rng: np.random.Generator) -> dict:
    binned = binning(data, cfg, rng)
    kept = {p: [b for b in bs if b.kept] for p, bs in binned.items()}
    coef, intercept = fit(data, kept, cfg, rng)
    clip = (
        cfg.clip
        if cfg.clip is not None
        else privacy.clip_for(None if cfg.mechanism == "none" else cfg.epsilon)
    )
    feats, score, k = [], np.zeros(len(data.y_test)), 0
    for party, bs in kept.items():
        for b in bs:
            if coef[k] != 0:
                feats.append((owner_feature(party, b, clip), float(coef[k]), b))
            k += 1
    model = build_model("sim", SCALING, 500, intercept, [(f, c) for f, c, _ in feats])
    for spec, (_, _, b) in zip(model["features"], feats):
        pts = np.array([*spec["points"], spec["missing_points"]])
        party = next(p for p, bs in kept.items() if b in bs)
        score += pts[_final_bins(b, data.test[party][b.cand.name])]
    m = metrics(data.y_test, score)
    return {"auc": m.auc, "kept": len(feats), "min": float(score.min()), "max": float(score.max())}


def _summary(aucs: list[float]) -> str:
    if len(aucs) == 1:
        return f"{aucs[0]:.4f}"
    return (
        f"{statistics.mean(aucs):.4f} (sd {statistics.stdev(aucs):.3f}, "
        f"min {min(aucs):.3f}, max {max(aucs):.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["german", "synthetic"], default="german")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 4.0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--mechanism", nargs="+", default=["ssp", "output", "none"])
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--clip", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    data = german() if args.data == "german" else synthetic(args.n)
    rng = np.random.default_rng(args.seed)
    print(f"{data.name}: {len(data.y_train)} training rows, {len(data.y_test)} holdout rows")
    for mech in args.mechanism:
        for eps in [None] if mech == "none" else args.epsilon:
            cfg = Config(mech, eps, args.bins, args.c, args.clip)
            t0 = time.perf_counter()
            runs = [run(data, cfg, rng) for _ in range(1 if eps is None else args.runs)]
            aucs = [r["auc"] for r in runs]
            label = f"{mech:18s} eps {'-' if eps is None else f'{eps:g}':>4s}"
            print(f"{label}: AUC {_summary(aucs)}  ({time.perf_counter() - t0:.1f} s)", flush=True)
            if args.json is not None:
                with args.json.open("a") as fh:
                    fh.write(json.dumps({**vars(cfg), "data": data.name, "aucs": aucs}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
