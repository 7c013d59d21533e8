"""`mpc-credit demo`'s scoring steps when joint training left an institution without any
feature (DP noise on 700 rows can): that institution takes part holding no data; the bank
sees the model's reason statements."""

from __future__ import annotations

import json

from rich.console import Console

from mpc_credit.cli.demo import Trained, _run, _run_daemons
from mpc_credit.scorecard.reason_table import apply_reasons, load_reason_table
from tests.conftest import MODEL, OWNERS, PARTIES


def test_an_institution_without_features_is_a_helper(tmp_path):
    model = json.loads(MODEL.read_text())
    model["features"] = [f for f in model["features"] if f["owner"] != "bureau"]
    model, _ = apply_reasons(model, load_reason_table(PARTIES / "bank" / "reasons.csv"))
    (tmp_path / "model.json").write_text(json.dumps(model))
    trained = Trained(tmp_path / "model.json", {o: PARTIES / o / "applicants.csv" for o in OWNERS})
    assert trained.helpers() == ["bureau"] and set(trained.scoring_data()) == {"bank", "telco"}
    out = _run(trained, "shared", "reasons", tmp_path / "reasons.csv")
    assert out.rows == 1000 and out.received == {"bank": True, "telco": False, "bureau": False}
    console = Console(record=True, width=200)
    _run_daemons(console, trained, "shared", ["A0191", "A0867"])
    shown = console.export_text()
    assert "A0867" in shown and "R01 Checking account status or balance" in shown
