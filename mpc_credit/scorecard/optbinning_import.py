"""Convert a fitted optbinning ``Scorecard`` into an mpc-credit model dict.

The result follows the model file format of docs/formats.md
(``"format": "mpc-credit/scorecard@1"``) and reproduces
``scorecard.score(X)`` exactly, point for point:

* Numeric bins: optbinning assigns bins with ``np.digitize(x, splits,
  right=False)``, i.e. bin ``i`` holds ``splits[i-1] <= x < splits[i]`` and a
  value exactly equal to a split goes to the right-hand bin. That is the
  contract's left-closed, right-open convention, so the splits are the edges
  unchanged.
* Missing values (NaN, empty) get the points of optbinning's ``Missing`` bin.
* Unseen categories: ``scorecard.score`` transforms with ``metric="indices"``;
  an unknown category gets index ``cat_unknown`` (default ``-1``), which picks
  the *last* row of the variable's table, the ``Missing`` bin. So by default
  ``other_points == missing_points``; an integer ``cat_unknown`` is mirrored
  as the points of that bin.
* With ``scaling_method="pdo_odds"`` optbinning spreads the logistic
  regression intercept and the scaling offset evenly over the variables'
  points, so ``scorecard.intercept_`` is 0 and so is our ``intercept``; with
  ``intercept_based=True`` the (rounded) ``intercept_`` is carried over.

optbinning is an optional extra (``mpc-credit[optbinning]``) and is imported
lazily.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

MODEL_FORMAT = "mpc-credit/scorecard@1"

_INSTALL_HINT = "optbinning is needed to import scorecards: pip install 'mpc-credit[optbinning]'"


def scorecard_to_model(
    scorecard: Any,
    owners: Mapping[str, str],
    *,
    name: str,
    cutoff: int,
    pdo: float,
    odds: float,
    base_points: float,
) -> dict[str, Any]:
    """Return the contract model dict for a fitted optbinning ``Scorecard``.

    Args:
        scorecard: a fitted ``optbinning.Scorecard`` built with
            ``scaling_method="pdo_odds"`` and ``rounding=True``.
        owners: feature name -> owning party. Every variable selected by the
            scorecard needs an owner; entries for variables the scorecard does
            not use (dropped by selection) are ignored.
        name: model name.
        cutoff: approve iff score >= cutoff.
        pdo, odds, base_points: the PDO scaling; must equal the scorecard's
            ``scaling_method_params`` (``scorecard_points`` is ``base_points``).

    Returns:
        A JSON-serialisable dict; all points are Python ints, edges floats,
        categories strings. Features appear in the scorecard's variable order.

    Raises:
        ImportError: optbinning is not installed.
        TypeError: not an optbinning Scorecard of OptimalBinning variables, or
            cutoff is not an int.
        ValueError: the scorecard cannot be represented exactly (other scaling,
            no rounding, reversed scorecard, special codes, missing owner, ...).
    """
    scorecard_cls, binning_cls = _optbinning_classes()
    if not isinstance(scorecard, scorecard_cls):
        raise TypeError(f"expected an optbinning Scorecard, got {type(scorecard).__name__}")
    _check_scorecard(scorecard, pdo=pdo, odds=odds, base_points=base_points)
    if isinstance(cutoff, bool) or not isinstance(cutoff, int):
        raise TypeError(f"cutoff must be an int, got {cutoff!r}")

    variables = [str(v) for v in scorecard.binning_process_.get_support(names=True)]
    unowned = [v for v in variables if v not in owners]
    if unowned:
        raise ValueError(f"no owner given for scorecard feature(s): {', '.join(unowned)}")

    table = scorecard.table(style="detailed")
    features = []
    for variable in variables:
        optb = scorecard.binning_process_.get_binned_variable(variable)
        if not isinstance(optb, binning_cls):
            raise TypeError(f"{variable}: unsupported binning {type(optb).__name__}")
        points = table.loc[table["Variable"] == variable, "Points"].to_numpy()
        features.append(_feature(variable, owners[variable], optb, points))

    return {
        "format": MODEL_FORMAT,
        "name": name,
        "scaling": {
            "pdo": _tidy_number(pdo),
            "odds": _tidy_number(odds),
            "base_points": _tidy_number(base_points),
        },
        "intercept": _as_int(scorecard.intercept_, "intercept"),
        "cutoff": cutoff,
        "features": features,
    }


def _optbinning_classes() -> tuple[type, type]:
    """Import optbinning lazily; return (Scorecard, OptimalBinning)."""
    try:
        from optbinning import OptimalBinning, Scorecard
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return Scorecard, OptimalBinning


def _check_scorecard(scorecard: Any, *, pdo: float, odds: float, base_points: float) -> None:
    """Refuse scorecards whose scores the contract format cannot reproduce."""
    if not hasattr(scorecard, "binning_process_"):
        raise ValueError("the scorecard is not fitted")
    if scorecard.scaling_method != "pdo_odds":
        raise ValueError(f"scaling_method must be 'pdo_odds', got {scorecard.scaling_method!r}")
    if not scorecard.rounding:
        raise ValueError("the scorecard must be built with rounding=True (integer points)")
    if scorecard.reverse_scorecard:
        raise ValueError("reverse_scorecard=True is not supported (higher score must be better)")
    params = scorecard.scaling_method_params or {}
    expected = {"pdo": pdo, "odds": odds, "scorecard_points": base_points}
    for key, value in expected.items():
        if key not in params or not math.isclose(float(params[key]), float(value)):
            raise ValueError(
                f"scaling {key}={value!r} does not match the scorecard's {params.get(key)!r}"
            )


def _feature(name: str, owner: str, optb: Any, points: Sequence[float]) -> dict[str, Any]:
    """One contract feature entry from an OptimalBinning and its table points."""
    if optb.special_codes:
        raise ValueError(f"{name}: special codes have no place in the model format")
    # Table rows: the bins, then one Special row, then the Missing row (last).
    n_bins = len(points) - 2
    missing_points = _as_int(points[-1], f"{name} missing points")
    bin_points = [_as_int(p, f"{name} points") for p in points[:n_bins]]
    if optb.dtype == "numerical":
        return _numeric_feature(name, owner, optb, bin_points, missing_points)
    if optb.dtype == "categorical":
        other = _other_points(name, optb, points, missing_points)
        return _categorical_feature(name, owner, optb, bin_points, other, missing_points)
    raise ValueError(f"{name}: unsupported dtype {optb.dtype!r}")


def _numeric_feature(
    name: str, owner: str, optb: Any, points: list[int], missing_points: int
) -> dict[str, Any]:
    """Numeric feature: optbinning's splits are the left-closed edges."""
    edges = [float(s) for s in optb.splits]
    if len(points) != len(edges) + 1:
        raise ValueError(f"{name}: {len(points)} bins for {len(edges)} splits")
    if not all(math.isfinite(e) for e in edges) or any(
        a >= b for a, b in itertools.pairwise(edges)
    ):
        raise ValueError(f"{name}: splits are not finite and strictly increasing")
    return {
        "name": name,
        "owner": owner,
        "kind": "numeric",
        "edges": edges,
        "points": points,
        "missing_points": missing_points,
    }


