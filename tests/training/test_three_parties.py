"""Three real party processes over loopback: inputs, placeholders and receivers are right."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from mpc_credit.local.ports import free_ports
from mpc_credit.training.logistic import fit
from tests.conftest import ROOT
from tests.training import party


@pytest.fixture(scope="module")
def received() -> list[dict]:
    ports = free_ports(3)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.training.party", str(pid), *map(str, ports)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in range(3)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


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
