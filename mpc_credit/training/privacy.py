"""The DP plan of a training run: what is released to whom, its sensitivity, and its noise.

Neighbouring data sets differ by replacing one applicant of the lender's training set: its row
at every owner and its label. The guarantee is distributed DP: for every party P and every
value of P's own data, everything P receives from the run is (epsilon, delta)-DP in the data P
does not hold. (P's own data is known to P, so no release can hide it from P.)

Two releases carry noise, both discrete Gaussian (Canonne, Kamath & Steinke 2020), so the run
composes additively in zCDP rho:

1. counts: the good and bad count of every candidate bin of every noised feature, each owner
   receiving its own. Replacing one applicant moves one unit from one (bin, label) cell to
   another in each feature: squared L2 sensitivity 2 per feature, 2F for F noised features,
   so variance F / rho_counts per count. The lender's own features need no noise when the
   lender is the model owner: their counts are the lender's own data and every release that
   depends on them reaches the lender alone (they leave F).
2. sufficient statistics: A = X~^T X~ and b = X~^T y of the kept features' WOE columns x
   (clipped to [-B, B]) and a column of ones, to the model owner alone (ssp.py fits the
   model from them). Entries computable from the model owner's own data (its own features'
   block, n, and b and the column sums when it is the lender) are released exact; the rest
   carry noise. With the model owner's coordinates fixed, replacing one row changes the
   noised part of A and of b by at most `stats_sensitivity` (d_o noised features, d_k own).

The WOE map feeding the statistics is a function of the owners' noisy counts and of each
owner's own candidate bins only, so it is post-processing of release 1 at every other party,
and release 2's sensitivity is that of a fixed map (adaptive composition). What DP does not
cover is written in the README: the candidate bin edges (quantiles of each owner's own values)
that reach the model owner in the model file, the intersection's size and the feature names.

Noise nobody can remove, with the variance of one draw: the parties outside a release's
receivers each add an independent discrete Gaussian share of variance sigma2 / (c - t + 1)
(c contributors, t MPyC's threshold): any coalition of at most t parties, receivers
included, misses at least c - t + 1 shares, so it faces variance sigma2 at least. The sum
of k discrete Gaussians is not exactly one, but within a divergence exponentially small in
the parameter of each (Kairouz, Liu & Steinke 2021, "The Distributed Discrete Gaussian
Mechanism"), which the floor MIN_SIGMA2 keeps below 1e-50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

MIN_SIGMA2 = 25  # per share: keeps the discretization and summation terms negligible
COUNT_SHARE = 0.5  # of rho, to the counts; the rest to the sufficient statistics
A_SHARE = 0.5  # of the statistics' rho, to A; the rest to b
WOE_BITS = 10  # WOE values in units of 2^-10: the statistics are exact integers
DP_CLIP = 1.0  # WOE clip B with DP (German credit's WOE lies mostly within +-1)
PLAIN_CLIP = 4.0  # without DP: clips only the extreme bins
NOISE_RIDGE = 2.0  # the ridge per unit of A's expected noise norm (ssp.ridge)


@dataclass(frozen=True)
class Budget:
    """A run's zCDP rho, split between the counts and the statistics A and b."""

    rho: float

    @property
    def counts(self) -> float:
        return self.rho * COUNT_SHARE

    @property
    def a(self) -> float:
        return self.rho * (1 - COUNT_SHARE) * A_SHARE

    @property
    def b(self) -> float:
        return self.rho * (1 - COUNT_SHARE) * (1 - A_SHARE)


def count_sigma2(noised_features: int, rho: float) -> float:
    """Variance per released count: squared sensitivity 2F over 2 rho."""
    if not rho > 0:
        raise ValueError("rho must be positive")
    return max(noised_features, 1) / rho


