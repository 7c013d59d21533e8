"""Per-bin good and bad counts: each owner's one-hot bins against the lender's labels, in MPC.

For each feature owner o: bad_o = X_o^T y and good_o = X_o^T 1 - bad_o, X_o the owner's
secret-shared (n, w_o) one-hot bin matrix (all its features side by side), y the lender's
secret-shared 0/1 labels (1 = bad). One secure matrix-vector product per owner, summed over
blocks of rows (each block's shares are freed before the next is sent). Both counts are
revealed to owner o alone (`mpc.output(..., receivers=[o])`) with discrete Gaussian noise
added inside the MPC by the other parties (noise.shared_noise), so the owner's merging and WOE
never use its exact totals: they are post-processing of this release at every other party.

The lender's own counts need no MPC (its bins and labels are its own rows): `local_counts`.
They are exact when the lender is the model owner (every release that depends on them reaches
the lender alone), else noised by the lender at the same variance before anything leaves it.

Sensitivity (privacy.py): replacing one applicant moves one unit between two (bin, label)
cells of each feature, squared L2 sensitivity 2 per noised feature; `sigma2` is the variance
per released count that makes all of them together rho-zCDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from mpc_credit.errors import DataError
from mpc_credit.training.noise import Rng, gaussian_vector, shared_noise

COUNT_BITS = 64
CHUNK_ROWS = 8192  # rows whose one-hot shares are in flight at once: bounds every party's memory


@dataclass(frozen=True)
class CountSpec:
    """Public facts of a count session: rows, the lender's pid, each owner's one-hot width."""

    n: int
    lender: int
    widths: Sequence[int]  # by pid; 0 for a party whose counts are not computed in MPC
    sigma2: Fraction | None = None  # variance per released count; None: no noise


@dataclass(frozen=True)
class Counts:
    """One party's (noisy) good and bad count per candidate bin."""

    good: np.ndarray
    bad: np.ndarray

    def clipped(self) -> tuple[np.ndarray, np.ndarray]:
        """Totals and bads as the owner merges them: noisy counts clipped to >= 0."""
        good, bad = np.maximum(self.good, 0), np.maximum(self.bad, 0)
        return good + bad, bad


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


def local_counts(
    onehot: np.ndarray, labels: np.ndarray, sigma2: Fraction | None = None, rng: Rng | None = None
) -> Counts:
    """The lender's own counts, exact or with its own noise of variance sigma2 per count."""
    y = check_labels(labels, len(labels))
    x = _check_onehot(onehot, len(y), np.shape(onehot)[1])
    bad = x.T @ y
    good = x.sum(axis=0) - bad
    if sigma2 is not None:
        bad = bad + gaussian_vector(len(bad), sigma2, rng)
        good = good + gaussian_vector(len(good), sigma2, rng)
    return Counts(good, bad)


async def label_counts(
    mpc: Any,
    spec: CountSpec,
    onehot: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    rng: Rng | None = None,
) -> Counts | None:
    """Run at every party; returns this party's own (noisy) counts per bin, else None.

    `onehot` is this party's matrix if it has a width, `labels` given at the lender.
    """
    n, me = spec.n, mpc.pid
    secint = mpc.SecInt(COUNT_BITS)
    widths = {pid: w for pid, w in enumerate(spec.widths) if w}
    y = check_labels(labels, n) if me == spec.lender else np.zeros(n, dtype=np.int64)
    x = _check_onehot(onehot, n, widths[me]) if me in widths else None
    bads: dict[int, Any] = {}
    totals: dict[int, Any] = {}
    for start in range(0, n, CHUNK_ROWS):  # the shares of one block of rows at a time
        rows = slice(start, min(n, start + CHUNK_ROWS))
        ys = mpc.input(secint.array(y[rows]), senders=spec.lender)
        for pid, w in widths.items():
            own = x is not None and pid == me
            block = x[rows] if own else np.zeros((rows.stop - start, w), dtype=np.int64)
            xs = mpc.input(secint.array(block), senders=pid)
            bad, total = xs.T @ ys, xs.sum(axis=0)
            bads[pid] = bad if pid not in bads else bads[pid] + bad
            totals[pid] = total if pid not in totals else totals[pid] + total
        await mpc.gather([*bads.values(), *totals.values()])
    mine = None
    for pid, w in widths.items():
        both = np.vstack([totals[pid] - bads[pid], bads[pid]])  # good, bad
        noisy = both + shared_noise(mpc, secint, (2, w), [pid], spec.sigma2, rng)
        out = await mpc.output(noisy, receivers=[pid])
        if pid == me:
            got = np.asarray(out, dtype=np.int64)
            mine = Counts(got[0], got[1])
    return mine
