"""The privacy ledger composes, persists, and refuses a run past the budget before it runs."""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

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


def _charge_after(path: str, run: str, epsilon: float, start: Any) -> str:
    """In a child process: open the ledger (a copy soon stale), wait for the other, charge."""
    led = Ledger.open(Path(path), "bank", budget=10.0)
    start.wait(timeout=60)
    try:
        led.charge(run, rho_for(epsilon))
    except RefusedError:
        return "refused"
    return "charged"


def _charge(path: str, run: str) -> None:
    Ledger.open(Path(path), "bank", budget=10.0).charge(run, 1e-6)


def test_two_processes_past_the_budget_together_one_is_refused(tmp_path: Path) -> None:
    """Both passed the pre-check on the same empty file: only one may land (8 + 8 > 10)."""
    path = tmp_path / "ledger.json"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(2, mp_context=ctx) as pool:
        start = manager.Barrier(2)
        runs = [pool.submit(_charge_after, str(path), f"run-{i}", 8.0, start) for i in (1, 2)]
        got = sorted(f.result(timeout=120) for f in runs)
    assert got == ["charged", "refused"]
    data = json.loads(path.read_text())
    assert len(data["runs"]) == 1
    assert Ledger.open(path, "bank", 10.0).spent() == pytest.approx(8.0, rel=1e-6)
    lock = tmp_path / ".ledger.json.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_concurrent_small_charges_all_land(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(6, mp_context=ctx) as pool:
        for f in [pool.submit(_charge, str(path), f"run-{i}") for i in range(20)]:
            f.result(timeout=120)
    runs = json.loads(path.read_text())["runs"]
    assert sorted(r["run"] for r in runs) == sorted(f"run-{i}" for i in range(20))


def test_a_charge_sees_what_another_writer_added_since_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    first, second = Ledger.open(path, "bank", 1.2), Ledger.open(path, "bank", 1.2)
    first.charge("a", rho_for(1.0))
    second.check("b", rho_for(1.0))  # the pre-check only knows the runs it last read
    with pytest.raises(RefusedError, match=r"over its budget of 1\.2"):
        second.charge("b", rho_for(1.0))
    assert [r["run"] for r in second.runs] == ["a"]  # refreshed from the file


def test_a_run_without_dp_is_recorded_costs_nothing_and_is_not_refunded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    led = Ledger.open(path, "bank", budget=1.0)
    led.charge("dp", rho_for(1.0))
    led.record_no_dp("exact")
    entry = json.loads(path.read_text())["runs"][1]
    assert entry["run"] == "exact" and entry["rho"] is None and entry["dp"] is False
    again = Ledger.open(path, "bank", budget=1.0)
    assert again.no_dp_runs() == 1
    assert again.spent() == pytest.approx(1.0, rel=1e-6)  # the no-DP run spends nothing
    with pytest.raises(RefusedError, match="already"):
        again.record_no_dp("exact")
    again.refund("exact")
    again.refund("dp")
    assert [r["run"] for r in Ledger.open(path, "bank", 1.0).runs] == ["exact"]


def test_an_old_entry_is_a_dp_run_and_rho_null_needs_dp_false(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text('{"party": "bank", "runs": [{"run": "x", "rho": 0.01, "at": 1.0}]}')
    assert Ledger.open(path, "bank", 2.0).no_dp_runs() == 0
    for bad in ('{"run": "y", "rho": null, "dp": true}', '{"run": "y", "rho": null}'):
        path.write_text(f'{{"party": "bank", "runs": [{bad}]}}')
        with pytest.raises(DataError, match=rf"{path.name}: runs\[0\]"):
            Ledger.open(path, "bank", 2.0)
    path.write_text('{"party": "bank", "runs": [{"run": "y", "rho": 0.1, "dp": false}]}')
    with pytest.raises(DataError, match=r"runs\[0\]"):
        Ledger.open(path, "bank", 2.0)


def test_a_ledger_made_malformed_since_open_stops_a_charge(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    led = Ledger.open(path, "bank", 2.0)
    path.write_text('{"party": "bank", "runs": [{"run": "y", "rho": null, "dp": true}]}')
    with pytest.raises(DataError, match=re.escape(str(path))):
        led.charge("z", 0.01)
