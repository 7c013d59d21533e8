"""The German credit data as training tests use it: columns, bad labels, candidate one-hots."""

from __future__ import annotations

import csv
from functools import lru_cache

import numpy as np

from mpc_credit.training.bins import Candidates, onehot, propose
from mpc_credit.training.woe import MIN_IV, merge
from tests.conftest import GERMAN_CREDIT


@lru_cache(maxsize=1)
def load() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feature columns (float for numbers, object for text) and labels (1 = bad)."""
    with GERMAN_CREDIT.open(newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([r["creditability"] == "bad" for r in rows], dtype=np.int64)
    columns = {}
    for name in rows[0]:
        if name == "creditability":
            continue
        values = [r[name] for r in rows]
        try:
            columns[name] = np.array([float(v) for v in values])
        except ValueError:
            columns[name] = np.array(values, dtype=object)
    return columns, y


def candidates(max_bins: int = 10) -> tuple[list[Candidates], np.ndarray, np.ndarray]:
    """Every feature's candidate bins, the side-by-side one-hot matrix, and the labels."""
    columns, y = load()
    cands = [propose(name, col, max_bins=max_bins) for name, col in columns.items()]
    rows = np.arange(len(y))
    x = np.hstack([onehot(c, columns[c.name], rows) for c in cands])
    return cands, x, y


def woe_matrix(rows: int | None = None, min_iv: float = MIN_IV) -> tuple[np.ndarray, np.ndarray]:
    """Plaintext WOE columns of the features with IV >= min_iv (exact counts), and labels."""
    cands, x, y = candidates()
    if rows is not None:
        x, y = x[:rows], y[:rows]
    cols, start = [], 0
    for c in cands:
        block = x[:, start : start + c.n_bins]
        start += c.n_bins
        binned = merge(c, block.sum(axis=0), block.T @ y, min_iv=min_iv)
        if binned.kept:
            cols.append(block @ binned.candidate_woe())
    return np.stack(cols, axis=1), y
