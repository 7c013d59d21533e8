"""optbinning Scorecard -> model dict: the converted model must score exactly like optbinning."""

from __future__ import annotations

import bisect
import math
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mpc_credit.scorecard.optbinning_import import MODEL_FORMAT, scorecard_to_model
from tests.conftest import GERMAN_CREDIT as DATA
from tests.conftest import ROOT

optbinning = pytest.importorskip("optbinning")

FEATURES = [
    "status_of_existing_checking_account",
    "duration_in_month",
    "purpose",
    "credit_amount",
    "age_in_years",
    "housing",
    "installment_rate_in_percentage_of_disposable_income",
]
OWNERS = {name: ("bank", "bureau", "telco")[i % 3] for i, name in enumerate(FEATURES)}
SCALING = {"pdo": 20, "odds": 50, "base_points": 600}


@pytest.fixture(scope="module")
def german() -> tuple[pd.DataFrame, np.ndarray]:
    """A few German-credit features and the bad indicator."""
    frame = pd.read_csv(DATA)
    y = (frame["creditability"] == "bad").astype(int).to_numpy()
    return frame[FEATURES], y


def fit(X: pd.DataFrame, y: np.ndarray, **options: Any) -> Any:
    """A small pdo_odds scorecard with integer points."""
    selection = options.pop("selection_criteria", None)
    from sklearn.linear_model import LogisticRegression

    binning = optbinning.BinningProcess(
        variable_names=list(X.columns), selection_criteria=selection
    )
    return optbinning.Scorecard(
        binning_process=binning,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
        rounding=True,
        **options,
    ).fit(X, y)


@pytest.fixture(scope="module")
def scorecard(german: tuple[pd.DataFrame, np.ndarray]) -> Any:
    return fit(*german)


def convert(scorecard: Any, owners: Mapping[str, str] = OWNERS) -> dict[str, Any]:
    return scorecard_to_model(scorecard, owners, name="t", cutoff=500, **SCALING)


def is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and math.isnan(value))


def points_of(feature: Mapping[str, Any], value: Any) -> int:
    """Oracle: contract semantics for one feature value."""
    if is_missing(value):
        return feature["missing_points"]
    if feature["kind"] == "numeric":
        # left-closed, right-open: bin i holds edges[i-1] <= x < edges[i]
        i = sum(1 for edge in feature["edges"] if edge <= value)
        assert i == bisect.bisect_right(feature["edges"], value)
        return feature["points"][i]
    for group, points in zip(feature["categories"], feature["points"], strict=True):
        if value in group:
            return points
    return feature["other_points"]


def hand_scores(model: Mapping[str, Any], X: pd.DataFrame) -> list[int]:
    """Oracle: intercept + the points of each feature's bin, per row."""
    records = X.astype(object).to_dict("records")
    return [
        model["intercept"] + sum(points_of(f, row[f["name"]]) for f in model["features"])
        for row in records
    ]


def test_converted_model_scores_like_optbinning(scorecard: Any, german: Any) -> None:
    X, _ = german
    model = convert(scorecard)
    assert hand_scores(model, X) == scorecard.score(X).tolist()
    assert model["intercept"] == 0  # pdo_odds spreads the intercept over the points


def test_model_shape_follows_contract(scorecard: Any) -> None:
    model = convert(scorecard)
    assert list(model) == [
        "format",
        "name",
        "scaling",
        "intercept",
        "cutoff",
        "features",
    ]
    assert model["format"] == MODEL_FORMAT
    assert model["scaling"] == SCALING
    assert [f["name"] for f in model["features"]] == FEATURES
    for f in model["features"]:
        assert f["owner"] == OWNERS[f["name"]]
        ints = [*f["points"], f["missing_points"], f.get("other_points", 0)]
        assert all(type(p) is int for p in ints)
        if f["kind"] == "numeric":
            assert len(f["points"]) == len(f["edges"]) + 1
            assert all(type(e) is float for e in f["edges"])
        else:
            assert f["kind"] == "categorical"
            assert len(f["points"]) == len(f["categories"])
            assert all(type(c) is str for group in f["categories"] for c in group)


