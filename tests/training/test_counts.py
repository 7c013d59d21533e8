"""Secure per-bin good and bad counts equal the plaintext counts exactly when noise is off."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mpc_credit.errors import DataError
from mpc_credit.training.counts import Counts, CountSpec, label_counts, local_counts
from tests.training.german import candidates


def test_secure_counts_equal_plaintext_counts(solo_runtime) -> None:
    _, x, y = candidates()
    spec = CountSpec(n=len(y), lender=0, widths=[x.shape[1]])
    got = solo_runtime.run(label_counts(solo_runtime, spec, x, y))
    assert got.bad.tolist() == (x.T @ y).tolist()
    assert got.good.tolist() == (x.T @ (1 - y)).tolist()


def test_counts_summed_over_blocks_of_rows_are_exact(solo_runtime, monkeypatch) -> None:
    from mpc_credit.training import counts

    monkeypatch.setattr(counts, "CHUNK_ROWS", 96)  # 1000 rows: 10 full blocks and a ragged one
    _, x, y = candidates()
    spec = CountSpec(n=len(y), lender=0, widths=[x.shape[1]])
    got = solo_runtime.run(label_counts(solo_runtime, spec, x, y))
    assert got.bad.tolist() == (x.T @ y).tolist()


def test_the_lenders_own_counts_are_local_and_exact_or_noised_by_it() -> None:
    _, x, y = candidates()
    exact = local_counts(x, y)
    assert exact.bad.tolist() == (x.T @ y).tolist()
    assert exact.good.tolist() == (x.T @ (1 - y)).tolist()
    noisy = local_counts(x, y, Fraction(400))
    assert noisy.bad.tolist() != exact.bad.tolist()
    assert np.std(noisy.bad - exact.bad) == pytest.approx(20, rel=0.4)


def test_merging_sees_noisy_counts_clipped_at_zero() -> None:
    total, bad = Counts(np.array([5, -3, 2]), np.array([-1, 4, 0])).clipped()
    assert total.tolist() == [5, 4, 2] and bad.tolist() == [0, 4, 0]


def test_labels_must_be_zero_or_one(solo_runtime) -> None:
    spec = CountSpec(n=3, lender=0, widths=[2])
    x = np.array([[1, 0], [0, 1], [1, 0]])
    with pytest.raises(DataError, match="0 \\(good\\) or 1"):
        solo_runtime.run(label_counts(solo_runtime, spec, x, np.array([0, 2, 1])))
