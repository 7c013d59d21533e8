"""The exact discrete Laplace sampler has the distribution it claims."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from mpc_credit.training.noise import (
    contributors,
    discrete_gaussian,
    discrete_laplace,
    gaussian_vector,
)


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(3), Fraction(7, 3)])
def test_frequencies_match_the_pmf(scale: Fraction) -> None:
    rng = random.Random(11)
    n = 20000
    x = np.array([discrete_laplace(scale, rng) for _ in range(n)])
    a = math.exp(-1 / float(scale))
    for k in range(-3, 4):
        p = (1 - a) / (1 + a) * a ** abs(k)
        sd = math.sqrt(n * p * (1 - p))
        assert abs(np.sum(x == k) - n * p) < 5 * sd, k
    var = 2 * a / (1 - a) ** 2
    assert abs(x.var() - var) < 0.1 * var
    assert abs(x.mean()) < 5 * math.sqrt(var / n)


def test_samples_are_integers_and_scale_is_checked() -> None:
    assert isinstance(discrete_laplace(Fraction(5)), int)
    with pytest.raises(ValueError):
        discrete_laplace(Fraction(0))


@pytest.mark.parametrize("sigma2", [Fraction(1, 2), Fraction(4), Fraction(9, 2)])
def test_discrete_gaussian_frequencies_match_the_pmf(sigma2: Fraction) -> None:
    rng = random.Random(5)
    n = 20000
    x = gaussian_vector(n, sigma2, rng)
    weights = {k: math.exp(-(k**2) / (2 * float(sigma2))) for k in range(-60, 61)}
    norm = sum(weights.values())
    for k in range(-3, 4):
        p = weights[k] / norm
        sd = math.sqrt(n * p * (1 - p))
        assert abs(np.sum(x == k) - n * p) < 5 * sd, k
    var = sum(k * k * w for k, w in weights.items()) / norm
    assert abs(x.var() - var) < 0.1 * var


def test_large_scales_stay_exact_integers() -> None:
    big = discrete_gaussian(Fraction(2**66))
    assert isinstance(big, int) and abs(big) < 2**45


def test_receivers_never_contribute() -> None:
    assert list(contributors(3, [1])) == [0, 2]
    assert list(contributors(4, [0, 2])) == [1, 3]
