"""The plaintext reference scorer: what the secure computation must reproduce exactly.

It sees every owner's data at once, so it exists for tests, benchmarks and simulation
checks only; it shares no code path with the secure protocol beyond the model's binning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mpc_credit.scorecard.data import OwnerTable
from mpc_credit.scorecard.model import HiddenFeature, Scorecard
from mpc_credit.scorecard.reveal import N_REASONS, Result
from mpc_credit.vocabulary import Reveal


def points_matrix(
    model: Scorecard, tables: Mapping[str, OwnerTable], ids: Sequence[str]
) -> np.ndarray:
    """(N, F) points each applicant gets for each feature."""
    selected = {o: t.select(ids) for o, t in tables.items()}
    cols = []
    for f in model.features:
        assert not isinstance(f, HiddenFeature)
        cols.append(f.bin_points[f.bins(selected[f.owner][f.name])])
    return np.stack(cols, axis=1)


def reason_labels(points: np.ndarray, best: np.ndarray, approve: np.ndarray) -> np.ndarray:
    """(N, 4) labels f+1 of the features costing most (ties: earlier feature), 0 = none."""
    cost = best[None, :] - points
    order = np.argsort(-cost, axis=1, kind="stable")[:, :N_REASONS]
    top_cost = np.take_along_axis(cost, order, axis=1)
    labels = np.where(top_cost > 0, order + 1, 0)
    labels[approve.astype(bool)] = 0
    if labels.shape[1] < N_REASONS:
        pad = np.zeros((len(labels), N_REASONS - labels.shape[1]), dtype=labels.dtype)
        labels = np.hstack([labels, pad])
    return labels


def reference(
    model: Scorecard, tables: Mapping[str, OwnerTable], ids: Sequence[str], reveal: Reveal
) -> Result:
    """Score `ids` in the clear and keep what `reveal` would show."""
    pts = points_matrix(model, tables, ids)
    score = (model.intercept or 0) + pts.sum(axis=1)
    approve = (score >= model.cutoff).astype(np.int64)
    if reveal in ("score", "pd"):
        values = score[:, None]
    elif reveal == "decision":
        values = approve[:, None]
    else:
        best = np.array(
            [f.bin_points.max() for f in model.features if not isinstance(f, HiddenFeature)]
        )
        values = np.hstack([approve[:, None], reason_labels(pts, best, approve)])
    names = tuple(f.name for f in model.features)
    values = values.astype(np.int64)
    return Result(reveal, tuple(ids), values, names, model.scaling, model.reasons())
