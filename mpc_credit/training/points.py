"""Points from WOE and coefficients by the PDO scaling, exactly as optbinning's Scorecard.

optbinning (`scaling_method="pdo_odds"`, `rounding=True`) gives bin i of a feature with
coefficient c and weight of evidence woe_i, in a model of n features with intercept b:
    points_i = rint(-(woe_i * c + b / n) * factor + offset / n),
factor = pdo / ln 2, offset = base_points - factor * ln(odds): the intercept and the offset are
spread evenly over the features, so the model's own intercept is 0. The same float expression,
in the same order, gives the same integers.

Split between parties: an owner knows its features' WOE and noisy coefficients, and sends the
model owner only `woe_i * c` per final bin (optbinning's unscaled "Points" column) with the bin
layout; the model owner, which holds the intercept, scales and rounds, and writes the model file
(mpc-credit/scorecard@1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_credit.errors import SessionError
from mpc_credit.jsonwire import encode
from mpc_credit.scorecard.model import FORMAT, Scaling, from_dict, to_dict
from mpc_credit.training.woe import Binned


@dataclass(frozen=True)
class OwnerFeature:
    """One kept feature as its owner hands it to the model owner."""

    name: str
    owner: str
    kind: str
    edges: tuple[float, ...]
    categories: tuple[tuple[str, ...], ...]
    partial: tuple[float, ...]  # woe * coefficient per final bin, missing last


def owner_feature(owner: str, binned: Binned, coef: float) -> OwnerFeature:
    """What the owner sends for one feature: its final bins and woe * c per bin."""
    numeric = binned.cand.kind == "numeric"
    return OwnerFeature(
        name=binned.cand.name,
        owner=owner,
        kind=binned.cand.kind,
        edges=binned.edges if numeric else (),
        categories=() if numeric else binned.categories,
        partial=tuple(float(v) for v in np.asarray(binned.woe) * coef),
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
    features: Sequence[OwnerFeature],
) -> dict[str, Any]:
    """The model file dict (validated by scorecard.model.from_dict)."""
    n = len(features)
    out = []
    for f in features:
        pts = [int(p) for p in scaled_points(np.array(f.partial), intercept, n, scaling)]
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
                "partial": list(f.partial),
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
                    partial=tuple(float(p) for p in f["partial"]),
                )
            )
    except (TypeError, KeyError, ValueError):
        raise SessionError(f"party {sender} sent malformed feature points") from None
    return out
