"""Sufficient statistics of the quadratic logistic fit, in MPC: A = X~^T X~ and b = X~^T y.

X~ holds the kept features' WOE columns, each input by its owner as integers in units of
2^-WOE_BITS (privacy.woe_units, already clipped to [-B, B]), and a public column of ones (in the
same units); y the lender's 0/1 labels. A is then in units of 2^-2 WOE_BITS and b in units of
2^-WOE_BITS, exact integers: the statistics need no truncation and no secure comparison, so no
statistical leakage term of MPyC's protocols enters delta. One secure matrix product per block
of rows (each block's shares freed before the next is sent); nothing iterates over the rows.

Release: the upper triangle of A and all of b, to the model owner alone. Entries the model
owner can compute from its own data (`own` coordinates: its features and the ones column; b's
own entries too when it holds the labels) are released exact; every other entry carries
discrete Gaussian noise of the variance privacy.py derives, added by the other parties inside
the MPC (noise.shared_noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from mpc_credit.errors import DataError
from mpc_credit.training.counts import CHUNK_ROWS, check_labels
from mpc_credit.training.noise import Rng, shared_noise
from mpc_credit.training.privacy import WOE_BITS

STAT_BITS = 64  # |A| <= n (B 2^WOE_BITS)^2 + noise: below 2^62 up to 10^7 rows at B = 4
UNIT = 2**WOE_BITS


@dataclass(frozen=True)
class StatsSpec:
    """Public facts of a statistics session."""

    n: int
    lender: int
    model_owner: int
    columns: Sequence[int]  # WOE columns held by each pid (0 for none), in pid order
    sigma2_a: Fraction | None = None  # noise variance per noised entry of A, in A's units
    sigma2_b: Fraction | None = None  # per noised entry of b, in b's units

    @property
    def d(self) -> int:
        return sum(self.columns)

    def own(self) -> np.ndarray:
        """Coordinates of X~ the model owner holds: its own columns and the ones column."""
        pid = np.repeat(np.arange(len(self.columns)), self.columns)
        return np.append(pid == self.model_owner, True)

    def noised(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks over A's upper triangle (row-major) and over b of the entries with noise."""
        own = self.own()
        rows, cols = np.triu_indices(self.d + 1)
        a = ~(own[rows] & own[cols])
        b = ~own if self.lender == self.model_owner else np.ones(self.d + 1, dtype=bool)
        return a, b

    def noisy_features(self) -> np.ndarray:
        """The features whose own statistics (diagonal entry of A, entry of b) carry noise."""
        mask_a, mask_b = self.noised()
        rows, cols = np.triu_indices(self.d + 1)
        diagonal = mask_a[rows == cols]
        return (diagonal | mask_b)[: self.d]


@dataclass(frozen=True)
class Stats:
    """What the model owner receives, in WOE units: A ((d+1)^2, ones last) and b (d+1)."""

    a: np.ndarray
    b: np.ndarray


def _check_units(x: np.ndarray, n: int, k: int) -> np.ndarray:
    x = np.asarray(x)
    if x.shape != (n, k) or x.dtype.kind not in "iu":
        raise DataError(f"WOE columns: expected integers of shape {(n, k)}, got {x.shape}")
    return x.astype(np.int64)


async def _products(
    mpc: Any, spec: StatsSpec, woe: np.ndarray | None, labels: Any
) -> tuple[Any, Any]:
    """A and b as secure integers, summed over blocks of rows."""
    n, me = spec.n, mpc.pid
    secint = mpc.SecInt(STAT_BITS)
    y = check_labels(labels, n) if me == spec.lender else np.zeros(n, dtype=np.int64)
    x = _check_units(woe, n, spec.columns[me]) if spec.columns[me] else None
    a = b = None
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, min(n, start + CHUNK_ROWS))
        m = rows.stop - start
        blocks = []
        for pid, k in enumerate(spec.columns):
            if k:
                own = x[rows] if pid == me else np.zeros((m, k), dtype=np.int64)
                blocks.append(mpc.input(secint.array(own), senders=pid))
        blocks.append(secint.array(np.full((m, 1), UNIT, dtype=np.int64)))
        xs = np.hstack(blocks)
        ys = mpc.input(secint.array(y[rows]), senders=spec.lender)
        pa, pb = xs.T @ xs, xs.T @ ys
        a, b = (pa, pb) if a is None else (a + pa, b + pb)
        await mpc.gather([a, b])  # one block's temporaries at a time
    return a, b


async def sufficient_statistics(
    mpc: Any,
    spec: StatsSpec,
    woe: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    rng: Rng | None = None,
) -> Stats | None:
    """Run at every party; the model owner gets A and b (noisy where not its own), others None."""
    a, b = await _products(mpc, spec, woe, labels)
    rows, cols = np.triu_indices(spec.d + 1)
    mask_a, mask_b = spec.noised()
    upper = await _release(mpc, spec, a[rows, cols], mask_a, spec.sigma2_a, rng)
    vec = await _release(mpc, spec, b, mask_b, spec.sigma2_b, rng)
    if upper is None or vec is None:
        return None
    full = np.zeros((spec.d + 1, spec.d + 1), dtype=np.int64)
    full[rows, cols] = upper
    full[cols, rows] = upper
    return Stats(full / UNIT**2, vec / UNIT)


async def _release(
    mpc: Any, spec: StatsSpec, values: Any, noised: np.ndarray, sigma2: Any, rng: Rng | None
) -> np.ndarray | None:
    """`values` to the model owner: noise on the `noised` entries, the others exact."""
    owner = [spec.model_owner]
    out = np.zeros(len(noised), dtype=np.int64)
    for mask, var in ((noised, sigma2), (~noised, None)):
        if not mask.any():
            continue
        part = values[np.flatnonzero(mask)]
        part = part + shared_noise(mpc, mpc.SecInt(STAT_BITS), (int(mask.sum()),), owner, var, rng)
        got = await mpc.output(part, receivers=owner)
        if mpc.pid == spec.model_owner:
            out[mask] = _ints(got)
    return out if mpc.pid == spec.model_owner else None


def _ints(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)
