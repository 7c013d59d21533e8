"""Holdout metrics of a scorecard at the lender: AUC, Gini, KS and the ROC curve (numpy only).

Labels are 1 = bad, 0 = good; a higher score means a lower risk. So AUC is the chance that a
random good applicant scores above a random bad one (ties count half), which is scikit-learn's
`roc_auc_score(bad, -score)`; Gini = 2 AUC - 1; KS is the largest gap between the score
distributions of the bad and the good applicants. The ROC curve runs over score cutoffs from the
lowest score up: declining every applicant below the cutoff, the share of bad ones declined (true
positive rate) against the share of good ones declined (false positive rate). `bootstrap` gives
their 95 % confidence intervals by stratified resampling of the holdout.
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


def bootstrap(
    labels: np.ndarray, scores: np.ndarray, runs: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals of AUC, Gini and KS over `runs` stratified bootstrap resamples.

    Each resample draws the bad applicants with replacement from the bad ones and the good from
    the good, so every resample keeps the holdout's bad count. Vectorized: a resample is a count
    per block of scores (`_blocks`), and AUC and KS follow from cumulative counts; a chunk of
    runs at a time keeps memory bounded (about 200 MB at most). 1000 runs on 30,000 scores take
    well under a second.
    """
    if runs < 1:
        raise ValueError(f"bootstrap: runs must be positive, not {runs}")
    y, s = _checked(labels, scores)
    index, n = _blocks(y, s)
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(n, len(y)))  # runs at a time: arrays of 4e6 numbers
    auc, ks = [], []
    for start in range(0, runs, chunk):
        k = min(chunk, runs - start)
        bad = _resampled_counts(rng, index[y == 1], n, k)
        good = _resampled_counts(rng, index[y == 0], n, k)
        a, d = _auc_ks(bad, good)
        auc.append(a)
        ks.append(d)
    a_lo, a_hi = np.percentile(np.concatenate(auc), [2.5, 97.5])
    k_lo, k_hi = np.percentile(np.concatenate(ks), [2.5, 97.5])
    return {
        "auc": (float(a_lo), float(a_hi)),
        "gini": (float(2 * a_lo - 1), float(2 * a_hi - 1)),
        "ks": (float(k_lo), float(k_hi)),
    }


def _blocks(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, int]:
    """Each applicant's block and the number of blocks: distinct scores in ascending order, with
    consecutive scores held only by good (or only by bad) applicants merged into one block. The
    merge changes neither AUC (no bad applicant lies between two merged goods) nor KS (the gap
    moves one way inside a block), and makes resampling a few times cheaper."""
    values, index = np.unique(s, return_inverse=True)
    bad = np.bincount(index, weights=y, minlength=len(values)) > 0
    good = np.bincount(index, weights=1 - y, minlength=len(values)) > 0
    kind = bad.astype(np.int64) + 2 * good  # 1 bad only, 2 good only, 3 both
    start = np.r_[True, (kind[1:] != kind[:-1]) | (kind[1:] == 3)]
    block = np.cumsum(start) - 1
    return block[index.ravel()], int(block[-1]) + 1


def _resampled_counts(rng: np.random.Generator, index: np.ndarray, n: int, runs: int) -> np.ndarray:
    """(runs, n) counts per block of `runs` resamples of `index` with replacement."""
    drawn = index[rng.integers(0, len(index), size=(runs, len(index)), dtype=np.int32)]
    drawn += (np.arange(runs) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=runs * n).reshape(runs, n)


def _auc_ks(bad: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC and KS per row of counts per distinct score (ascending): a good applicant beats
    every bad one scoring lower and half of those scoring the same."""
    n_bad, n_good = bad.sum(axis=1), good.sum(axis=1)
    cum_bad = np.cumsum(bad, axis=1)
    beaten = (good * (cum_bad - bad / 2)).sum(axis=1)
    gap = cum_bad / n_bad[:, None] - np.cumsum(good, axis=1) / n_good[:, None]
    return beaten / (n_bad * n_good), np.abs(gap).max(axis=1)
