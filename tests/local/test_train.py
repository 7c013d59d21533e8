"""`mpc-credit train` end to end through the real command line, on the German credit parties.

Three party processes over mutual TLS train on 700 applicants and hold 300 out; the holdout is
scored by a second MPC session. Both runs use the default one-shot regression: the tests check
the plumbing, the ledger, the guardrails and the report (tests/training holds the mechanism).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mpc_credit.scorecard.data import load_ids, load_owner_csv
from mpc_credit.scorecard.model import load_model
from mpc_credit.scorecard.reference import reference
from mpc_credit.training.ledger import rho_for
from mpc_credit.training.metrics import metrics
from tests.conftest import OWNERS
from tests.local.train_inputs import cli, train_args, write_inputs

SCORING = "runs/scoring"  # --scoring-data: a folder that does not exist yet, nor its parent


@pytest.fixture(scope="module")
def no_dp_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("train")
    write_inputs(folder)
    extra = ["--no-dp", "--test-ids", "test.txt", "--report", "report"]
    proc = cli(*train_args(*extra, "--scoring-data", SCORING), cwd=folder)  # created, as --report
    assert proc.returncode == 0, proc.stderr
    return folder, proc


def labels_of(folder: Path, ids: list[str]) -> np.ndarray:
    with (folder / "bank.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {r["applicant_id"]: int(r["default"]) for r in rows}
    return np.array([by_id[a] for a in ids])


def test_no_dp_run_is_announced_loudly_and_recorded_in_every_ledger(no_dp_run):
    folder, proc = no_dp_run
    warning = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "no differential privacy protects the applicants" in warning[0]
    assert "privacy: none (--no-dp); recorded as a run without DP" in proc.stdout
    for o in OWNERS:
        runs = json.loads((folder / "ledgers" / f"{o}.json").read_text())["runs"]
        assert [(r["rho"], r["dp"]) for r in runs] == [(None, False)]
    assert "checks: no warning" in proc.stdout


def test_model_loads_and_scores_with_simulate_as_the_holdout_said(no_dp_run):
    folder, proc = no_dp_run
    model = load_model(folder / "model.json")
    assert model.name == "joint" and model.cutoff == 520 and model.features
    assert {f.owner for f in model.features} <= set(OWNERS)
    data = [f"--data={o}={SCORING}/{o}.csv" for o in OWNERS]
    run = cli(
        "simulate", "--model", "model.json", *data, "--receiver", "bank",
        "--ids", "test.txt", "--out", "scores.csv", cwd=folder,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with (folder / "scores.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    ids = load_ids(folder / "test.txt")
    assert [r[0] for r in rows] == ids
    scores = np.array([int(r[1]) for r in rows])
    tables = {o: load_owner_csv(folder / SCORING / f"{o}.csv", model, o) for o in OWNERS}
    expected = reference(model, tables, ids, "score").rows()
    assert [[str(v) for v in r] for r in expected] == rows  # the engine's = plaintext's
    m = metrics(labels_of(folder, ids), scores)
    printed = re.search(r"holdout: 300 applicants \((\d+) bad\).*AUC ([\d.]+), Gini ([\d.-]+), "
                        r"KS ([\d.]+)", proc.stdout)  # fmt: skip
    assert printed, proc.stdout
    assert int(printed[1]) == m.bad
    assert float(printed[2]) == pytest.approx(m.auc, abs=5e-5)
    assert float(printed[3]) == pytest.approx(m.gini, abs=5e-5)
    assert float(printed[4]) == pytest.approx(m.ks, abs=5e-5)
    assert m.auc > 0.7  # the plaintext reference scores 0.79 on this split


def test_the_institutions_full_files_score_as_the_scoring_csvs(no_dp_run):
    """Scoring from each institution's whole applicant file (the bank's with its label column,
    features the model left out): the extra columns are ignored, one line per file says so."""
    folder, _ = no_dp_run
    model = load_model(folder / "model.json")
    runs = {}
    for name, files in (("slim", f"{SCORING}/{{}}.csv"), ("full", "{}.csv")):
        data = [f"--data={o}={files.format(o)}" for o in OWNERS]
        out = f"{name}.csv"
        run = cli(
            "simulate", "--model", "model.json", *data, "--receiver", "bank",
            "--ids", "test.txt", "--out", out, cwd=folder,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        runs[name] = (run, (folder / out).read_text())
    assert runs["full"][1] == runs["slim"][1]
    assert "ignored" not in runs["slim"][0].stderr
    notes = [line for line in runs["full"][0].stderr.splitlines() if "ignored:" in line]
    bank = [n for n in notes if "bank.csv" in n]
    assert len(bank) == 1 and "'default'" in bank[0]
    left_out = {o for o in OWNERS if len(model.features_of(o)) < len(read_header(folder, o))}
    assert len(notes) == len(left_out | {"bank"})


def read_header(folder: Path, owner: str) -> list[str]:
    return (folder / f"{owner}.csv").read_text().splitlines()[0].split(",")[1:]


def test_scoring_csvs_hold_the_models_columns_and_no_label(no_dp_run):
    folder, _ = no_dp_run
    model = load_model(folder / "model.json")
    for o in OWNERS:
        header = (folder / SCORING / f"{o}.csv").read_text().splitlines()[0].split(",")
        assert header == ["applicant_id", *(f.name for f in model.features_of(o))]


def test_report_has_the_tables_and_plots(no_dp_run):
    import hashlib

    folder, _ = no_dp_run
    page = (folder / "report" / "index.html").read_text()
    model = json.loads((folder / "model.json").read_text())
    for section in ("Holdout", "AUC", "Privacy", "Model", "Binning of bank", "Gains"):
        assert section in page
    assert hashlib.sha256((folder / "model.json").read_bytes()).hexdigest() in page
    ids = set(load_ids(folder / "test.txt"))
    with (folder / "bank.csv").open(newline="") as fh:
        train_y = [int(r["default"]) for r in csv.DictReader(fh) if r["applicant_id"] not in ids]
    rate = f"{np.mean(train_y):.1%}"
    assert re.search(rf"bad rate of the training rows(<[^>]+>|\s)*{re.escape(rate)}", page)
    for f in model["features"]:
        assert f">{f['name']} <small>({f['owner']})" in page
    for name in ("status_of_existing_checking_account", "duration_in_month"):  # bank's own
        assert re.search(rf"<h3>{name}: IV \d", page)
    assert "<h3>credit_history: IV" not in page  # the bureau's counts stay with the bureau
    assert "No differential privacy" in page
    assert page.count('src="data:image/png;base64,') == 3  # ROC, scores, calibration


def test_dp_run_charges_every_ledger_and_a_run_past_the_budget_is_refused(tmp_path):
    write_inputs(tmp_path)
    dp = ["--epsilon", "1", "--budget", "1.2"]
    proc = cli(*train_args(*dp, "--test-ids", "test.txt"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    assert re.search(r"privacy: epsilon 1 \(delta 1e-06\)", proc.stdout), proc.stdout
    assert "holdout: 300 applicants" in proc.stdout
    ledgers = {o: json.loads((tmp_path / "ledgers" / f"{o}.json").read_text()) for o in OWNERS}
    for o, ledger in ledgers.items():
        assert ledger["party"] == o
        assert [r["rho"] for r in ledger["runs"]] == [pytest.approx(rho_for(1.0), rel=1e-12)]
    (tmp_path / "model.json").unlink()
    again = cli(*train_args(*dp), cwd=tmp_path)
    assert again.returncode == 4, again.stderr
    err = again.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(r"party (bank|bureau|telco): run \w+ would bring", err), err
    assert "over its budget of 1.2" in err
    assert not (tmp_path / "model.json").exists()
    after = {o: json.loads((tmp_path / "ledgers" / f"{o}.json").read_text()) for o in OWNERS}
    assert after == ledgers  # a refused run spends nothing


def test_holdout_by_fraction_exclusion_and_strict_guardrails(tmp_path):
    """The lender draws its own holdout; excluded columns never reach the model; a cutoff that
    approves almost nobody is a named warning, and --strict refuses to write that model."""
    write_inputs(tmp_path)
    args = train_args("--test-fraction", "0.3", "--seed", "7", "--exclude", "age_in_years",
                      "--exclude", "personal_status_and_sex", "--no-dp")  # fmt: skip
    high = [a if a != "520" else "800" for a in args]  # approves under 5 % of the holdout
    strict = cli(*high, "--strict", cwd=tmp_path)
    assert strict.returncode == 4, strict.stderr
    err = strict.stderr.strip().splitlines()[-1]
    assert "--strict: the model is not written" in err and "[cutoff-approval]" in err
    assert not (tmp_path / "model.json").exists()
    loose = cli(*high, cwd=tmp_path)
    assert loose.returncode == 0, loose.stderr
    assert re.search(r"warning \[cutoff-approval\]: .*approves", loose.stdout), loose.stdout
    assert "holdout: 300 applicants" in loose.stdout
    names = {f["name"] for f in json.loads((tmp_path / "model.json").read_text())["features"]}
    assert names and not names & {"age_in_years", "personal_status_and_sex"}
