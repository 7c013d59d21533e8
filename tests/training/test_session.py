"""A whole training session over three real party processes on German credit."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_credit.errors import UsageError
from mpc_credit.scorecard.model import from_dict
from mpc_credit.training.session import Options, Setup
from tests.training import party
from tests.training.german import load


@pytest.fixture(scope="module")
def received() -> list[dict]:
    return party.run_parties("session")


def test_the_model_owner_gets_a_valid_model_that_ranks_risk(received) -> None:
    bank, bureau, telco = received
    assert bank["model"] is None and telco["model"] is None
    model = from_dict(bureau["model"])
    columns, y = load()
    scores = np.full(party.ROWS, model.intercept)
    for f in model.features:
        scores = scores + f.bin_points[f.bins(columns[f.name][: party.ROWS])]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[: party.ROWS], -scores) > 0.75  # training AUC; optbinning: ~0.83


def test_what_each_party_learns(received) -> None:
    bank, bureau, telco = received
    assert bank["rows"] == telco["rows"] == party.ROWS
    assert bank["known"] == party.ROWS and telco["known"] == party.ROWS - 40
    assert bank["kept"] == bureau["kept"] == telco["kept"]  # public: kept names per party
    assert bank["ivs"] == bureau["ivs"] == telco["ivs"]  # public: every candidate's IV
    for got in (bank, telco):  # coefficients and intercept reach the model owner alone
        assert got["coefficients"] == {} and got["intercept"] is None
    assert bureau["intercept"] is not None
    assert all(c <= 0 for c in bureau["coefficients"].values())
    in_model = [n for kept in bank["kept"] for n in kept]
    assert [f["name"] for f in bureau["model"]["features"]] == in_model
    assert in_model == [n for n, c in bureau["coefficients"].items() if c != 0]


def test_fewer_than_three_parties_are_refused() -> None:
    with pytest.raises(UsageError, match="at least 3 parties"):
        Setup(("bank", "bureau"), "bank", "bank", Options("m", 500)).check()


@pytest.fixture(scope="module")
def received_dp() -> list[dict]:
    return party.run_parties("session_dp")


def test_a_dp_run_gives_the_model_owner_a_model_without_flat_features(received_dp) -> None:
    bank, bureau, telco = received_dp
    model = from_dict(bureau["model"])
    assert bank["model"] is None and telco["model"] is None
    assert bank["coefficients"] == telco["coefficients"] == {} and bank["intercept"] is None
    for f in model.features:
        assert len(set(f.bin_points.tolist())) > 1, f.name  # flat features are left out
    columns, y = load()
    scores = np.full(party.ROWS, model.intercept)
    for f in model.features:
        scores = scores + f.bin_points[f.bins(columns[f.name][: party.ROWS])]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[: party.ROWS], -scores) > 0.6  # 12 runs: 0.68 to 0.78; no DP 0.8
