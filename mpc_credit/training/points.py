"""Points from WOE and coefficients by the PDO scaling, exactly as optbinning's Scorecard.

optbinning (`scaling_method="pdo_odds"`, `rounding=True`) gives bin i of a feature with
coefficient c and weight of evidence woe_i, in a model of n features with intercept b:
    points_i = rint(-(woe_i * c + b / n) * factor + offset / n),
factor = pdo / ln 2, offset = base_points - factor * ln(odds): the intercept and the offset are
spread evenly over the features, so the model's own intercept is 0. The same float expression,
in the same order, gives the same integers.

Split between parties: an owner sends the model owner its kept features' bin layout and WOE per
final bin (clipped as the regression saw them: post-processing of its noisy counts); the model
owner, which alone holds the coefficients and the intercept, forms `woe_i * c` (optbinning's
unscaled "Points" column), scales and rounds, and writes the model file (mpc-credit/scorecard@1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_credit.errors import SessionError
from mpc_credit.jsonwire import encode
from mpc_credit.scorecard.model import FORMAT, Scaling, from_dict, to_dict
from mpc_credit.training.privacy import clipped_woe
from mpc_credit.training.woe import Binned


@dataclass(frozen=True)
class OwnerFeature:
    """One kept feature as its owner hands it to the model owner."""

    name: str
    owner: str
    kind: str
    edges: tuple[float, ...]
    categories: tuple[tuple[str, ...], ...]
    woe: tuple[float, ...]  # clipped WOE per final bin, missing last


def owner_feature(owner: str, binned: Binned, clip: float) -> OwnerFeature:
    """What the owner sends for one feature: its final bins and clipped WOE per bin."""
    numeric = binned.cand.kind == "numeric"
    return OwnerFeature(
        name=binned.cand.name,
        owner=owner,
        kind=binned.cand.kind,
        edges=binned.edges if numeric else (),
        categories=() if numeric else binned.categories,
        woe=tuple(float(v) for v in clipped_woe(binned.woe, clip)),
    )


def scaled_points(
    partial: np.ndarray, intercept: float, n_features: int, scaling: Scaling
) -> np.ndarray:
    """optbinning's pdo_odds scaling with rounding, for one feature's bins."""
    factor = scaling.pdo / np.log(2)
    offset = scaling.base_points - factor * np.log(scaling.odds)
    points = -(np.asarray(partial, dtype=float) + intercept / n_features) * factor
    return np.rint(points + offset / n_features).astype(np.int64)


def build_model(
    name: str,
    scaling: Scaling,
    cutoff: int,
    intercept: float,
    features: Sequence[tuple[OwnerFeature, float]],
) -> dict[str, Any]:
    """The model file dict (validated by scorecard.model.from_dict) from features and their
    coefficients."""
    n = len(features)
    out = []
    for f, coef in features:
        partial = np.array(f.woe) * coef
        pts = [int(p) for p in scaled_points(partial, intercept, n, scaling)]
        entry: dict[str, Any] = {"name": f.name, "owner": f.owner, "kind": f.kind}
        if f.kind == "numeric":
            entry["edges"] = list(f.edges)
        else:
            entry["categories"] = [list(g) for g in f.categories]
            entry["other_points"] = pts[-1]  # as optbinning: an unseen category scores as missing
        entry["points"] = pts[:-1]
        entry["missing_points"] = pts[-1]
        out.append(entry)
    model = {
        "format": FORMAT,
        "name": name,
        "scaling": {"pdo": scaling.pdo, "odds": scaling.odds, "base_points": scaling.base_points},
        "intercept": 0,
        "cutoff": cutoff,
        "features": out,
    }
    return to_dict(from_dict(model, source=f"trained model {name!r}"))


def features_to_bytes(features: Sequence[OwnerFeature]) -> bytes:
    """An owner's message to the model owner (JSON)."""
    return encode(
        [
            {
                "name": f.name,
                "kind": f.kind,
                "edges": list(f.edges),
                "categories": [list(g) for g in f.categories],
                "woe": list(f.woe),
            }
            for f in features
        ]
    )


def features_from_json(value: Any, sender: str) -> list[OwnerFeature]:
    """The decoded message of `sender`; its contents are checked again by `build_model`."""
    out = []
    try:
        for f in value:
            out.append(
                OwnerFeature(
                    name=str(f["name"]),
                    owner=sender,
                    kind=str(f["kind"]),
                    edges=tuple(float(e) for e in f["edges"]),
                    categories=tuple(tuple(str(c) for c in g) for g in f["categories"]),
                    woe=tuple(float(p) for p in f["woe"]),
                )
            )
    except (TypeError, KeyError, ValueError):
        raise SessionError(f"party {sender} sent malformed feature points") from None
    return out
