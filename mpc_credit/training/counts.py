"""Secure per-bin bad counts: the owner's one-hot bins against the lender's labels, in MPC.

For each feature owner o: bad_o = X_o^T y, X_o the owner's secret-shared (n, w_o) one-hot bin
matrix (all its features side by side), y the lender's secret-shared 0/1 labels (1 = bad).
One secure matrix-vector product per owner, summed over blocks of rows (each block's shares
are freed before the next is sent); the owner already knows each bin's total, so
good = total - bad follows. `bad_o` is revealed to owner o alone
(`mpc.output(..., receivers=[o])`), with discrete Gaussian noise added inside the MPC by every
other party (noise.shared_noise): o knows no noise term it receives.

Differential privacy. Protected unit: one applicant, its row at every owner and its label
(neighbouring data sets differ by replacing one applicant). Replacing one applicant moves at
most one bad from one bin to another in each feature: two entries change by 1, so the bad
counts of all F features together have squared L2 sensitivity 2F. Each contributor's noise is
a discrete Gaussian of variance parameter sigma2 = max(F / rho, 25) per entry, so the counts
released to all owners together are rho-zCDP (Canonne, Kamath & Steinke 2020, Theorem 14: the
multivariate discrete Gaussian adds to the continuous bound a term exponentially small in
sigma2, below 1e-100 from sigma2 = 25 on, hence the floor), even if the receiver colludes with
all contributors but one. With `sigma2=None` the counts are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from mpc_credit.errors import DataError
from mpc_credit.training.noise import Rng, shared_noise

COUNT_BITS = 64
CHUNK_ROWS = 8192  # rows whose one-hot shares are in flight at once: bounds every party's memory
MIN_SIGMA2 = 25  # keeps CKS20's discretization term negligible


def count_sigma2(n_features: int, rho: float) -> Fraction:
    """Per-entry, per-contributor noise variance for rho-zCDP bad counts of n_features features."""
    if not rho > 0:
        raise ValueError("rho must be positive")
    return max(Fraction(n_features) / Fraction(rho), Fraction(MIN_SIGMA2))


@dataclass(frozen=True)
class CountSpec:
    """Public facts of a count session: rows, the lender's pid, each party's one-hot width."""

    n: int
    lender: int
    widths: Sequence[int]  # by pid; 0 for a party that owns no feature
    sigma2: Fraction | None = None  # None: no noise


def check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """The lender's labels as int64 0/1 of length n, or DataError."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise DataError(f"labels: expected {n} values, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels: every label must be 0 (good) or 1 (bad)")
    return y.astype(np.int64)


def _check_onehot(x: np.ndarray, n: int, w: int) -> np.ndarray:
    x = np.asarray(x)
    if x.shape != (n, w) or not np.isin(x, (0, 1)).all():
        raise DataError(f"one-hot bins: expected a 0/1 matrix of shape {(n, w)}, got {x.shape}")
    return x.astype(np.int64)


async def bad_counts(
    mpc: Any,
    spec: CountSpec,
    onehot: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    rng: Rng | None = None,
) -> np.ndarray | None:
    """Run at every party; returns this party's own (noisy) bad count per bin, else None.

    `onehot` is this party's matrix if it owns features, `labels` given at the lender.
    """
    n, me = spec.n, mpc.pid
    secint = mpc.SecInt(COUNT_BITS)
    widths = {pid: w for pid, w in enumerate(spec.widths) if w}
    y = check_labels(labels, n) if me == spec.lender else np.zeros(n, dtype=np.int64)
    x = _check_onehot(onehot, n, widths[me]) if me in widths else None
    sums: dict[int, Any] = {}
    for start in range(0, n, CHUNK_ROWS):  # the shares of one block of rows at a time
        rows = slice(start, min(n, start + CHUNK_ROWS))
        ys = mpc.input(secint.array(y[rows]), senders=spec.lender)
        for pid, w in widths.items():
            own = x is not None and pid == me
            block = x[rows] if own else np.zeros((rows.stop - start, w), dtype=np.int64)
            part = mpc.input(secint.array(block), senders=pid).T @ ys
            sums[pid] = part if pid not in sums else sums[pid] + part
        await mpc.gather(list(sums.values()))
    mine = None
    for pid, w in widths.items():
        noisy = sums[pid] + shared_noise(mpc, secint, (w,), [pid], spec.sigma2, rng)
        out = await mpc.output(noisy, receivers=[pid])
        if pid == me:
            mine = np.asarray(out, dtype=np.int64)
    return mine
