"""Exact discrete Gaussian noise, and noise contributed inside the MPC by the other parties.

`discrete_gaussian(sigma2)` samples P(X = x) ∝ exp(-x² / (2 sigma2)) over the integers exactly,
by rejection from the discrete Laplace, with rational arithmetic and uniform integers only
(Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for Differential Privacy",
Algorithms 1-3): no floating point, so no floating-point attack on the noise (Mironov 2012).
Randomness comes from the OS (`secrets.SystemRandom`) unless a test passes a seeded
`random.Random`.

Noise nobody can remove: for a value revealed to parties R, every other party samples its own
share of the noise and secret-shares it; the sum of the shares is added to the secret value
before the output. No receiver learns any share. Each of the c contributors draws variance
sigma2 / (c - t + 1) (privacy.share_sigma2, t MPyC's threshold), so any coalition of at most t
parties, receivers included, misses shares of total variance sigma2 at least: the release is
as private as one draw at sigma2 against every coalition the honest-majority threat model
admits, with the variance of one draw when the parties do not collude.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from mpc_credit.training.privacy import share_sigma2

Rng = random.Random
MAX_NOISE = 2**52  # |noise| below this stays exact through float64 (fixed-point input)


def _system() -> Rng:
    return secrets.SystemRandom()


def _bernoulli(p: Fraction, rng: Rng) -> bool:
    return rng.randrange(p.denominator) < p.numerator


def _bernoulli_exp(gamma: Fraction, rng: Rng) -> bool:
    """Bernoulli(exp(-gamma)) for rational gamma >= 0, exactly (CKS20 Algorithm 1)."""
    while gamma > 1:
        if not _bernoulli_exp(Fraction(1), rng):
            return False
        gamma -= 1
    k = 1
    while _bernoulli(gamma / k, rng):
        k += 1
    return k % 2 == 1


def discrete_laplace(scale: Fraction, rng: Rng | None = None) -> int:
    """One sample of the discrete Laplace distribution with `scale` > 0 (CKS20 Algorithm 2)."""
    rng = rng or _system()
    scale = Fraction(scale)
    if scale <= 0:
        raise ValueError("scale must be positive")
    s, t = scale.denominator, scale.numerator  # scale = t / s
    while True:
        u = rng.randrange(t)
        if not _bernoulli_exp(Fraction(u, t), rng):
            continue
        v = 0
        while _bernoulli_exp(Fraction(1), rng):
            v += 1
        y = (u + t * v) // s
        negative = rng.randrange(2) == 1
        if negative and y == 0:
            continue
        if y >= MAX_NOISE:  # pragma: no cover - never at the scales used here
            continue
        return -y if negative else y


def discrete_gaussian(sigma2: Fraction, rng: Rng | None = None) -> int:
    """One sample of the discrete Gaussian with variance parameter sigma2 > 0 (CKS20 Alg. 3)."""
    rng = rng or _system()
    sigma2 = Fraction(sigma2)
    if sigma2 <= 0:
        raise ValueError("sigma2 must be positive")
    t = math.isqrt(math.floor(sigma2)) + 1
    while True:
        y = discrete_laplace(Fraction(t), rng)
        gamma = (abs(y) - sigma2 / t) ** 2 / (2 * sigma2)
        if _bernoulli_exp(gamma, rng):
            return y


def gaussian_vector(size: int, sigma2: Fraction, rng: Rng | None = None) -> np.ndarray:
    """`size` independent discrete Gaussian samples as int64."""
    rng = rng or _system()
    return np.array([discrete_gaussian(sigma2, rng) for _ in range(size)], dtype=np.int64)


def shared_noise(
    mpc: Any,
    sectype: Any,
    shape: tuple[int, ...],
    receivers: Sequence[int],
    sigma2: Fraction | None,
    rng: Rng | None = None,
) -> Any:
    """Noise of total variance `sigma2` (None: zero), one share from every party not in
    `receivers`.

    Each process calls this with the same arguments; a contributor samples its own integer
    share in the sectype's units (1 for SecInt, 2^-f for SecFxp), everyone else a placeholder.
    """
    zero = sectype.array(np.zeros(shape, dtype=np.int64))
    if sigma2 is None:
        return zero
    size = int(np.prod(shape))
    total = zero
    who = contributors(len(mpc.parties), receivers)
    sigma2 = share_sigma2(sigma2, len(who), mpc.threshold)
    for pid in who:
        mine = gaussian_vector(size, sigma2, rng) if pid == mpc.pid else np.zeros(size, np.int64)
        total = total + mpc.input(_as_secure(sectype, mine.reshape(shape)), senders=pid)
    return total


def _as_secure(sectype: Any, units: np.ndarray) -> Any:
    """Integers in the sectype's own units: 2^-f for fixed point (exact while |units| < 2^53)."""
    f = getattr(sectype, "frac_length", 0)
    if not f:
        return sectype.array(units)
    return sectype.array(units.astype(float) / 2**f, integral=False)


def contributors(m: int, receivers: Sequence[int]) -> Sequence[int]:
    """The parties that add noise to a release for `receivers`."""
    return [p for p in range(m) if p not in receivers]
