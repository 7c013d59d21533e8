"""Checks on a trained scorecard, run after training: named findings for model risk management.

Each finding has a code and one line naming the feature or the figures. `check_model` takes the
model (a `mpc-credit/scorecard@1` dict) and, when there is one, the holdout's labels (1 = bad,
0 = good) and scores (higher = lower risk). The checks, in the order they are reported:

- `low-auc`: holdout AUC below 0.6 (`MIN_AUC`).
- `no-skill`: holdout AUC not significantly above 0.5, i.e. at most 0.5 + 1.96 standard errors
  of the AUC by Hanley & McNeil (1982) at the observed AUC and the holdout's bad and good counts.
- `flat-feature`: a feature whose every bin (points, missing_points and, for a categorical
  feature, other_points) carries the same points: it changes no score.
- `outsized-points`: a feature whose spread (its highest minus its lowest points) exceeds the
  width of the plausible range below, i.e. one feature alone moves the odds more than a
  million-fold.
- `implausible-scores`: the plausible range is base_points +- pdo * log2(1000): the scores whose
  good:bad odds lie between 1/1000 and 1000 times the base odds (600/50:1/20 PDO: 400.7 to
  799.3). With a holdout: more than 1 % of its scores lie outside it. Without: the model's lowest
  or highest possible score (intercept plus every feature's lowest, or highest, points) lies
  beyond base_points +- pdo * log2(10**6), odds a million-fold from the base. The extremes get
  the wider range because they combine every feature's worst (or best) bin at once, which almost
  no applicant does: the German credit demo model (parties/bank, 20 features) can score 348,
  past 1000-fold, while its 1000 applicants score 409 to 625.
- `cutoff-approval`: the cutoff approves (score >= cutoff) under 5 % or over 95 % of the holdout;
  without a holdout, a cutoff above the highest possible score or at most the lowest.

The AUC checks need a holdout with both good and bad applicants and are skipped otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_credit.training.metrics import metrics

MIN_AUC = 0.6
Z95 = 1.96  # standard errors above 0.5 that an AUC must reach to show skill
PLAUSIBLE_FOLD = 1000  # the plausible range: odds within this factor of the base odds
EXTREME_FOLD = 10**6  # the model's lowest and highest possible scores: within this factor
MAX_OUTSIDE = 0.01  # share of holdout scores allowed outside the plausible range
APPROVAL = (0.05, 0.95)  # the holdout's approval rate at the cutoff should lie in between


@dataclass(frozen=True)
class Finding:
    """One warning about a trained model: a short code and a one-line message."""

    code: str
    message: str


def format_findings(findings: Iterable[Finding]) -> list[str]:
    """One line per finding: `warning [code]: message`."""
    return [f"warning [{f.code}]: {f.message}" for f in findings]


def check_model(
    model: dict[str, Any], holdout_labels: np.ndarray | None, holdout_scores: np.ndarray | None
) -> list[Finding]:
    """Every finding about `model` and, when given, its holdout (see the module docstring)."""
    scores = None if holdout_scores is None else np.asarray(holdout_scores, dtype=float)
    found: list[Finding] = []
    if scores is not None and holdout_labels is not None:
        found += _auc_checks(np.asarray(holdout_labels), scores)
    features = [f for f in model["features"] if f.get("points") is not None]
    found += [x for f in features if (x := _flat(f))]
    found += [x for f in features if (x := _outsized(model["scaling"], f))]
    found += _implausible(model, features, scores)
    found += _cutoff(model, features, scores)
    return found


def hanley_mcneil(auc: float, n_bad: int, n_good: int) -> float:
    """Standard error of an AUC from `n_bad` bad and `n_good` good applicants (Hanley & McNeil,
    1982, with the bad applicants as the positive class)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = auc * (1 - auc) + (n_bad - 1) * (q1 - auc**2) + (n_good - 1) * (q2 - auc**2)
    return math.sqrt(max(var, 0.0) / (n_bad * n_good))


def plausible_range(scaling: dict[str, Any], fold: float = PLAUSIBLE_FOLD) -> tuple[float, float]:
    """Scores whose good:bad odds lie within `fold` times the base odds either way."""
    half = scaling["pdo"] * math.log2(fold)
    return scaling["base_points"] - half, scaling["base_points"] + half


def bin_points(feature: dict[str, Any]) -> list[int]:
    """Points of every bin: the value bins, other (categorical) and missing."""
    extra = [feature.get("other_points")] if feature["kind"] == "categorical" else []
    return [p for p in [*feature["points"], *extra, feature.get("missing_points")] if p is not None]


