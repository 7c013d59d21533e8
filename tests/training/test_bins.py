"""Candidate bins: quantile edges, rare categories grouped, missing and unknown rows."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_credit.errors import DataError
from mpc_credit.training.bins import onehot, propose


def test_numeric_quantile_edges_are_distinct_and_balanced() -> None:
    x = np.arange(1000, dtype=float)
    c = propose("amount", x, max_bins=10)
    assert len(c.edges) == 9 and list(c.edges) == sorted(set(c.edges))
    counts = np.bincount(c.bin_of(x), minlength=c.n_bins)
    assert counts[:-1].tolist() == [100] * 10 and counts[-1] == 0


def test_numeric_with_few_distinct_values_gets_fewer_bins() -> None:
    x = np.array([1.0, 2.0, 2.0, 3.0] * 30 + [np.nan] * 5)
    c = propose("n", x, max_bins=10)
    assert c.edges == (2.0, 3.0)
    b = c.bin_of(x)
    assert b[:4].tolist() == [0, 1, 1, 2] and (b[-5:] == c.n_bins - 1).all()


def test_rare_categories_are_grouped() -> None:
    x = np.array(["a"] * 60 + ["b"] * 36 + ["c"] * 2 + ["d"] * 2 + [None] * 3, dtype=object)
    c = propose("k", x, max_bins=2)
    assert c.groups == (("a",), ("b",), ("c", "d"))
    assert c.bin_of(np.array(["d", None, "zz"], dtype=object)).tolist() == [2, 3, 3]


def test_onehot_puts_unknown_rows_in_the_missing_bin() -> None:
    col = np.array([1.0, 5.0, np.nan] * 10)
    c = propose("v", col, max_bins=2)
    rows = np.array([1, -1, 0, 2])
    m = onehot(c, col, rows)
    assert m.shape == (4, c.n_bins) and (m.sum(axis=1) == 1).all()
    assert m[:, -1].tolist() == [0, 1, 0, 1]


def test_bad_features_are_refused() -> None:
    with pytest.raises(DataError, match="single value"):
        propose("flat", np.ones(100))
    with pytest.raises(DataError, match="too few"):
        propose("short", np.arange(20.0), max_bins=10)
