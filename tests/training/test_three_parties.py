"""Three real party processes over loopback: inputs, placeholders and receivers are right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_credit.training.logistic import fit
from mpc_credit.training.privacy import WOE_BITS, woe_units
from tests.training import party


@pytest.fixture(scope="module")
def received() -> list[dict]:
    return party.run_parties("steps")


def test_each_owner_receives_exactly_its_own_counts(received) -> None:
    d = party.data()
    for pid, got in enumerate(received):
        x = d["onehots"][pid]
        bad = x.T @ d["y"]
        assert got["exact"] == [(x.sum(axis=0) - bad).tolist(), bad.tolist()]


def test_noisy_counts_differ_and_only_the_owner_gets_them(received) -> None:
    d = party.data()
    for pid, got in enumerate(received):
        x = d["onehots"][pid]
        bad = x.T @ d["y"]
        assert [len(v) for v in got["noisy"]] == [len(bad)] * 2
        assert got["noisy"][1] != bad.tolist()  # two contributors at variance 200 each


def _statistics() -> tuple[np.ndarray, np.ndarray]:
    d = party.data()
    x = woe_units(d["woe"], 4.0)
    x = np.column_stack([x, np.full(party.N, 2**WOE_BITS)])
    return x.T @ x / 4**WOE_BITS, x.T @ d["y"] / 2**WOE_BITS


def test_the_statistics_go_to_the_model_owner_alone_and_are_exact(received) -> None:
    a, b = _statistics()
    for pid, got in enumerate(received):
        if pid != party.MODEL_OWNER:
            assert got["a"] is None and got["b"] is None and got["noisy_a"] is None
    got = received[party.MODEL_OWNER]
    assert np.array_equal(np.array(got["a"]), a) and np.array_equal(np.array(got["b"]), b)


def test_noisy_statistics_keep_the_model_owners_own_entries_exact(received) -> None:
    a, b = _statistics()
    got = received[party.MODEL_OWNER]
    noisy_a, noisy_b = np.array(got["noisy_a"]), np.array(got["noisy_b"])
    own = party.NOISY_STATS.own()
    exact = own[:, None] & own[None, :]
    assert np.array_equal(noisy_a[exact], a[exact])
    assert np.array_equal(noisy_a, noisy_a.T)
    assert (noisy_a[~exact] != a[~exact]).all()  # sd 10^6 units: 0 with chance 4e-7 each
    assert (noisy_b != b).all()  # the model owner is not the lender: every entry noised


def test_the_exact_logistic_fit_goes_to_the_model_owner_alone(received, solo_runtime) -> None:
    d = party.data()
    one = dataclasses.replace(party.LR, lender=0, model_owner=0, columns=[sum(party.COLUMNS)])
    want = solo_runtime.run(fit(solo_runtime, one, d["woe"], d["y"]))
    for pid, got in enumerate(received):
        if pid != party.MODEL_OWNER:
            assert got["coef"] is None and got["intercept"] is None
    got = received[party.MODEL_OWNER]
    assert np.allclose(got["coef"], want.coefficients, atol=1e-3)
    assert got["intercept"] == pytest.approx(want.intercept, abs=1e-3)


def test_released_noise_has_the_variance_the_simulation_draws(received) -> None:
    """Mean 0 and total variance 400 per count, as scripts/simulate_dp.py draws it in one piece
    (here from two contributors of 200 each, none known to the receiver)."""
    from mpc_credit.training.privacy import share_sigma2

    assert 2 * share_sigma2(400, contributors=2, threshold=1) == 400
    for got in received:
        noise = np.array(got["repeats"], dtype=float)
        assert len(noise) >= 180
        assert abs(noise.mean()) < 4 * 20 / np.sqrt(len(noise))
        assert noise.var() == pytest.approx(400, rel=0.35)
