"""Guardrails: each finding fires on a deliberately degenerate model, a sane model gives none."""

from __future__ import annotations

import copy
import csv
import json
import math
from functools import lru_cache

import numpy as np
import pytest

from mpc_credit.scorecard.data import load_owner_csv
from mpc_credit.scorecard.model import from_dict
from mpc_credit.training.guardrails import (
    Finding,
    check_model,
    format_findings,
    hanley_mcneil,
    plausible_range,
)
from mpc_credit.training.report import predicted_pd
from tests.conftest import MODEL, PARTIES

FLAT = ("number_of_people_being_liable_to_provide_maintenance_for", "foreign_worker")


@lru_cache(maxsize=1)
def _german() -> tuple[str, np.ndarray, np.ndarray]:
    """The demo model (as JSON text), the 1000 German credit labels and the model's scores."""
    text = MODEL.read_text()
    model = from_dict(json.loads(text))
    with (PARTIES / "bank" / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["applicant_id"] for r in rows]
    scores = np.full(len(ids), model.intercept, dtype=np.int64)
    for owner in model.owners:
        columns = load_owner_csv(PARTIES / owner / "applicants.csv", model, owner).select(ids)
        for feat in model.features_of(owner):
            scores += feat.bin_points[feat.bins(columns[feat.name])]
    return text, np.array([int(r["bad"]) for r in rows]), scores.astype(float)


def german() -> tuple[dict, np.ndarray, np.ndarray]:
    text, labels, scores = _german()
    return json.loads(text), labels, scores


def sane() -> tuple[dict, np.ndarray, np.ndarray]:
    """The demo model without its two flat features (their 26 + 26 points go to the intercept,
    so every score stays the same) and its German credit holdout: AUC 0.83."""
    model, labels, scores = german()
    model["features"] = [f for f in model["features"] if f["name"] not in FLAT]
    model["intercept"] += 52
    return model, labels, scores


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def feature(model: dict, name: str) -> dict:
    return next(f for f in model["features"] if f["name"] == name)


def test_a_sane_model_gives_no_finding():
    model, labels, scores = sane()
    assert check_model(model, labels, scores) == []
    assert check_model(model, None, None) == []  # possible scores 348 to 691: within 201..999
    assert check_model(model, None, scores) == []  # scores without labels: no AUC checks


def test_the_demo_models_flat_features_are_named():
    model, labels, scores = german()
    found = check_model(model, labels, scores)
    assert codes(found) == ["flat-feature", "flat-feature"]
    for f, name in zip(found, FLAT):
        assert (
            f.message
            == f"feature {name} (telco) awards 26 points in every bin: it changes no score"
        )


def test_a_flat_categorical_feature_counts_other_and_missing_points():
    model, _, _ = sane()
    purpose = feature(model, "purpose")
    purpose["points"] = [7] * len(purpose["points"])
    purpose["other_points"] = purpose["missing_points"] = 7
    assert codes(check_model(model, None, None)) == ["flat-feature"]
    purpose["other_points"] = 8  # one bin differs: the feature can change a score
    assert check_model(model, None, None) == []


def test_a_feature_with_4664_points_on_a_600_50_20_scale_is_outsized():
    model, _, _ = sane()
    assert model["scaling"] == {"pdo": 20, "odds": 50, "base_points": 600}
    lo, hi = plausible_range(model["scaling"])
    assert (lo, hi) == pytest.approx((600 - 20 * math.log2(1000), 600 + 20 * math.log2(1000)))
    duration = feature(model, "duration_in_month")
    duration["points"][0] = 4664
    low = min([*duration["points"], duration["missing_points"]])
    found = check_model(model, None, None)
    assert codes(found) == ["outsized-points", "implausible-scores"]
    spans = f"duration_in_month (bank) spans {4664 - low} points ({low} to 4664)"
    assert spans in found[0].message
    assert "399 points" in found[0].message  # the plausible range's width, 2 * 20 * log2(1000)
    assert "possible scores run from 348 to " in found[1].message
    assert "201 to 999" in found[1].message  # the model's extremes: million-fold odds


def test_holdout_scores_outside_the_plausible_range():
    model, labels, scores = sane()
    shifted = scores + 200  # the demo scores 409..625 become 609..825: 800..825 are too high
    model["cutoff"] += 200
    found = check_model(model, labels, shifted)
    assert codes(found) == ["implausible-scores"]
    outside = int((shifted > 600 + 20 * math.log2(1000)).sum())
    assert outside > 10
    assert found[0].message.startswith(f"{outside / 1000:.1%} of the holdout's scores ({outside}")


