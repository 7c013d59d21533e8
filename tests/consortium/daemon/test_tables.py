"""A daemon's local data: its CSV's columns that no model uses are ignored and named once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

from mpc_credit.consortium.daemon.tables import LocalData
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL, PARTIES


def telco_with(folder: Path, extra: str) -> Path:
    """The telco's demo CSV with one more column, `extra`."""
    lines = (PARTIES / "telco" / "applicants.csv").read_text().splitlines()
    path = folder / "applicants.csv"
    path.write_text("\n".join([f"{lines[0]},{extra}", *(f"{r},x" for r in lines[1:])]) + "\n")
    return path


def test_columns_no_model_uses_are_logged_once_per_file_version(tmp_path, caplog):
    csv = telco_with(tmp_path, "contract_id")
    cfg = SimpleNamespace(
        party="telco",
        data=csv,
        source=tmp_path / "party.toml",
    )
    model = load_model(MODEL)
    served = SimpleNamespace(
        models={("german-credit-demo", "shared"): model, ("german-credit-demo", "secret"): model}
    )
    with caplog.at_level(logging.WARNING, logger="mpc_credit.daemon"):
        data = LocalData(cfg, served)  # loads the CSV for both modes
        assert data.table("german-credit-demo", "shared").ignored == ("contract_id",)
        assert data.table("german-credit-demo", "secret").ignored == ("contract_id",)
    notes = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert notes == [
        f"{csv}: 1 column not used by model 'german-credit-demo' from telco, ignored: 'contract_id'"
    ]
    caplog.clear()
    telco_with(tmp_path, "handset")  # the institution updates its file: read again, said again
    stat = csv.stat()
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with caplog.at_level(logging.WARNING, logger="mpc_credit.daemon"):
        assert data.table("german-credit-demo", "shared").ignored == ("handset",)
        assert data.table("german-credit-demo", "secret").ignored == ("handset",)
    assert [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records] == ["'handset'"]
