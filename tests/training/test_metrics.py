"""Holdout metrics against scikit-learn and scipy on random, tied and separable scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from mpc_credit.errors import DataError
from mpc_credit.training.metrics import histogram, metrics, roc_curve

labelled = st.lists(
    st.tuples(st.integers(0, 1), st.integers(300, 700)), min_size=2, max_size=200
).filter(lambda rows: len({y for y, _ in rows}) == 2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's p-value of tiny samples
@settings(max_examples=200, deadline=None)
@given(labelled)
def test_auc_gini_ks_equal_sklearn_and_scipy(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    m = metrics(y, s)
    assert m.auc == pytest.approx(roc_auc_score(y, -s), abs=1e-12)
    assert m.gini == pytest.approx(2 * roc_auc_score(y, -s) - 1, abs=1e-12)
    assert m.ks == pytest.approx(
        ks_2samp(s[y == 1], s[y == 0], method="asymp").statistic, abs=1e-12
    )
    assert (m.n, m.bad) == (len(y), int(y.sum()))


@settings(max_examples=100, deadline=None)
@given(labelled)
def test_roc_curve_is_sklearns(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    fpr, tpr = roc_curve(y, s)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, -s, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)


def test_perfect_inverted_and_uninformative_scores():
    y = np.array([1, 1, 0, 0])
    assert metrics(y, np.array([1, 2, 3, 4])).auc == 1.0  # bads score lowest
    assert metrics(y, np.array([4, 3, 2, 1])).auc == 0.0
    flat = metrics(y, np.array([5, 5, 5, 5]))
    assert (flat.auc, flat.gini, flat.ks) == (0.5, 0.0, 0.0)
    assert metrics(y, np.array([1, 2, 3, 4])).ks == 1.0


def test_histogram_counts_every_applicant_once():
    y = np.array([0, 1, 0, 1, 0, 0])
    s = np.array([500, 420, 610, 455, 580, 700])
    edges, good, bad = histogram(y, s, bins=4)
    assert len(edges) == 5 and edges[0] == 420 and edges[-1] == 700
    assert good.sum() == 4 and bad.sum() == 2


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 0, 0], [1, 2, 3], "both good and bad"),
        ([0, 2, 1], [1, 2, 3], "0 \\(good\\) or 1 \\(bad\\)"),
        ([0, 1], [1, 2, 3], "labels for"),
    ],
)
def test_unusable_holdouts_are_refused(labels, scores, message):
    with pytest.raises(DataError, match=message):
        metrics(np.array(labels), np.array(scores))
