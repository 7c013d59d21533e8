"""Holdout metrics of a scorecard at the lender: AUC, Gini, KS and the ROC curve (numpy only).

Labels are 1 = bad, 0 = good; a higher score means a lower risk. So AUC is the chance that a
random good applicant scores above a random bad one (ties count half), which is scikit-learn's
`roc_auc_score(bad, -score)`; Gini = 2 AUC - 1; KS is the largest gap between the score
distributions of the bad and the good applicants. The ROC curve runs over score cutoffs from the
lowest score up: declining every applicant below the cutoff, the share of bad ones declined (true
positive rate) against the share of good ones declined (false positive rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc_credit.errors import DataError


@dataclass(frozen=True)
class Metrics:
    """How well the scores separate the holdout's bad applicants from its good ones."""

    n: int
    bad: int
    auc: float
    ks: float

    @property
    def gini(self) -> float:
        return 2 * self.auc - 1


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise DataError(f"metrics: {y.shape} labels for {s.shape} scores")
    if not np.isin(y, (0, 1)).all():
        raise DataError("metrics: every label must be 0 (good) or 1 (bad)")
    bad = int(y.sum())
    if bad == 0 or bad == len(y):
        raise DataError(
            f"metrics: the holdout needs both good and bad applicants ({bad} bad of {len(y)})"
        )
    return y.astype(np.int64), s


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), from (0, 0) to (1, 1), one point per distinct
    score: declining every applicant with a score up to it."""
    y, s = _checked(labels, scores)
    cut = np.unique(s)
    bad_at = np.searchsorted(np.sort(s[y == 1]), cut, side="right")
    good_at = np.searchsorted(np.sort(s[y == 0]), cut, side="right")
    tpr = np.r_[0.0, bad_at / (y == 1).sum()]
    fpr = np.r_[0.0, good_at / (y == 0).sum()]
    return fpr, tpr


def metrics(labels: np.ndarray, scores: np.ndarray) -> Metrics:
    """AUC (by ranks), KS (over every cutoff) and the counts of a labelled holdout."""
    y, s = _checked(labels, scores)
    n_bad = int(y.sum())
    n_good = len(y) - n_bad
    ranks = _midranks(-s)  # rank by risk: the lowest score ranks highest
    auc = (ranks[y == 1].sum() - n_bad * (n_bad + 1) / 2) / (n_bad * n_good)
    fpr, tpr = roc_curve(y, s)
    return Metrics(n=len(y), bad=n_bad, auc=float(auc), ks=float(np.max(np.abs(tpr - fpr))))


def histogram(
    labels: np.ndarray, scores: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score distribution: `bins` + 1 edges over the score range, goods and bads per bin."""
    y, s = _checked(labels, scores)
    edges = np.histogram_bin_edges(s, bins=bins)
    good = np.histogram(s[y == 0], bins=edges)[0]
    bad = np.histogram(s[y == 1], bins=edges)[0]
    return edges, good, bad
