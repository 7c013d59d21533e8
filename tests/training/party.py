"""Party processes of the 3-process training tests: `python -m tests.training.party MODE PID PORTS`.

Every process derives the same data from a fixed seed but passes only its own part to the
secure steps (the others get placeholders inside the protocol). Prints one JSON line with
what this process received.

mode `steps`: synthetic data; pid 0 the lender (labels, 2 WOE columns), pid 1 the model owner
(3 columns), pid 2 an owner (2 columns); counts, sufficient statistics and the exact logistic
fit, with and without noise.
mode `session`: the first ROWS German credit applicants split over bank (lender), bureau
(model owner) and telco (which does not know every applicant); the whole session.
mode `session_dp`: the same with DP at epsilon 4 (the lender is not the model owner, so its own
counts carry its own noise).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from fractions import Fraction

import numpy as np

from mpc_credit.engine.runtime import make_runtime
from mpc_credit.local.ports import free_ports
from mpc_credit.training.counts import CountSpec, label_counts
from mpc_credit.training.logistic import LrSpec, fit
from mpc_credit.training.privacy import woe_units
from mpc_credit.training.session import Options, Setup, Table, train
from mpc_credit.training.stats import StatsSpec, sufficient_statistics

N = 120
COLUMNS = [2, 3, 2]
WIDTHS = [5, 4, 3]
LENDER, MODEL_OWNER = 0, 1
LR = LrSpec(N, LENDER, MODEL_OWNER, COLUMNS, newton_steps=4, polish_steps=1)
STATS = StatsSpec(N, LENDER, MODEL_OWNER, COLUMNS)
REPEATS = 30
NOISY_STATS = StatsSpec(N, LENDER, MODEL_OWNER, COLUMNS, Fraction(10**12), Fraction(10**12))
ROWS = 400
PARTIES = ("bank", "bureau", "telco")
SETUP = Setup(PARTIES, "bank", "bureau", Options("joint", 500))
DP_SETUP = Setup(PARTIES, "bank", "bureau", Options("joint", 500, epsilon=4.0))


def data() -> dict[str, object]:
    """The whole synthetic data set (each party uses its own slice only)."""
    rng = np.random.default_rng(42)
    woe = rng.normal(0, 0.6, (N, sum(COLUMNS)))
    z = woe @ -np.linspace(0.5, 1.5, sum(COLUMNS)) - 0.8
    y = (rng.random(N) < 1 / (1 + np.exp(-z))).astype(np.int64)
    onehots = [np.eye(w, dtype=np.int64)[rng.integers(0, w, N)] for w in WIDTHS]
    return {"woe": woe, "y": y, "onehots": onehots}


def own_woe(pid: int, woe: np.ndarray) -> np.ndarray:
    start = sum(COLUMNS[:pid])
    return woe[:, start : start + COLUMNS[pid]]


def listed(x: object) -> object:
    return None if x is None else np.asarray(x).tolist()


def german_table(pid: int) -> Table:
    """This party's slice of the first ROWS German credit applicants (telco misses 40)."""
    from tests.training.german import load

    columns, y = load()
    names = list(columns)
    mine = names[pid::3]  # features dealt round-robin
    rows = np.arange(ROWS)
    if PARTIES[pid] == "telco":
        rows = np.random.default_rng(1).permutation(ROWS)[40:]
    ids = [f"A{i:04d}" for i in rows]
    labels = y[rows] if PARTIES[pid] == SETUP.lender else None
    return Table(ids, {c: columns[c][rows] for c in mine}, labels)


async def steps(mpc) -> dict[str, object]:
    d = data()
    pid = mpc.pid
    labels = d["y"] if pid == LENDER else None
    mine = d["onehots"][pid]
    exact = await label_counts(mpc, CountSpec(N, LENDER, WIDTHS), mine, labels)
    noisy = await label_counts(mpc, CountSpec(N, LENDER, WIDTHS, Fraction(400)), mine, labels)
    units = woe_units(own_woe(pid, d["woe"]), 4.0)
    stats = await sufficient_statistics(mpc, STATS, units, labels)
    noisy_stats = await sufficient_statistics(mpc, NOISY_STATS, units, labels)
    coef = await fit(mpc, LR, own_woe(pid, d["woe"]), labels)
    repeats = []  # the noise the owner sees over repeated releases, for the distribution test
    for _ in range(REPEATS):
        again = await label_counts(mpc, CountSpec(N, LENDER, WIDTHS, Fraction(400)), mine, labels)
        repeats += (again.bad - exact.bad).tolist() + (again.good - exact.good).tolist()
    return {
        "repeats": repeats,
        "exact": [listed(exact.good), listed(exact.bad)],
        "noisy": [listed(noisy.good), listed(noisy.bad)],
        "a": None if stats is None else listed(stats.a),
        "b": None if stats is None else listed(stats.b),
        "noisy_a": None if noisy_stats is None else listed(noisy_stats.a),
        "noisy_b": None if noisy_stats is None else listed(noisy_stats.b),
        "coef": None if coef is None else listed(coef.coefficients),
        "intercept": None if coef is None else coef.intercept,
    }


async def session(mpc, setup: Setup = SETUP) -> dict[str, object]:
    out = await train(mpc, setup, german_table(mpc.pid))
    return {
        "rows": out.rows,
        "known": out.known,
        "kept": out.kept,
        "coefficients": out.coefficients,
        "ivs": out.ivs,
        "intercept": out.intercept,
        "model": out.model,
    }


async def main(mode: str, pid: int, ports: list[int]) -> dict[str, object]:
    mpc = make_runtime(pid, [("127.0.0.1", p) for p in ports], ssl=False)
    await mpc.start()
    if mode == "steps":
        result = await steps(mpc)
    else:
        result = await session(mpc, DP_SETUP if mode == "session_dp" else SETUP)
    await mpc.shutdown()
    return result


def run_parties(mode: str) -> list[dict]:
    """Start the 3 party processes, wait for all, and return what each printed."""
    from tests.conftest import ROOT

    ports = free_ports(3)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.training.party", mode, str(pid), *map(str, ports)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in range(3)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
    return outs


if __name__ == "__main__":
    mode, pid, ports = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    print(json.dumps(asyncio.run(main(mode, pid, ports))), flush=True)
