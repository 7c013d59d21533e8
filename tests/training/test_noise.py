"""The exact discrete Laplace sampler has the distribution it claims."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from mpc_credit.training.noise import contributors, discrete_laplace, laplace_vector


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(3), Fraction(7, 3)])
def test_frequencies_match_the_pmf(scale: Fraction) -> None:
    rng = random.Random(11)
    n = 20000
    x = laplace_vector(n, scale, rng)
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


def test_the_receiver_never_contributes() -> None:
    assert list(contributors(3, 1)) == [0, 2]
