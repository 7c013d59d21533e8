"""The privacy ledger composes, persists, and refuses a run past the budget before it runs."""

from __future__ import annotations

import math

import pytest

from mpc_credit.errors import DataError, RefusedError
from mpc_credit.training.ledger import DELTA, Ledger, epsilon_of, rho_for


def test_rho_for_epsilon_round_trips() -> None:
    for eps in (0.5, 1.0, 4.0):
        rho = rho_for(eps)
        assert epsilon_of([rho]) == pytest.approx(eps, rel=1e-6)
        # never looser than the textbook conversion rho + 2 sqrt(rho ln(1/delta))
        assert rho + 2 * math.sqrt(rho * math.log(1 / DELTA)) >= eps * (1 - 1e-6)


def test_the_ledger_grows_by_the_run_and_persists(tmp_path) -> None:
    path = tmp_path / "ledger.json"
    led = Ledger.open(path, "bank", budget=3.0)
    assert led.spent() == 0.0
    rho = rho_for(1.0)
    led.charge("run-1", rho)
    again = Ledger.open(path, "bank", budget=3.0)
    assert [r["run"] for r in again.runs] == ["run-1"]
    assert again.spent() == pytest.approx(1.0, rel=1e-6)
    again.charge("run-2", rho)
    assert Ledger.open(path, "bank", 3.0).spent() == pytest.approx(epsilon_of([rho, rho]))
    assert 1.0 < Ledger.open(path, "bank", 3.0).spent() < 2.0  # zCDP composes below the sum


def test_a_run_past_the_budget_is_refused_and_not_recorded(tmp_path) -> None:
    path = tmp_path / "ledger.json"
    led = Ledger.open(path, "bureau", budget=1.2)
    led.charge("a", rho_for(1.0))
    with pytest.raises(RefusedError, match=r"party bureau: .*over its budget of 1\.2"):
        led.charge("b", rho_for(1.0))
    assert [r["run"] for r in Ledger.open(path, "bureau", 1.2).runs] == ["a"]
    with pytest.raises(RefusedError, match="already"):
        led.charge("a", 1e-9)


def test_a_foreign_or_broken_ledger_is_one_error(tmp_path) -> None:
    path = tmp_path / "ledger.json"
    Ledger.open(path, "bank", 2.0).charge("x", 0.01)
    with pytest.raises(DataError, match="party telco"):
        Ledger.open(path, "telco", 2.0)
    path.write_text('{"party": "bank", "runs": [{"run": "x", "rho": -1}]}')
    with pytest.raises(DataError, match=r"runs\[0\]"):
        Ledger.open(path, "bank", 2.0)
    path.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        Ledger.open(path, "bank", 2.0)
