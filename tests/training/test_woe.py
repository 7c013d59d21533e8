"""Bin merging (monotone, minimum share), WOE and IV from per-bin counts."""

from __future__ import annotations

import numpy as np

from mpc_credit.training.bins import Candidates
from mpc_credit.training.woe import SMOOTHING, merge

NUM = Candidates("x", "numeric", edges=(1.0, 2.0, 3.0, 4.0))  # 5 value bins + missing


def rates(b):
    return b.bad[:-1] / b.total[:-1]


def test_monotone_pooling_merges_violators() -> None:
    total = np.array([100, 100, 100, 100, 100, 0])
    bad = np.array([10, 30, 20, 40, 50, 0])  # 30 > 20 violates ascending
    b = merge(NUM, total, bad, monotone="ascending")
    assert b.groups == ((0,), (1, 2), (3,), (4,))
    assert b.edges == (1.0, 3.0, 4.0)
    assert np.all(np.diff(rates(b)) > 0)
    d = merge(NUM, total, bad, monotone="descending")
    assert np.all(np.diff(rates(d)) <= 0)
    assert merge(NUM, total, bad, monotone="auto").groups == b.groups  # more IV ascending


def test_small_bins_merge_into_the_closest_rate() -> None:
    total = np.array([300, 20, 300, 300, 80, 0])
    bad = np.array([30, 12, 90, 120, 40, 0])
    b = merge(NUM, total, bad, monotone="none", min_share=0.05)
    assert b.total[:-1].min() >= 0.05 * total.sum()
    assert (1, 2) in b.groups  # rate 0.6 is closer to 0.3 than to 0.1


def test_woe_and_iv_formula() -> None:
    total = np.array([400, 300, 200, 100, 100, 50])
    bad = np.array([40, 60, 80, 50, 70, 10])
    b = merge(NUM, total, bad, monotone="none", min_share=0.0)
    good, k = total - bad, len(total)
    gs = (good + SMOOTHING) / (good.sum() + SMOOTHING * k)
    bs = (bad + SMOOTHING) / (bad.sum() + SMOOTHING * k)
    assert np.allclose(b.woe, np.log(gs / bs))
    assert np.isclose(b.iv, np.sum((gs - bs) * np.log(gs / bs)))
    assert b.woe[0] > 0 > b.woe[4]  # optbinning's sign: riskier bins have lower WOE
    assert np.array_equal(b.candidate_woe(), b.woe)


def test_noisy_counts_are_clipped_and_woe_stays_finite() -> None:
    total = np.array([100, 100, 100, 100, 100, 0])
    bad = np.array([-7, 0, 130, 50, 100, 3])
    b = merge(NUM, total, bad, monotone="none", min_share=0.0)
    assert np.isfinite(b.woe).all()
    assert (b.bad >= 0).all() and (b.bad <= b.total).all()
    assert b.woe[-1] == 0.0  # an empty missing bin is neutral


def test_uninformative_feature_is_dropped() -> None:
    total = np.array([200, 200, 200, 200, 200, 0])
    b = merge(NUM, total, total * 3 // 10, min_iv=0.02)
    assert b.iv < 0.02 and not b.kept


def test_categories_merge_by_bad_rate() -> None:
    cand = Candidates("c", "categorical", groups=(("a",), ("b",), ("c",), ("d", "e")))
    total = np.array([400, 300, 270, 30, 0])
    bad = np.array([200, 30, 90, 12, 0])
    b = merge(cand, total, bad)
    assert b.categories[0] == ("b",) and ("c", "d", "e") in b.categories
    assert np.all(np.diff(rates(b)) > 0)