@pytest.mark.parametrize("quantile", [0.97, 0.01])
def test_a_cutoff_approving_under_5_or_over_95_percent(quantile):
    model, labels, scores = sane()
    model["cutoff"] = int(np.quantile(scores, quantile))
    approved = int((scores >= model["cutoff"]).sum())
    assert approved < 50 or approved > 950
    assert check_model(model, labels, scores) == [
        Finding(
            "cutoff-approval",
            f"cutoff {model['cutoff']} approves {approved / 1000:.1%} of the holdout "
            f"({approved} of 1000), outside 5% to 95%",
        )
    ]


def test_a_cutoff_declining_90_percent_is_within_the_bounds():
    model, labels, scores = sane()
    model["cutoff"] = int(np.quantile(scores, 0.90))
    assert 0.05 < (scores >= model["cutoff"]).mean() < 0.15
    assert check_model(model, labels, scores) == []


def test_a_cutoff_beyond_the_possible_scores_without_a_holdout():
    model, _, _ = sane()
    model["cutoff"] = 692  # the highest possible score is 691
    assert check_model(model, None, None) == [
        Finding(
            "cutoff-approval",
            "cutoff 692 approves no applicant: the model's scores run from 348 to 691",
        )
    ]
    model["cutoff"] = 348
    assert "approves every applicant" in check_model(model, None, None)[0].message


def test_random_scores_have_no_skill():
    model, labels, scores = sane()
    noise = np.random.default_rng(7).permutation(scores)  # same scores, unrelated to the labels
    found = check_model(model, labels, noise)
    assert codes(found) == ["low-auc", "no-skill"]
    assert found[0].message.startswith("holdout AUC 0.") and "is below 0.6" in found[0].message
    assert "not significantly above 0.5" in found[1].message
    assert "300 bad and 700 good applicants" in found[1].message


def test_a_weak_but_real_model_is_low_but_not_no_skill():
    rng = np.random.default_rng(3)
    labels = (rng.random(20_000) < 0.3).astype(int)
    scores = np.round(560 + 40 * (rng.normal(size=20_000) + 0.28 * (1 - labels)))
    model, _, _ = sane()
    model["cutoff"] = 560
    found = check_model(model, labels, scores)
    assert codes(found) == ["low-auc"]  # AUC about 0.58, its standard error about 0.004


def test_hanley_mcneil_standard_error():
    # AUC 0.5 with n bad and n good: Q1 = Q2 = 1/3, var = (1/4 + 2 (n - 1) / 12) / n^2
    assert hanley_mcneil(0.5, 100, 100) == pytest.approx(math.sqrt((0.25 + 99 / 6) / 100**2))
    assert hanley_mcneil(1.0, 30, 70) == 0.0
    rng = np.random.default_rng(0)  # against the spread of AUCs over independent holdouts
    aucs = []
    for _ in range(400):
        labels = np.r_[np.ones(60, int), np.zeros(140, int)]
        s = rng.normal(size=200) + (1 - labels)
        ranks = s.argsort().argsort() + 1
        aucs.append((ranks[labels == 0].sum() - 140 * 141 / 2) / (60 * 140))
    assert hanley_mcneil(float(np.mean(aucs)), 60, 140) == pytest.approx(np.std(aucs), rel=0.15)


def test_format_findings():
    found = [Finding("low-auc", "holdout AUC 0.55 is below 0.6"), Finding("x", "y")]
    assert format_findings(found) == [
        "warning [low-auc]: holdout AUC 0.55 is below 0.6",
        "warning [x]: y",
    ]


def test_holdout_of_one_class_skips_the_auc_checks():
    model, _, scores = sane()
    assert check_model(model, np.zeros(len(scores), int), scores) == []


def test_the_check_leaves_the_model_alone():
    model, labels, scores = german()
    before = copy.deepcopy(model)
    check_model(model, labels, scores)
    assert model == before


def test_calibrated_scores_of_a_sane_scale_are_plausible():
    """Scores drawn so that the scaling's PD is right stay inside the plausible range."""
    model, _, _ = sane()
    rng = np.random.default_rng(5)
    scores = np.round(rng.normal(560, 40, 5000))
    labels = (rng.random(5000) < predicted_pd(model["scaling"], scores)).astype(int)
    assert "implausible-scores" not in codes(check_model(model, labels, scores))
