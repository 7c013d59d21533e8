"""One party of a 3-process training test: `python -m tests.training.party PID PORT PORT PORT`.

Every process derives the same synthetic data from a fixed seed but passes only its own part
to the secure steps (the others get placeholders inside the protocol): pid 0 is the lender
(labels and 2 features), pid 1 the model owner (3 features), pid 2 an owner (2 features).
Prints one JSON line with what this process received.
"""

from __future__ import annotations

import asyncio
import json
import sys
from fractions import Fraction

import numpy as np

from mpc_credit.engine.runtime import make_runtime
from mpc_credit.training.counts import CountSpec, bad_counts
from mpc_credit.training.logistic import LrSpec, fit

N = 120
COLUMNS = [2, 3, 2]
WIDTHS = [5, 4, 3]
LENDER, MODEL_OWNER = 0, 1
LR = LrSpec(N, LENDER, MODEL_OWNER, COLUMNS, newton_steps=4, polish_steps=1)


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


async def main(pid: int, ports: list[int]) -> dict[str, object]:
    d = data()
    mpc = make_runtime(pid, [("127.0.0.1", p) for p in ports], ssl=False)
    await mpc.start()
    labels = d["y"] if pid == LENDER else None
    mine = d["onehots"][pid]
    exact = await bad_counts(mpc, CountSpec(N, LENDER, WIDTHS), mine, labels)
    noisy = await bad_counts(mpc, CountSpec(N, LENDER, WIDTHS, Fraction(400)), mine, labels)
    spec = LR
    coef = await fit(mpc, spec, own_woe(pid, d["woe"]), labels)
    dp = LrSpec(N, LENDER, MODEL_OWNER, COLUMNS, newton_steps=1, polish_steps=0, rho=1.0)
    coef_dp = await fit(mpc, dp, own_woe(pid, d["woe"]), labels)
    await mpc.shutdown()
    return {
        "exact": listed(exact),
        "noisy": listed(noisy),
        "coef": listed(coef.own),
        "intercept": coef.intercept,
        "coef_dp": listed(coef_dp.own),
        "intercept_dp": coef_dp.intercept,
    }


if __name__ == "__main__":
    pid, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
    print(json.dumps(asyncio.run(main(pid, ports))), flush=True)
