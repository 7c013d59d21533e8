"""Three real party processes over loopback: inputs, placeholders and receivers are right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_credit.training.logistic import fit
from tests.training import party


@pytest.fixture(scope="module")
def received() -> list[dict]:
    return party.run_parties("steps")


def test_each_owner_receives_exactly_its_own_counts(received) -> None:
    d = party.data()
    for pid, got in enumerate(received):
        assert got["exact"] == (d["onehots"][pid].T @ d["y"]).tolist()


def test_noisy_counts_differ_and_only_the_owner_gets_them(received) -> None:
    d = party.data()
    for pid, got in enumerate(received):
        exact = d["onehots"][pid].T @ d["y"]
        assert len(got["noisy"]) == len(exact)
        assert got["noisy"] != exact.tolist()  # two contributors at variance 400 each


def test_coefficients_go_to_their_owners_and_the_intercept_to_two(received, solo_runtime) -> None:
    d = party.data()
    one = dataclasses.replace(party.LR, lender=0, model_owner=0, columns=[sum(party.COLUMNS)])
    want = solo_runtime.run(fit(solo_runtime, one, d["woe"], d["y"]))
    want = [*want.own, want.intercept]
    start = 0
    for pid, got in enumerate(received):
        k = party.COLUMNS[pid]
        assert np.allclose(got["coef"], want[start : start + k], atol=1e-3)
        start += k
    assert received[2]["intercept"] is None and received[2]["intercept_dp"] is None
    for pid in (party.LENDER, party.MODEL_OWNER):
        assert received[pid]["intercept"] == pytest.approx(want[-1], abs=1e-3)
    assert received[0]["intercept_dp"] == received[1]["intercept_dp"]


def test_noisy_coefficients_differ(received) -> None:
    for got in received:
        assert got["coef_dp"] != pytest.approx(got["coef"], abs=1e-3)
