"""Synthetic scorecards and institution data, for benchmarks and property tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mpc_credit.scorecard.data import OwnerTable
from mpc_credit.scorecard.model import (
    CategoricalFeature,
    Feature,
    NumericFeature,
    Scaling,
    Scorecard,
)
from mpc_credit.scorecard.reveal import write_table

CATEGORIES = tuple(f"c{i}" for i in range(8))


def scorecard(
    rng: np.random.Generator,
    owners: Sequence[str] = ("bank", "bureau", "telco"),
    n_features: int = 20,
    max_bins: int = 5,
    max_points: int = 60,
    categorical_share: float = 0.3,
) -> Scorecard:
    """A random scorecard with features dealt round-robin over `owners`."""
    feats: list[Feature] = []
    for i in range(n_features):
        owner = owners[i % len(owners)]
        nb = int(rng.integers(1, max_bins + 1))
        pts = tuple(int(p) for p in rng.integers(0, max_points + 1, size=nb))
        missing = int(rng.integers(0, max_points + 1))
        if rng.random() < categorical_share:
            cats = rng.permutation(CATEGORIES)[: nb + 1]
            groups = tuple((str(c),) for c in cats[:nb])
            other = int(rng.integers(0, max_points + 1))
            feats.append(CategoricalFeature(f"f{i:02d}", owner, groups, pts, other, missing))
        else:
            edges = tuple(
                float(e) for e in np.sort(rng.choice(np.arange(-50, 50), nb - 1, replace=False))
            )
            feats.append(NumericFeature(f"f{i:02d}", owner, edges, pts, missing))
    lo = sum(int(f.bin_points.min()) for f in feats)  # type: ignore[union-attr]
    hi = sum(int(f.bin_points.max()) for f in feats)  # type: ignore[union-attr]
    intercept = int(rng.integers(-20, 21))
    cutoff = intercept + int(rng.integers(lo, hi + 1))
    return Scorecard("synthetic", Scaling(20, 50, 600), intercept, cutoff, tuple(feats))


def tables(
    rng: np.random.Generator,
    model: Scorecard,
    n: int,
    missing_share: float = 0.05,
    absent_share: float = 0.0,
) -> tuple[list[str], dict[str, OwnerTable]]:
    """Random data for every owner: ids, rows shuffled per owner, some cells missing.

    `absent_share` of applicants are left out at each owner but the first.
    """
    ids = [f"S{i:07d}" for i in range(n)]
    out: dict[str, OwnerTable] = {}
    for k, owner in enumerate(model.owners):
        keep = np.ones(n, dtype=bool) if k == 0 else rng.random(n) >= absent_share
        order = rng.permutation(np.flatnonzero(keep))
        cols = {}
        for f in model.features_of(owner):
            miss = rng.random(len(order)) < missing_share
            if isinstance(f, CategoricalFeature):
                vals = rng.choice(np.array(CATEGORIES, dtype=object), len(order))
                vals[miss] = None
            else:
                vals = rng.integers(-60, 60, size=len(order)).astype(float)
                vals[miss] = np.nan
            cols[f.name] = vals
        out[owner] = OwnerTable(owner, Path(f"{owner}.csv"), tuple(ids[i] for i in order), cols)
    return ids, out


def write_owner_csv(table: OwnerTable, path: str | Path) -> None:
    """Write a table in the institution data format (empty cell = missing)."""
    names = list(table.columns)
    cols = [table.columns[c] for c in names]

    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    rows = [[aid, *(cell(c[i]) for c in cols)] for i, aid in enumerate(table.ids)]
    write_table(path, ["applicant_id", *names], rows)