def stats_sensitivity(
    d_other: int, d_own: int, clip: float, labels_own: bool
) -> tuple[float, float]:
    """L2 sensitivities of the noised parts of A (upper triangle) and b.

    With the model owner's coordinates x_k (and the ones column) fixed and the others' x_o,
    x_o' in [-B, B]^d_o: the upper triangle of x_o x_o^T - x_o' x_o'^T has squared norm at most
    (||.||_F^2 + ||diag||^2) / 2 <= B^4 (d_o^2 + d_o / 2), and the cross block
    (x_o - x_o') x_k^T at most 4 B^2 d_o (d_k B^2 + 1): disjoint entries, so their squares add.
    b: (x_o y - x_o' y') has norm <= 2 B sqrt(d_o) for equal labels; when the model owner does
    not hold the labels a changed label adds x_k (y - y'), and the worst case is
    max(4 B^2 d_o, d B^2 + 1).
    """
    b2 = clip**2
    a = math.sqrt(b2**2 * (d_other**2 + d_other / 2) + 4 * b2 * d_other * (d_own * b2 + 1))
    if labels_own:
        b = 2 * clip * math.sqrt(d_other)
    else:
        b = math.sqrt(max(4 * b2 * d_other, (d_other + d_own) * b2 + 1))
    return a, b


def gaussian_sigma2(sensitivity: float, rho: float) -> float:
    """Variance of the Gaussian mechanism that is rho-zCDP at this L2 sensitivity."""
    if not rho > 0:
        raise ValueError("rho must be positive")
    return sensitivity**2 / (2 * rho)


def share_sigma2(sigma2: float, contributors: int, threshold: int) -> Fraction:
    """Each contributor's share of the variance: any t-coalition still misses sigma2."""
    honest = contributors - threshold + 1
    if honest < 1:
        raise ValueError(f"{contributors} contributors cannot hide noise from {threshold} parties")
    return max(Fraction(sigma2) / honest, Fraction(MIN_SIGMA2))


def clip_for(epsilon: float | None) -> float:
    """The WOE clip B: small with DP (sensitivity grows with B^2), a no-op guard without."""
    return PLAIN_CLIP if epsilon is None else DP_CLIP


def woe_units(woe: np.ndarray, clip: float) -> np.ndarray:
    """WOE values clipped to [-clip, clip], in integer units of 2^-WOE_BITS (exact statistics)."""
    return np.rint(np.clip(np.asarray(woe, dtype=float), -clip, clip) * 2**WOE_BITS).astype(
        np.int64
    )


def clipped_woe(woe: np.ndarray, clip: float) -> np.ndarray:
    """The WOE values the regression sees and the points use: woe_units in WOE units."""
    return woe_units(woe, clip) / 2**WOE_BITS


def describe(epsilon: float | None, lender_is_model_owner: bool) -> list[str]:
    """The mechanism in words, for the report and the docs."""
    if epsilon is None:
        return [
            "No differential privacy (--no-dp): each owner received exact good and bad counts "
            "of its bins, and the model owner exact sufficient statistics."
        ]
    lender = (
        "The lender's own features use exact counts (its own rows; every release that depends "
        "on them reaches the lender alone)."
        if lender_is_model_owner
        else "The lender's counts carry its own noise, at the same variance as the others'."
    )
    return [
        f"Distributed (epsilon {epsilon:g}, delta 1e-6)-differential privacy for each party's "
        "view, per applicant of the lender's training set (its row at every owner and its "
        "label), composed in zCDP: half of rho to the counts, half to the statistics.",
        "Counts: the good and bad count of every candidate bin, released to the feature's "
        "owner with discrete Gaussian noise added inside the MPC by the other parties "
        "(squared sensitivity 2 per feature). " + lender,
        f"Coefficients: sufficient-statistics perturbation. The model owner receives "
        f"A = X^T X and b = X^T y of the kept WOE columns (clipped to +-{DP_CLIP:g}) with "
        "discrete Gaussian noise on every entry that involves another party's data, and fits "
        "a quadratic approximation of the logistic loss with a ridge set by the noise scale.",
        "Not covered: candidate bin edges (quantiles of each owner's own values, which reach "
        "the model owner in the model file), feature names, the intersection's size.",
    ]
