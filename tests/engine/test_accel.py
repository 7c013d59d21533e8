"""The vectorized sampling gives what MPyC's own code gives (PRF) or the same distribution."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from mpc_credit.engine import accel
from mpc_credit.engine.runtime import make_runtime


@pytest.fixture(scope="module")
def originals():
    make_runtime(0, [("localhost", 0)], ssl=False)  # installs the patch
    return accel._installed


@pytest.mark.parametrize("bound", [2**31 - 1, 2**64, 2**61 - 1, (1 << 127) - 1, 3, 2**8])
@pytest.mark.parametrize("n", [40, 1000, (7, 9)])
def test_prf_values_equal_mpyc(originals, bound, n):
    from mpyc.thresha import PRF

    prf = PRF(secrets.token_bytes(16), bound)
    mine, theirs = prf(b"uci", n), originals["prf_call"](prf, b"uci", n)
    if isinstance(n, tuple):
        assert mine.shape == theirs.shape and (mine == theirs).all()
    else:
        assert list(mine) == list(theirs)


def test_small_batches_use_mpyc_itself(originals):
    from mpyc.thresha import PRF

    prf = PRF(b"k" * 16, 1000)
    assert prf(b"x") == originals["prf_call"](prf, b"x")
    assert prf(b"x", 3) == originals["prf_call"](prf, b"x", 3)


def test_uniform_below_covers_the_range_evenly():
    x = accel.uniform_below(10, 100_000).astype(np.int64)
    counts = np.bincount(x, minlength=10)
    assert x.min() == 0 and x.max() == 9
    assert (abs(counts - 10_000) < 600).all()  # 6 sigma


def test_random_split_shares_recombine_to_the_secret(originals):
    from mpyc import finfields, thresha

    field = finfields.GF(2**61 - 1)
    secret = field.array(np.arange(50, dtype=object))
    shares = thresha.np_random_split(field, secret, 1, 3)
    assert shares.shape == (3, 50)
    rec = thresha.np_recombine(field, [(1, shares[0]), (3, shares[2])])
    assert list(rec) == list(range(50))
    again = thresha.np_random_split(field, secret, 1, 3)
    assert (again != shares).any()  # fresh randomness each time


@pytest.mark.parametrize(("t", "m"), [(0, 1), (1, 3), (2, 5), (3, 7)])
def test_small_field_split_recombines_from_any_t_plus_1_shares(originals, t, m):
    from mpyc import finfields, thresha

    field = finfields.GF(70368744177643)  # a 46-bit prime, below the uint64 bound 2^47
    secret = field.array(np.array([0, 1, 5, 70368744177642] * 10, dtype=object))
    shares = thresha.np_random_split(field, secret, t, m)
    assert shares.shape == (m, 40) and shares.dtype == object
    for first in range(m - t):
        pts = [(i + 1, shares[i]) for i in range(first, first + t + 1)]
        assert list(thresha.np_recombine(field, pts)) == list(secret.value)
