"""`mpc-credit model reasons`: a bank gives an existing model its reason statements."""

from __future__ import annotations

import json

from mpc_credit.scorecard.model import load_model
from mpc_credit.scorecard.reasons import Reason
from tests.cli.test_bad_input import cli
from tests.conftest import MODEL, PARTIES

TABLE = PARTIES / "bank" / "reasons.csv"


def test_reasons_into_an_existing_model_then_shown_and_split(tmp_path):
    out = tmp_path / "model.json"
    proc = cli(
        "model", "reasons", str(MODEL), "--reasons", str(TABLE), "--out", str(out), cwd=tmp_path
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    model = load_model(out)
    assert f"sha256 {model.digest()}" in proc.stdout
    assert model.reasons()[6] == Reason("R07", "Length of employment too short")
    shown = cli("model", "show", str(out), cwd=tmp_path, env={"COLUMNS": "250"})
    assert "R02: Duration of credit too long" in shown.stdout
    assert cli("model", "split", str(out), "--out-dir", "parts", cwd=tmp_path).returncode == 0
    part = json.loads((tmp_path / "parts" / "telco.shared.json").read_text())
    assert part["features"][0] == {
        "name": "status_of_existing_checking_account",
        "owner": "bank",
        "kind": "hidden",
        "bins": 6,
        "reason": {"code": "R01", "statement": "Checking account status or balance"},
    }


def test_an_unused_row_is_a_warning_and_a_bad_row_an_error(tmp_path):
    table = tmp_path / "reasons.csv"
    table.write_text("feature,code,statement\nduration_in_month,R2,Too long\nincome,R9,Low\n")
    out = tmp_path / "model.json"
    proc = cli(
        "model", "reasons", str(MODEL), "--reasons", str(table), "--out", str(out), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        f"mpc-credit: warning: {table}: features model 'german-credit-demo' does not use, "
        "ignored: income"
    )
    table.write_text('feature,code,statement\nduration_in_month,R2,"Too\nlong"\n')
    proc = cli(
        "model", "reasons", str(MODEL), "--reasons", str(table), "--out", "x.json", cwd=tmp_path
    )
    assert proc.returncode == 2 and not (tmp_path / "x.json").exists()
    assert f"{table}, line 2, column 'statement': must be a single line" in proc.stderr
