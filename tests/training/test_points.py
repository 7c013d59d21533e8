"""Integer points equal optbinning's scaling of the same WOE and coefficients."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_credit.scorecard.model import Scaling, from_dict
from mpc_credit.training.bins import Candidates
from mpc_credit.training.points import build_model, owner_feature, scaled_points
from mpc_credit.training.woe import merge
from tests.training.german import load

optbinning = pytest.importorskip("optbinning")


@pytest.fixture(scope="module")
def scorecard():
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    columns, y = load()
    frame = pd.DataFrame(columns)
    sc = optbinning.Scorecard(
        binning_process=optbinning.BinningProcess(variable_names=list(frame.columns)),
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
        rounding=True,
    )
    return sc.fit(frame, y)


def test_points_equal_optbinnings(scorecard) -> None:
    coefs = scorecard.estimator_.coef_[0]
    intercept = float(scorecard.estimator_.intercept_[0])
    names = scorecard.binning_process_.get_support(names=True)
    table = scorecard.table(style="detailed")
    scaling = Scaling(20, 50, 600)
    for name, c in zip(names, coefs):
        rows = table[table["Variable"] == name]
        woe = rows["WoE"].to_numpy(dtype=float).copy()
        woe[-2:] = 0.0  # Special and Missing rows: metric_special = metric_missing = 0
        got = scaled_points(woe * c, intercept, len(names), scaling)
        assert got.tolist() == rows["Points"].astype(int).tolist(), name


def test_model_file_from_owner_features() -> None:
    num = Candidates("age", "numeric", edges=(25.0, 35.0, 50.0))
    cat = Candidates("job", "categorical", groups=(("a",), ("b",), ("c", "d")))
    b1 = merge(num, np.array([100, 300, 300, 200, 10]), np.array([50, 90, 60, 30, 3]))
    b2 = merge(cat, np.array([400, 300, 210, 0]), np.array([60, 90, 120, 0]))
    feats = [(owner_feature("telco", b1, 4.0), -0.9), (owner_feature("bank", b2, 4.0), -0.7)]
    model = build_model("m", Scaling(20, 50, 600), 520, -0.85, feats)
    card = from_dict(model)
    assert [f.name for f in card.features] == ["age", "job"]
    age = card.features[0]
    assert age.edges == b1.edges and len(age.points) == len(b1.edges) + 1
    # Riskier bins (lower WOE) get fewer points with a negative coefficient.
    order = np.argsort(b1.woe[:-1])
    assert np.all(np.diff(np.array(age.points)[order]) >= 0)
    job = card.features[1]
    assert job.other_points == job.missing_points
    assert model["intercept"] == 0


def test_owner_features_travel_as_json_and_garbage_is_one_error() -> None:
    from mpc_credit.errors import SessionError
    from mpc_credit.jsonwire import decode
    from mpc_credit.training.points import features_from_json, features_to_bytes

    cand = Candidates("job", "categorical", groups=(("a",), ("b", "c")))
    b = merge(cand, np.array([500, 400, 100]), np.array([60, 120, 10]), min_share=0.0)
    sent = [owner_feature("telco", b, 1.0)]
    assert max(abs(w) for w in sent[0].woe) <= 1.0  # the clipped WOE the regression saw
    assert features_from_json(decode(features_to_bytes(sent)), "telco") == sent
    with pytest.raises(SessionError, match="party telco sent malformed"):
        features_from_json([{"name": "x"}], "telco")
