"""The scorecard's coefficients from sufficient statistics: a quadratic logistic fit (numpy).

Runs at the model owner on what the MPC released to it (stats.py): A = X~^T X~ and
b = X~^T y, with X~ the kept features' WOE columns and a column of ones, noisy where they
hold other parties' data. Everything here is post-processing of that release.

The logistic loss l(z) = log(1 + e^z) - y z is replaced by its second-order expansion at the
base rate's logit z0 = logit(p), p = b_1 / n (b_1 = sum of y):
    l(z) ~ l(z0) + (p - y)(z - z0) + (w0 / 2)(z - z0)^2,  w0 = p (1 - p),
so with theta = (w, z0 + u_b) the penalized objective sum_i l(x~_i . theta) + (1/2) u^T R u is
a quadratic in u whose data enter only through A and b (PASS-GLM, Huggins, Adams & Broderick
2017, with the expansion point at the intercept-only optimum):
    minimize (1/2) u^T (w0 A + R) u - (b - p A[:, -1])^T u,   w <= 0,
A[:, -1] being the column sums X~^T 1. R is the ridge on the features (none on the intercept):
1/C as scikit-learn's, plus, on each feature whose own statistics carry noise (its diagonal
entry of A or its entry of b), NOISE_RIDGE times w0 times the expected spectral norm of A's
noise (2 sigma sqrt(d + 1) for a symmetric Gaussian matrix): the ridge goes where the noise
is, and the model owner's exact features keep their weight. The noisy A is first projected on
the positive semidefinite cone. The sign
constraint (w <= 0: points increase with the WOE, optbinning's sign) is enforced exactly by
coordinate descent, which converges to the box-constrained optimum of a positive definite
quadratic. One solve, no pass over the rows: the fit is as fast at 100,000 rows as at 700.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mpc_credit.training.privacy import NOISE_RIDGE

MIN_RATE = 0.005  # the base rate is clamped to [MIN_RATE, 1 - MIN_RATE]
SWEEPS = 2000
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Fit:
    """The fitted coefficients of the features (<= 0) and the intercept."""

    coefficients: np.ndarray
    intercept: float


def psd(a: np.ndarray) -> np.ndarray:
    """The nearest positive semidefinite matrix (in Frobenius norm) to symmetric part of a."""
    sym = (a + a.T) / 2
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.maximum(values, 0)) @ vectors.T


def ridge(c: float, rate: float, noise_sd: float, noised: np.ndarray) -> np.ndarray:
    """The ridge of each feature: 1/C, plus the scale of A's noise where its statistics have
    some."""
    d = len(noised)
    scale = NOISE_RIDGE * rate * (1 - rate) * 2 * noise_sd * math.sqrt(d + 1)
    return 1 / c + scale * np.asarray(noised, dtype=float)


def fit(
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    c: float = 1.0,
    noise_sd: float = 0.0,
    noised: np.ndarray | None = None,
) -> Fit:
    """Coefficients and intercept from A ((d+1)^2, ones last), b (d+1), the row count n;
    `noised` marks the features whose statistics carry noise of sd `noise_sd` (default all)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = len(b) - 1
    noised = np.ones(d, dtype=bool) if noised is None else np.asarray(noised, dtype=bool)
    p = min(max(b[-1] / n, MIN_RATE), 1 - MIN_RATE)
    a = psd(a)
    m = p * (1 - p) * a
    m[np.arange(d), np.arange(d)] += ridge(c, p, noise_sd, noised)
    m[d, d] = max(m[d, d], p * (1 - p) * n)  # the intercept's curvature: n w0 at least
    g = b - p * a[:, -1]
    u = box_descent(m, g, d)
    return Fit(u[:d], calibrated_intercept(a, u[:d], n, p))


def calibrated_intercept(a: np.ndarray, w: np.ndarray, n: int, rate: float) -> float:
    """The intercept that makes the mean predicted PD the base rate, from A alone.

    With s = x . w over the rows (mean m, variance v from A's column sums and feature block)
    taken as normal, E[sigma(b + s)] ~ sigma((b + m) / sqrt(1 + pi v / 8)) (the probit
    approximation of the logistic-normal integral), which equals `rate` at
    b = logit(rate) sqrt(1 + pi v / 8) - m. The quadratic fit's own intercept is off by its
    approximation of the loss (too many predicted bads on German credit: 0.34 against 0.30).
    """
    d = len(w)
    m = float(a[:d, -1] @ w) / n
    v = max(float(w @ a[:d, :d] @ w) / n - m * m, 0.0)
    return math.log(rate / (1 - rate)) * math.sqrt(1 + math.pi * v / 8) - m


def box_descent(m: np.ndarray, g: np.ndarray, d: int) -> np.ndarray:
    """argmin (1/2) u^T m u - g^T u over u[:d] <= 0 (m positive definite), by coordinates."""
    u = np.zeros(len(g))
    diag = np.diag(m).copy()
    for _ in range(SWEEPS):
        moved = 0.0
        for j in range(len(g)):
            new = u[j] + (g[j] - m[j] @ u) / diag[j]
            if j < d:
                new = min(new, 0.0)
            moved = max(moved, abs(new - u[j]))
            u[j] = new
        if moved < TOLERANCE:
            break
    return u
