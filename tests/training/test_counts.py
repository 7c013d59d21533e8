"""Secure per-bin bad counts equal the plaintext counts exactly when noise is off."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_credit.errors import DataError
from mpc_credit.training.counts import CountSpec, bad_counts, count_sigma2
from tests.training.german import candidates


def test_secure_counts_equal_plaintext_counts(solo_runtime) -> None:
    _, x, y = candidates()
    spec = CountSpec(n=len(y), lender=0, widths=[x.shape[1]])
    got = solo_runtime.run(bad_counts(solo_runtime, spec, x, y))
    assert got.tolist() == (x.T @ y).tolist()


def test_counts_summed_over_blocks_of_rows_are_exact(solo_runtime, monkeypatch) -> None:
    from mpc_credit.training import counts

    monkeypatch.setattr(counts, "CHUNK_ROWS", 96)  # 1000 rows: 10 full blocks and a ragged one
    _, x, y = candidates()
    spec = CountSpec(n=len(y), lender=0, widths=[x.shape[1]])
    got = solo_runtime.run(bad_counts(solo_runtime, spec, x, y))
    assert got.tolist() == (x.T @ y).tolist()


def test_labels_must_be_zero_or_one(solo_runtime) -> None:
    spec = CountSpec(n=3, lender=0, widths=[2])
    x = np.array([[1, 0], [0, 1], [1, 0]])
    with pytest.raises(DataError, match="0 \\(good\\) or 1"):
        solo_runtime.run(bad_counts(solo_runtime, spec, x, np.array([0, 2, 1])))


def test_noise_grows_with_features_and_shrinks_with_rho() -> None:
    assert count_sigma2(20, 0.5) == 40
    with pytest.raises(ValueError):
        count_sigma2(3, 0)


def test_noise_has_a_floor_that_keeps_the_discrete_bound_clean() -> None:
    assert count_sigma2(1, 10.0) == 25
