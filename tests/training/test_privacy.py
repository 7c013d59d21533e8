"""The DP plan's sensitivities hold when one applicant is replaced, added or removed."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_credit.training import privacy
from mpc_credit.training.ledger import rho_for
from mpc_credit.training.privacy import WOE_BITS, Budget, stats_sensitivity
from mpc_credit.training.stats import StatsSpec
from tests.training.german import candidates


def _counts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.concatenate([x.T @ (1 - y), x.T @ y])


def _neighbours(n: int, rng: np.random.Generator):
    """Index arrays of D and of D' for replace, remove and add, around one applicant."""
    i, j = rng.integers(0, n, 2)
    keep = np.arange(n)
    return [
        ("replace", keep, np.where(keep == i, j, keep)),
        ("remove", keep, keep[keep != i]),
        ("add", keep[keep != i], keep),
    ]


def test_counts_move_by_at_most_two_units_per_feature() -> None:
    cands, x, y = candidates()
    f = len(cands)
    rng = np.random.default_rng(0)
    for _ in range(200):
        for kind, a, b in _neighbours(len(y), rng):
            yb = y[b].copy()
            if kind == "replace":
                yb[np.flatnonzero(a != b)] = 1 - yb[np.flatnonzero(a != b)]  # label flips too
            d2 = np.sum((_counts(x[a], y[a]) - _counts(x[b], yb)) ** 2)
            assert d2 <= (2 * f if kind == "replace" else f)


def _stats(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xt = np.column_stack([x, np.full(len(x), 2**WOE_BITS)]).astype(float) / 2**WOE_BITS
    return xt.T @ xt, xt.T @ y


def _worst_rows(rng, cols: list[int], unit: int, trial: int):
    """A row and its replacement: random, or at the corners of [-B, B] (opposite or not)."""
    d = sum(cols)
    if trial % 3 == 0:
        return rng.integers(-unit, unit + 1, d), rng.integers(-unit, unit + 1, d)
    x = rng.choice([-unit, unit], d)
    x2 = x.copy()
    other = slice(cols[0], d)
    x2[other] = -x[other] if trial % 3 == 1 else rng.choice([-unit, unit], d - cols[0])
    return x, x2


@pytest.mark.parametrize("labels_own", [True, False])
def test_statistics_move_within_the_stated_sensitivity(labels_own: bool) -> None:
    """The model owner's columns fixed per applicant, the others' anywhere in [-B, B]."""
    rng = np.random.default_rng(1)
    clip, n, cols = 1.0, 200, [3, 4, 2]  # pid 0 the model owner
    spec = StatsSpec(n, 0 if labels_own else 1, 0, cols)
    mask_a, mask_b = spec.noised()
    da, db = stats_sensitivity(sum(cols) - cols[0], cols[0], clip, labels_own)
    unit = 2**WOE_BITS
    rows, c = np.triu_indices(sum(cols) + 1)
    worst_a = worst_b = 0.0
    for trial in range(600):
        x = rng.integers(-unit, unit + 1, (n, sum(cols)))
        y = rng.integers(0, 2, n)
        i = rng.integers(n)
        x[i], row = _worst_rows(rng, cols, unit, trial)
        x2, y2 = x.copy(), y.copy()
        x2[i] = row
        if not labels_own and trial % 2:
            y2[i] = 1 - y[i]
        a1, b1 = _stats(x, y)
        a2, b2 = _stats(x2, y2)
        worst_a = max(worst_a, np.linalg.norm((a1 - a2)[rows, c][mask_a]))
        worst_b = max(worst_b, np.linalg.norm((b1 - b2)[mask_b]))
        removed, _ = _stats(np.delete(x, i, 0), np.delete(y, i))
        assert np.linalg.norm((a1 - removed)[rows, c][mask_a]) <= da + 1e-9
    assert worst_a <= da + 1e-9 and worst_b <= db + 1e-9
    assert worst_a > 0.6 * da and worst_b > 0.6 * db  # and not loose


def test_the_model_owners_own_entries_carry_no_noise() -> None:
    spec = StatsSpec(10, 0, 0, [2, 1, 1])
    mask_a, mask_b = spec.noised()
    own = spec.own()
    assert own.tolist() == [True, True, False, False, True]
    rows, cols = np.triu_indices(5)
    assert (mask_a == ~(own[rows] & own[cols])).all()
    assert mask_b.tolist() == [False, False, True, True, False]  # the lender holds the labels
    assert StatsSpec(10, 1, 0, [2, 1, 1]).noised()[1].all()


def test_budget_split_and_noise_scale() -> None:
    rho = rho_for(1.0)
    b = Budget(rho)
    assert b.counts + b.a + b.b == pytest.approx(rho)
    assert privacy.count_sigma2(12, b.counts) == pytest.approx(12 / b.counts)
    assert privacy.gaussian_sigma2(3.0, 0.5) == pytest.approx(9.0)
    with pytest.raises(ValueError):
        privacy.count_sigma2(3, 0)


def test_each_contributor_hides_its_share_from_any_t_coalition() -> None:
    assert privacy.share_sigma2(400, contributors=2, threshold=1) == 200
    assert privacy.share_sigma2(400, contributors=4, threshold=2) == pytest.approx(400 / 3)
    assert privacy.share_sigma2(400, contributors=1, threshold=1) == 400
    assert privacy.share_sigma2(10, contributors=2, threshold=1) == privacy.MIN_SIGMA2
    with pytest.raises(ValueError):
        privacy.share_sigma2(400, contributors=0, threshold=1)