def _name(feature: dict[str, Any]) -> str:
    return f"{feature['name']} ({feature['owner']})"


def _auc_checks(labels: np.ndarray, scores: np.ndarray) -> list[Finding]:
    if len(np.unique(labels)) != 2:
        return []
    m = metrics(labels, scores)
    found = []
    if m.auc < MIN_AUC:
        found.append(Finding("low-auc", f"holdout AUC {m.auc:.3f} is below {MIN_AUC}"))
    margin = Z95 * hanley_mcneil(m.auc, m.bad, m.n - m.bad)
    if m.auc <= 0.5 + margin:
        found.append(
            Finding(
                "no-skill",
                f"holdout AUC {m.auc:.3f} is not significantly above 0.5 (no skill): it needs "
                f"more than {0.5 + margin:.3f}, 0.5 plus {Z95} Hanley-McNeil standard errors at "
                f"{m.bad} bad and {m.n - m.bad} good applicants",
            )
        )
    return found


def _flat(feature: dict[str, Any]) -> Finding | None:
    pts = set(bin_points(feature))
    if len(pts) != 1:
        return None
    message = (
        f"feature {_name(feature)} awards {pts.pop()} points in every bin: it changes no score"
    )
    return Finding("flat-feature", message)


def _outsized(scaling: dict[str, Any], feature: dict[str, Any]) -> Finding | None:
    pts = bin_points(feature)
    lo, hi = plausible_range(scaling)
    spread = max(pts) - min(pts)
    if spread <= hi - lo:
        return None
    return Finding(
        "outsized-points",
        f"feature {_name(feature)} spans {spread} points ({min(pts)} to {max(pts)}), more than "
        f"the {hi - lo:.0f} points of the scale's whole plausible range {_scale_text(scaling)}",
    )


def _scale_text(scaling: dict[str, Any], fold: float = PLAUSIBLE_FOLD) -> str:
    lo, hi = plausible_range(scaling, fold)
    return (
        f"{lo:.0f} to {hi:.0f} (good:bad odds within {fold:,}-fold of {scaling['odds']:g}:1 at "
        f"{scaling['base_points']:g} points, {scaling['pdo']:g} points to double the odds)"
    )


def _score_range(model: dict[str, Any], features: list[dict[str, Any]]) -> tuple[int, int]:
    """The model's lowest and highest possible score."""
    base = model.get("intercept") or 0
    lo = base + sum(min(bin_points(f)) for f in features)
    hi = base + sum(max(bin_points(f)) for f in features)
    return lo, hi


def _implausible(
    model: dict[str, Any], features: list[dict[str, Any]], scores: np.ndarray | None
) -> list[Finding]:
    scaling = model["scaling"]
    if scores is not None and len(scores):
        lo, hi = plausible_range(scaling)
        outside = int(np.count_nonzero((scores < lo) | (scores > hi)))
        if outside <= MAX_OUTSIDE * len(scores):
            return []
        message = (
            f"{outside / len(scores):.1%} of the holdout's scores ({outside} of {len(scores)}, "
            f"from {scores.min():g} to {scores.max():g}) lie outside the plausible range "
            f"{_scale_text(scaling)}"
        )
        return [Finding("implausible-scores", message)]
    lo, hi = plausible_range(scaling, EXTREME_FOLD)
    low, high = _score_range(model, features)
    if lo <= low and high <= hi:
        return []
    message = (
        f"the model's possible scores run from {low} to {high}, beyond "
        f"{_scale_text(scaling, EXTREME_FOLD)}"
    )
    return [Finding("implausible-scores", message)]


def _cutoff(
    model: dict[str, Any], features: list[dict[str, Any]], scores: np.ndarray | None
) -> list[Finding]:
    cutoff = model["cutoff"]
    if scores is None or not len(scores):
        low, high = _score_range(model, features)
        if low < cutoff <= high:
            return []
        share = "no applicant" if cutoff > high else "every applicant"
        message = f"cutoff {cutoff} approves {share}: the model's scores run from {low} to {high}"
        return [Finding("cutoff-approval", message)]
    approved = int(np.count_nonzero(scores >= cutoff))
    rate = approved / len(scores)
    if APPROVAL[0] <= rate <= APPROVAL[1]:
        return []
    message = (
        f"cutoff {cutoff} approves {rate:.1%} of the holdout ({approved} of {len(scores)}), "
        f"outside {APPROVAL[0]:.0%} to {APPROVAL[1]:.0%}"
    )
    return [Finding("cutoff-approval", message)]
