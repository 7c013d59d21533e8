"""Candidate bins an owner proposes from its own values, and its one-hot matrix (plaintext, local).

Numeric: up to `max_bins` value bins cut at distinct quantiles, then a missing bin. Categorical:
one bin per category holding at least `rare_share` of the known values (most frequent first),
one bin grouping the rare ones (if any), then a missing bin. Applicants the owner does not know
(not in the PSI intersection) fall in the missing bin. Bins follow the model file's layout:
numeric bin i holds edges[i-1] <= x < edges[i].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mpc_credit.errors import DataError

DEFAULT_BINS = 10
RARE_SHARE = 0.05
MIN_ROWS_PER_BIN = 5


@dataclass(frozen=True)
class Candidates:
    """One feature's candidate bins: value bins in order, the missing bin last."""

    name: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()

    @property
    def n_bins(self) -> int:
        """Value bins plus the missing bin."""
        return (len(self.edges) + 1 if self.kind == "numeric" else len(self.groups)) + 1

    def bin_of(self, column: np.ndarray) -> np.ndarray:
        """Bin index of each value (NaN / None = missing; an unlisted category -> missing)."""
        missing = self.n_bins - 1
        if self.kind == "numeric":
            x = np.asarray(column, dtype=float)
            idx = np.searchsorted(np.asarray(self.edges, dtype=float), x, side="right")
            return np.where(np.isnan(x), missing, idx).astype(np.int64)
        lookup = {c: i for i, g in enumerate(self.groups) for c in g}
        return np.fromiter(
            (missing if v is None else lookup.get(v, missing) for v in column),
            dtype=np.int64,
            count=len(column),
        )


def propose(
    name: str,
    column: np.ndarray,
    *,
    max_bins: int = DEFAULT_BINS,
    rare_share: float = RARE_SHARE,
) -> Candidates:
    """Candidate bins for one feature from the owner's own values (float or object column)."""
    if max_bins < 2:
        raise DataError(f"feature {name!r}: --bins must be at least 2, not {max_bins}")
    numeric = np.asarray(column).dtype.kind in "iuf"
    known = _known(column, numeric)
    if len(known) < MIN_ROWS_PER_BIN * max_bins:
        raise DataError(
            f"feature {name!r}: {len(known)} known values are too few for {max_bins} bins "
            f"(at least {MIN_ROWS_PER_BIN * max_bins})"
        )
    if len(set(known.tolist())) < 2:
        raise DataError(f"feature {name!r}: has a single value; it cannot separate good from bad")
    if numeric:
        return Candidates(name, "numeric", edges=_quantile_edges(known, max_bins))
    return Candidates(name, "categorical", groups=_category_groups(known, rare_share))


def _known(column: np.ndarray, numeric: bool) -> np.ndarray:
    if numeric:
        x = np.asarray(column, dtype=float)
        return x[~np.isnan(x)]
    return np.asarray([v for v in column if v is not None], dtype=object)


def _quantile_edges(x: np.ndarray, max_bins: int) -> tuple[float, ...]:
    """Distinct quantile cut points; a cut equal to the minimum would leave its bin empty."""
    qs = np.quantile(x, np.arange(1, max_bins) / max_bins, method="higher")
    edges = np.unique(qs)
    return tuple(float(e) for e in edges[edges > x.min()])


def _category_groups(x: np.ndarray, rare_share: float) -> tuple[tuple[str, ...], ...]:
    counts = Counter(str(v) for v in x)
    ordered = sorted(counts, key=lambda c: (-counts[c], c))
    common = [c for c in ordered if counts[c] >= rare_share * len(x)]
    rare = [c for c in ordered if counts[c] < rare_share * len(x)]
    return tuple((c,) for c in common) + ((tuple(rare),) if rare else ())


def onehot(cand: Candidates, column: np.ndarray, owner_rows: np.ndarray) -> np.ndarray:
    """(n, n_bins) 0/1 matrix in the lender's row order; owner_rows -1 = unknown -> missing."""
    known = owner_rows >= 0
    bins = np.full(len(owner_rows), cand.n_bins - 1, dtype=np.int64)
    if known.any():
        picked = np.asarray(column, dtype=object if cand.kind == "categorical" else float)
        bins[known] = cand.bin_of(picked[owner_rows[known]])
    out = np.zeros((len(owner_rows), cand.n_bins), dtype=np.int64)
    out[np.arange(len(owner_rows)), bins] = 1
    return out


def onehots(
    cands: Sequence[Candidates], columns: Sequence[np.ndarray], owner_rows: np.ndarray
) -> np.ndarray:
    """All of an owner's features side by side: (n, sum of n_bins)."""
    return np.hstack([onehot(c, col, owner_rows) for c, col in zip(cands, columns, strict=True)])
