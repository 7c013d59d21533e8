"""The owner's binning from its (noisy) counts: merge candidate bins, then WOE and IV (numpy).

Runs at the feature's owner on what it holds: the exact total per candidate bin (its own data)
and the noisy bad count per bin (counts.py). Bad counts are clipped to [0, total] first
(post-processing keeps the DP guarantee). Then, over the value bins (the missing bin stays
apart):

1. monotone (numeric, when asked): pool adjacent violators on the bad rate, in the direction
   ("auto": the one with the higher IV) whose pooled bins carry the most information;
2. minimum share: a value bin holding less than `min_share` of the rows merges with the
   neighbour whose bad rate is closest (categorical groups: with the closest bad rate of all);
3. WOE = ln((good_i + a) / (G + a k)) - ln((bad_i + a) / (B + a k)), optbinning's sign
   (high risk = negative WOE), with a = 0.5 so a noisy zero count gives no infinite WOE;
   IV = sum over bins of (good share - bad share) * WOE. A missing bin holding less than
   `min_share` gets WOE 0 (optbinning's default for missing values) and adds no IV.

A feature whose IV is below `min_iv` is dropped by the caller (`Binned.kept`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mpc_credit.training.bins import Candidates

SMOOTHING = 0.5
MIN_SHARE = 0.05
MIN_IV = 0.02
Monotone = Literal["auto", "ascending", "descending", "none"]


@dataclass(frozen=True)
class Binned:
    """A feature's final bins: value bins (edges or groups), then missing; WOE and counts."""

    cand: Candidates
    groups: tuple[tuple[int, ...], ...]  # candidate value bins merged into each final bin
    total: np.ndarray  # rows per final bin, missing last
    bad: np.ndarray  # clipped noisy bads per final bin, missing last
    woe: np.ndarray  # per final bin, missing last
    iv: float
    min_iv: float = MIN_IV

    @property
    def kept(self) -> bool:
        return self.iv >= self.min_iv

    @property
    def edges(self) -> tuple[float, ...]:
        """Numeric: the candidate edges that still separate two final bins."""
        return tuple(self.cand.edges[g[-1]] for g in self.groups[:-1])

    @property
    def categories(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(c for i in g for c in self.cand.groups[i]) for g in self.groups)

    def candidate_woe(self) -> np.ndarray:
        """WOE of each candidate bin (missing last): the owner's WOE column is this[bin]."""
        out = np.empty(self.cand.n_bins)
        for final, g in enumerate(self.groups):
            out[list(g)] = self.woe[final]
        out[-1] = self.woe[-1]
        return out


def merge(
    cand: Candidates,
    total: np.ndarray,
    bad: np.ndarray,
    *,
    monotone: Monotone = "auto",
    min_share: float = MIN_SHARE,
    min_iv: float = MIN_IV,
) -> Binned:
    """Final bins of one feature from its candidate totals and noisy bad counts."""
    total = np.asarray(total, dtype=float)
    bad = np.clip(np.asarray(bad, dtype=float), 0, total)
    groups = [(i,) for i in range(cand.n_bins - 1)]
    if cand.kind == "categorical":
        order = np.argsort(_rate(total[:-1], bad[:-1]), kind="stable")
        groups = [groups[i] for i in order]
    elif monotone != "none":
        options = ("ascending", "descending") if monotone == "auto" else (monotone,)
        pooled = [_pool(groups, total, bad, d == "ascending") for d in options]
        groups = max(pooled, key=lambda g: _finish(cand, g, total, bad, min_share, min_iv).iv)
    groups = _small_merged(groups, total, bad, min_share * total.sum())
    return _finish(cand, groups, total, bad, min_share, min_iv)


def _rate(total: np.ndarray, bad: np.ndarray) -> np.ndarray:
    return (bad + SMOOTHING) / (total + 2 * SMOOTHING)


def _sums(groups, x: np.ndarray) -> np.ndarray:
    return np.array([x[list(g)].sum() for g in groups])


def _pool(groups, total, bad, ascending: bool) -> list[tuple[int, ...]]:
    """Pool adjacent violators: merge neighbours until the bad rate is monotone."""
    out: list[tuple[int, ...]] = []
    for g in groups:
        out.append(g)
        while len(out) > 1:
            r = _rate(_sums(out[-2:], total), _sums(out[-2:], bad))
            if (r[0] <= r[1]) == ascending or r[0] == r[1]:
                break
            last = out.pop()
            out[-1] = out[-1] + last
    return out


def _small_merged(groups, total, bad, min_rows: float) -> list[tuple[int, ...]]:
    """Merge the smallest bin under `min_rows` into its neighbour of closest bad rate."""
    groups = list(groups)
    while len(groups) > 1:
        t = _sums(groups, total)
        i = int(np.argmin(t))
        if t[i] >= min_rows:
            break
        r = _rate(t, _sums(groups, bad))
        near = [j for j in (i - 1, i + 1) if 0 <= j < len(groups)]
        j = min(near, key=lambda k: abs(r[k] - r[i]))
        lo, hi = min(i, j), max(i, j)
        groups[lo : hi + 1] = [groups[lo] + groups[hi]]
    return groups


def _finish(cand, groups, total, bad, min_share, min_iv) -> Binned:
    t = np.append(_sums(groups, total), total[-1])
    b = np.append(_sums(groups, bad), bad[-1])
    good = t - b
    k = len(t)
    g_share = (good + SMOOTHING) / (good.sum() + SMOOTHING * k)
    b_share = (b + SMOOTHING) / (b.sum() + SMOOTHING * k)
    woe = np.log(g_share / b_share)
    if t[-1] < min_share * t.sum():
        woe[-1] = 0.0
    iv = float(np.sum((g_share - b_share) * woe))
    return Binned(cand, tuple(groups), t, b, woe, iv, min_iv)