def test_values_at_splits_go_to_optbinnings_bin(scorecard: Any, german: Any) -> None:
    X, _ = german
    model = convert(scorecard)
    numeric = [f for f in model["features"] if f["kind"] == "numeric"]
    assert any(f["edges"] for f in numeric)
    for f in numeric:
        probes = [np.nan, -1e12, 1e12]
        for edge in f["edges"]:
            probes += [edge, np.nextafter(edge, -np.inf), np.nextafter(edge, np.inf)]
        rows = X.iloc[[0] * len(probes)].copy()
        rows[f["name"]] = np.array(probes, dtype=float)
        expected = scorecard.transform(rows)[f["name"]].tolist()
        assert [points_of(f, v) for v in probes] == expected, f["name"]
        assert hand_scores(model, rows) == scorecard.score(rows).tolist()


def test_unknown_and_missing_categories_match_optbinning(scorecard: Any, german: Any) -> None:
    X, _ = german
    model = convert(scorecard)
    for f in (f for f in model["features"] if f["kind"] == "categorical"):
        probes = ["no such category", None, f["categories"][0][0]]
        rows = X.iloc[[0] * len(probes)].astype({f["name"]: object})
        rows[f["name"]] = probes
        expected = scorecard.transform(rows)[f["name"]].tolist()
        assert [points_of(f, v) for v in probes] == expected, f["name"]
        # optbinning's score() gives an unseen category the Missing bin's points
        assert f["other_points"] == f["missing_points"]


def test_intercept_based_scorecard_keeps_its_intercept(german: Any) -> None:
    X, y = german
    scorecard = fit(X, y, intercept_based=True)
    model = convert(scorecard)
    assert model["intercept"] == scorecard.intercept_ != 0
    assert type(model["intercept"]) is int
    assert hand_scores(model, X) == scorecard.score(X).tolist()


def test_variables_dropped_by_selection_are_skipped(german: Any) -> None:
    X, y = german
    scorecard = fit(X, y, selection_criteria={"iv": {"strategy": "highest", "top": 4}})
    selected = list(scorecard.binning_process_.get_support(names=True))
    assert len(selected) == 4
    model = convert(scorecard, {**OWNERS, "not_a_feature": "bank"})
    assert [f["name"] for f in model["features"]] == selected
    assert hand_scores(model, X) == scorecard.score(X).tolist()


def test_refuses_what_it_cannot_represent(scorecard: Any) -> None:
    with pytest.raises(ValueError, match="no owner"):
        convert(scorecard, {k: v for k, v in OWNERS.items() if k != "purpose"})
    with pytest.raises(ValueError, match="pdo"):
        scorecard_to_model(
            scorecard, OWNERS, name="t", cutoff=500, pdo=40, odds=50, base_points=600
        )
    with pytest.raises(TypeError, match="cutoff"):
        scorecard_to_model(scorecard, OWNERS, name="t", cutoff=500.5, **SCALING)
    with pytest.raises(TypeError, match="Scorecard"):
        convert(object())


def test_missing_optbinning_gives_install_hint(
    scorecard: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optbinning", None)
    with pytest.raises(ImportError, match=r"pip install 'mpc-credit\[optbinning\]'"):
        convert(scorecard)


def test_train_demo_check_only_passes() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/train_demo.py", "--check-only"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hand-applied model == Scorecard.score for all 1000 applicants" in result.stdout


def test_model_import_command(scorecard: Any, german: Any, tmp_path: Path) -> None:
    """`mpc-credit model import` writes a model that loads and scores like optbinning."""
    import json

    from mpc_credit.scorecard.model import load_model

    scorecard.save(str(tmp_path / "sc.pkl"))
    (tmp_path / "owners.json").write_text(json.dumps(OWNERS))
    args = ["model", "import", "sc.pkl", "--owners", "owners.json", "--name", "t"]
    args += ["--cutoff", "500", "--out", "m.json"]
    proc = subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    model = load_model(tmp_path / "m.json")
    assert model.cutoff == 500 and set(model.owners) == {"bank", "bureau", "telco"}
    data = json.loads((tmp_path / "m.json").read_text())
    X, _ = german
    assert hand_scores(data, X) == [int(s) for s in scorecard.score(X)]
    table = ROOT / "mpc_credit" / "demo" / "bank" / "reasons.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args, "--reasons", str(table)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    with_reasons = load_model(tmp_path / "m.json")
    reasons = {f.name: r for f, r in zip(with_reasons.features, with_reasons.reasons())}
    assert reasons["duration_in_month"].statement == "Duration of credit too long"
    assert hand_scores(json.loads((tmp_path / "m.json").read_text()), X) == hand_scores(data, X)
    (tmp_path / "owners.json").write_text("[1, 2]")
    proc = subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "mpc-credit: owners.json: expected a JSON object mapping feature name to owner"
    )