def _categorical_feature(
    name: str,
    owner: str,
    optb: Any,
    points: list[int],
    other_points: int,
    missing_points: int,
) -> dict[str, Any]:
    """Categorical feature: one list of category strings per bin."""
    categories = [[str(c) for c in group] for group in optb.splits]
    if len(points) != len(categories):
        raise ValueError(f"{name}: {len(points)} bins for {len(categories)} category groups")
    flat = [c for group in categories for c in group]
    if len(flat) != len(set(flat)):
        raise ValueError(f"{name}: a category appears in more than one bin")
    return {
        "name": name,
        "owner": owner,
        "kind": "categorical",
        "categories": categories,
        "points": points,
        "other_points": other_points,
        "missing_points": missing_points,
    }


def _other_points(name: str, optb: Any, points: Sequence[float], missing_points: int) -> int:
    """Points optbinning's ``score`` gives an unseen category.

    ``score`` looks up ``points[index]`` with index ``cat_unknown`` (default -1,
    the Missing row).
    """
    unknown = optb.cat_unknown
    if unknown is None:
        return missing_points
    if isinstance(unknown, int) and not isinstance(unknown, bool):
        return _as_int(points[unknown], f"{name} unknown-category points")
    raise ValueError(f"{name}: cat_unknown={unknown!r} is not usable by Scorecard.score")


def _as_int(value: Any, what: str) -> int:
    """Integral number -> Python int; refuse fractional points."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{what}: {value!r} is not an integer (was rounding=True used?)")
    return int(number)


def _tidy_number(value: float) -> int | float:
    """Integral values as int (600, not 600.0), others as float."""
    number = float(value)
    return int(number) if number.is_integer() else number
