"""Logistic regression in MPC against scikit-learn and a constrained plaintext optimum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from mpc_credit.errors import DataError
from mpc_credit.training.logistic import LrSpec, fit
from tests.training.german import woe_matrix

TOLERANCE = 0.05  # absolute, on every coefficient and the intercept


def plain_optimum(x: np.ndarray, y: np.ndarray, c: float, constrained: bool) -> np.ndarray:
    """The same objective (intercept penalized too), solved in floating point."""
    n, d = x.shape
    x1 = np.hstack([x, np.ones((n, 1))])
    lam = 1 / (c * n)

    def f(t):
        z = x1 @ t
        return np.mean(np.logaddexp(0, z) - y * z) + lam / 2 * t @ t

    def g(t):
        return x1.T @ (1 / (1 + np.exp(-(x1 @ t))) - y) / n + lam * t

    bounds = [(None, 0.0) if constrained else (None, None)] * d + [(None, None)]
    r = minimize(f, np.zeros(d + 1), jac=g, method="L-BFGS-B", bounds=bounds, tol=1e-12)
    return r.x


def solo_spec(x: np.ndarray, *, newton_steps: int, polish_steps: int) -> LrSpec:
    """One party holding every column and the labels, C = 1."""
    return LrSpec(
        n=len(x),
        lender=0,
        model_owner=0,
        columns=[x.shape[1]],
        c=1.0,
        newton_steps=newton_steps,
        polish_steps=polish_steps,
    )


def test_coefficients_match_scikit_learn(solo_runtime) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = woe_matrix()  # German credit, features with IV >= 0.02
    sk = LogisticRegression(C=1.0, max_iter=10000, tol=1e-10).fit(x, y)
    assert (sk.coef_ < 0).all()  # the sign constraint is inactive here
    spec = solo_spec(x, newton_steps=10, polish_steps=0)
    got = solo_runtime.run(fit(solo_runtime, spec, x, y))
    assert np.abs(got.coefficients - sk.coef_[0]).max() < TOLERANCE
    assert abs(got.intercept - sk.intercept_[0]) < TOLERANCE


def test_sign_constraint_reaches_the_constrained_optimum(solo_runtime) -> None:
    x, y = woe_matrix(rows=400, min_iv=0.0)  # every feature: some want a positive sign
    free = plain_optimum(x, y, 1.0, constrained=False)
    assert (free[:-1] > 0.05).any()
    want = plain_optimum(x, y, 1.0, constrained=True)
    spec = solo_spec(x, newton_steps=6, polish_steps=12)
    got = solo_runtime.run(fit(solo_runtime, spec, x, y))
    assert (got.coefficients <= 0).all()
    assert np.abs(got.coefficients - want[:-1]).max() < TOLERANCE
    assert abs(got.intercept - want[-1]) < TOLERANCE


def test_woe_shape_is_checked(solo_runtime) -> None:
    spec = LrSpec(n=4, lender=0, model_owner=0, columns=[2], newton_steps=1, polish_steps=0)
    with pytest.raises(DataError, match="WOE"):
        solo_runtime.run(fit(solo_runtime, spec, np.zeros((4, 3)), np.array([0, 1, 0, 1])))


def test_small_public_factors_keep_their_precision(solo_runtime) -> None:
    from mpc_credit.training.logistic import BITS, FRAC_BITS, _times

    x = np.array([123456.0, 7000.5, -3000.25])
    sec = solo_runtime.SecFxp(BITS, FRAC_BITS).array(x)
    for n in (700, 100_000, 10_000_000):  # 1 / (4n) is below 2^-16 from n = 16,384 on
        got = np.asarray(
            solo_runtime.run(solo_runtime.output(_times(solo_runtime, sec, 1 / (4 * n))))
        )
        # two probabilistic truncations (by k bits, then the product's), each < 1 unit off
        assert np.allclose(got, x / (4 * n), rtol=1e-3, atol=2 * 2**-FRAC_BITS)


def test_linear_sigmoid_solves_the_quadratic_model_in_one_step(solo_runtime) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, y = woe_matrix()
    n, d = x.shape
    x1 = np.hstack([x, np.ones((n, 1))])
    lam = 1 / n  # C = 1
    want = np.linalg.solve(x1.T @ x1 / (4 * n) + lam * np.eye(d + 1), x1.T @ (y - 0.5) / n)
    spec = LrSpec(n, 0, 0, [d], newton_steps=1, polish_steps=0, sigmoid="linear")
    got = solo_runtime.run(fit(solo_runtime, spec, x, y))
    assert np.abs(got.coefficients - want[:-1]).max() < 0.01
    sk = LogisticRegression(C=1.0, max_iter=10000).fit(x, y)
    assert abs(roc_auc_score(y, x @ got.coefficients) - roc_auc_score(y, x @ sk.coef_[0])) < 0.005


def test_linear_sigmoid_steps_reach_the_constrained_quadratic_optimum(solo_runtime) -> None:
    # The linear sigmoid's steps use the gradient H~ theta + X~^T (1/2 - y) / n, computed once.
    x, y = woe_matrix(rows=400, min_iv=0.0)  # every feature: some want a positive sign
    n, d = x.shape
    x1 = np.hstack([x, np.ones((n, 1))])
    h = x1.T @ x1 / (4 * n) + np.eye(d + 1) / n  # C = 1
    g0 = x1.T @ (0.5 - y) / n
    bounds = [(None, 0.0)] * d + [(None, None)]
    free = np.linalg.solve(h, -g0)
    assert (free[:-1] > 0.05).any()  # the constraint is active
    want = minimize(
        lambda t: t @ h @ t / 2 + g0 @ t, np.zeros(d + 1), jac=lambda t: h @ t + g0,
        method="L-BFGS-B", bounds=bounds, tol=1e-12,
    ).x  # fmt: skip
    spec = LrSpec(n, 0, 0, [d], newton_steps=6, polish_steps=12, sigmoid="linear")
    got = solo_runtime.run(fit(solo_runtime, spec, x, y))
    assert (got.coefficients <= 0).all()
    assert np.abs(got.coefficients - want[:-1]).max() < TOLERANCE
    assert abs(got.intercept - want[-1]) < TOLERANCE
