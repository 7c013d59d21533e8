"""Each party's secret inputs, prepared locally in the clear (arrays in, arrays out).

A feature owner turns its own columns into bins; in `shared` mode it then adds up its
own points (one integer per applicant) and ranks its own reason candidates; in `secret`
mode it only one-hot encodes the bins. The model owner lays out the points, reason keys
and labels per bin, in the same one-hot column order.

Reason key of feature f in a bin: cost * F + (F - 1 - f), with cost = best points of
f minus the bin's points. Keys are distinct, larger means costlier, and ties in cost go
to the earlier feature. Its label is f + 1 when cost > 0, else 0 (no reason). The model
owner, who knows every cost, replaces the keys by their ranks among all bins' keys: the
same order in fewer bits (keys below the number of bins).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mpc_credit.engine.plan import Plan
from mpc_credit.scorecard.data import Column
from mpc_credit.scorecard.model import CategoricalFeature, NumericFeature, Scorecard


@dataclass(frozen=True)
class OwnerInputs:
    """One owner's secret inputs for a batch."""

    partial: np.ndarray | None = None  # (N,) shared mode: own points summed
    keys: np.ndarray | None = None  # (N, run) shared mode: own top reason keys, descending
    labels: np.ndarray | None = None  # (N, run) their labels
    onehot: np.ndarray | None = None  # (N, own bins) secret mode


@dataclass(frozen=True)
class ModelInputs:
    """The model owner's secret inputs in `secret` mode.

    The one-hot vectors leave out each feature's last bin (it is 1 minus the others),
    so per one-hot column the model owner gives the difference to the last bin, and per
    feature the last bin's value: v[bin] = base + onehot . delta.
    """

    points: np.ndarray  # (B',) point deltas
    keys: np.ndarray  # (B',) reason key deltas
    labels: np.ndarray  # (B',) label deltas
    key_base: np.ndarray  # (F,) per feature in one-hot order
    label_base: np.ndarray  # (F,)
    intercept: int  # the model's intercept plus every feature's last-bin points


def _own(
    model: Scorecard, plan: Plan, owner: int
) -> list[tuple[int, NumericFeature | CategoricalFeature]]:
    feats = []
    for g in plan.owner_features[owner]:
        f = model.features[g]
        assert isinstance(f, NumericFeature | CategoricalFeature), f"{f.name} is not ours"
        feats.append((g, f))
    return feats


def _bin_keys(g: int, bin_points: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Reason key and label of each bin of global feature g."""
    cost = bin_points.max() - bin_points
    return cost * n_features + (n_features - 1 - g), np.where(cost > 0, g + 1, 0)


def owner_inputs(
    model: Scorecard, plan: Plan, owner: int, columns: Mapping[str, Column]
) -> OwnerInputs:
    """Owner `owner`'s inputs from its own columns (already in request order)."""
    feats = _own(model, plan, owner)
    bins = [f.bins(columns[f.name]) for _, f in feats]
    n = len(bins[0])
    if plan.mode == "secret":
        onehot = np.zeros((n, plan.onehot_width(owner) + 1), dtype=np.int64)
        offset = 0
        for b, (_, f) in zip(bins, feats):
            last = f.n_bins - 1  # the left-out bin: its row stays all zero
            onehot[np.arange(n), np.where(b == last, -1, offset + b)] = 1
            offset += last
        return OwnerInputs(onehot=onehot[:, :-1])
    pts = np.stack([f.bin_points[b] for b, (_, f) in zip(bins, feats)], axis=1)
    partial = pts.sum(axis=1)
    if plan.reveal != "reasons":
        return OwnerInputs(partial=partial)
    keys = np.empty_like(pts)
    labels = np.empty_like(pts)
    for j, ((g, f), b) in enumerate(zip(feats, bins)):
        k, lab = _bin_keys(g, f.bin_points, plan.n_features)
        keys[:, j], labels[:, j] = k[b], lab[b]
    order = np.argsort(-keys, axis=1)[:, : plan.run_length(owner)]
    return OwnerInputs(
        partial=partial,
        keys=np.take_along_axis(keys, order, axis=1),
        labels=np.take_along_axis(labels, order, axis=1),
    )


def model_inputs(model: Scorecard, plan: Plan) -> ModelInputs:
    """The model owner's vectors, in one-hot column order (see ModelInputs)."""
    pts, keys, labels = [], [], []
    for g in plan.onehot_order():
        f = model.features[g]
        assert isinstance(f, NumericFeature | CategoricalFeature) and f.points is not None
        k, lab = _bin_keys(g, f.bin_points, plan.n_features)
        pts.append(f.bin_points)
        keys.append(k)
        labels.append(lab)
    flat = np.concatenate(keys)
    ranks = np.searchsorted(np.unique(flat), flat)  # same order, keys < number of bins
    keys = np.split(ranks, np.cumsum([len(k) for k in keys])[:-1])

    def deltas(per_feature: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([v[:-1] - v[-1] for v in per_feature])

    assert model.intercept is not None
    return ModelInputs(
        points=deltas(pts),
        keys=deltas(keys),
        labels=deltas(labels),
        key_base=np.array([k[-1] for k in keys]),
        label_base=np.array([lab[-1] for lab in labels]),
        intercept=model.intercept + int(sum(p[-1] for p in pts)),
    )
