"""The quadratic fit from sufficient statistics: its optimum, its constraint, its ridge."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from mpc_credit.training import ssp
from tests.training.german import woe_matrix


def _stats(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xt = np.column_stack([x, np.ones(len(x))])
    return xt.T @ xt, xt.T @ y


def test_the_fit_is_the_constrained_optimum_of_the_quadratic_objective() -> None:
    x, y = woe_matrix()
    a, b = _stats(x, y)
    n, d = x.shape
    got = ssp.fit(a, b, n, c=0.5)
    p = y.mean()
    w0 = p * (1 - p)
    m = w0 * a + np.diag([*[2.0] * d, 0.0])  # ridge 1/C on the features only
    g = b - p * a[:, -1]

    def f(u: np.ndarray) -> float:
        return 0.5 * u @ m @ u - g @ u

    bounds = [(None, 0.0)] * d + [(None, None)]
    want = minimize(f, np.zeros(d + 1), jac=lambda u: m @ u - g, bounds=bounds, tol=1e-14).x
    assert np.allclose(got.coefficients, want[:d], atol=1e-6)
    assert (got.coefficients <= 0).all()


def test_on_exact_statistics_it_ranks_as_scikit_learns_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, y = woe_matrix()
    got = ssp.fit(*_stats(x, y), len(y))
    sk = LogisticRegression(C=1.0, max_iter=10000).fit(x, y)
    mine = roc_auc_score(y, x @ got.coefficients)  # z: the log-odds of bad
    assert mine == pytest.approx(roc_auc_score(y, x @ sk.coef_[0]), abs=0.005)
    base = np.log(y.mean() / (1 - y.mean()))
    z = x @ got.coefficients + got.intercept
    assert np.mean(1 / (1 + np.exp(-z))) == pytest.approx(y.mean(), abs=0.01)  # 0.336 uncorrected
    assert abs(got.intercept - base) < 1.0


def test_the_noise_ridge_goes_only_to_features_with_noisy_statistics() -> None:
    r = ssp.ridge(c=1.0, rate=0.3, noise_sd=10.0, noised=np.array([True, False, True]))
    assert r[1] == 1.0 and r[0] == r[2] > 1.0
    assert ssp.ridge(1.0, 0.3, 0.0, np.array([True, True])).tolist() == [1.0, 1.0]


def test_a_noisy_matrix_is_projected_on_the_psd_cone() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    got = ssp.psd(a)
    assert np.allclose(got, got.T)
    assert np.linalg.eigvalsh(got).min() >= -1e-9
    spd = a @ a.T
    assert np.allclose(ssp.psd(spd), spd)


def test_a_degenerate_base_rate_is_clamped() -> None:
    a = np.array([[10.0, 0.0], [0.0, 100.0]])
    fit = ssp.fit(a, np.array([0.0, 0.0]), 100)
    assert np.isfinite(fit.intercept) and fit.intercept <= np.log(0.005 / 0.995)
