"""Bad input through the real command line: one line naming the culprit, no output file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MODEL, OWNERS, PARTIES


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A writable copy of the demo consortium's model and CSVs."""
    for o in OWNERS:
        shutil.copy(PARTIES / o / "applicants.csv", tmp_path / f"{o}.csv")
    shutil.copy(MODEL, tmp_path / "model.json")
    return tmp_path


def simulate(
    folder: Path, *extra: str, data: dict[str, str] | None = None, model: str = "model.json"
):
    data = data or {o: f"{o}.csv" for o in OWNERS}
    args = ["simulate", "--model", model, "--receiver", "bank", "--out", "out.csv"]
    for owner, path in data.items():
        args += ["--data", f"{owner}={path}"]
    return cli(*args, *extra, cwd=folder)


def refused(proc: subprocess.CompletedProcess[str], folder: Path, *needles: str) -> str:
    """Assert a clean refusal: non-zero exit, one line on stderr naming the culprit, no output."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not (folder / "out.csv").exists()
    assert not list(folder.glob(".out.csv.*"))
    return err


def edit_csv(path: Path, line: int, column: str, value: str) -> None:
    rows = path.read_text().splitlines()
    header = rows[0].split(",")
    import csv
    import io

    fields = next(csv.reader(io.StringIO(rows[line - 1])))
    fields[header.index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    rows[line - 1] = buf.getvalue()
    path.write_text("\n".join(rows) + "\n")


def test_truncated_model_json(files):
    text = (files / "model.json").read_text()
    (files / "model.json").write_text(text[: len(text) // 2])
    refused(simulate(files), files, "model.json", "not valid JSON at line")


def test_model_that_is_not_json_at_all(files):
    (files / "model.json").write_text("format: scorecard\n")
    refused(simulate(files), files, "model.json", "line 1 column 1")


def test_points_edges_length_mismatch(files):
    data = json.loads((files / "model.json").read_text())
    feat = next(f for f in data["features"] if f["kind"] == "numeric")
    feat["points"] = feat["points"][:-1]
    (files / "model.json").write_text(json.dumps(data))
    refused(simulate(files), files, "model.json", f"({feat['name']}).points", "edges need")


def test_non_integer_points(files):
    data = json.loads((files / "model.json").read_text())
    data["features"][2]["missing_points"] = 1.5
    (files / "model.json").write_text(json.dumps(data))
    refused(simulate(files), files, "features[2]", "missing_points", "must be an integer")


def test_unknown_owner(files):
    data = {o: f"{o}.csv" for o in OWNERS} | {"insurer": "bank.csv"}
    refused(simulate(files, data=data), files, "insurer", "owns no feature")


def test_owner_without_data(files):
    data = {"bank": "bank.csv", "bureau": "bureau.csv"}
    refused(simulate(files, data=data), files, "no --data", "telco")


def test_non_numeric_value_names_file_line_and_column(files):
    edit_csv(files / "telco.csv", 17, "age_in_years", "forty")
    err = refused(simulate(files), files, "telco.csv", "line 17", "age_in_years", "'forty'")
    assert err.startswith("mpc-credit: party telco:")


def test_missing_data_file(files):
    (files / "bureau.csv").unlink()
    refused(simulate(files), files, "party bureau", "bureau.csv: file not found")


def test_duplicate_applicant_id(files):
    lines = (files / "bureau.csv").read_text().splitlines()
    dup_id = lines[3].split(",")[0]
    lines[10] = dup_id + lines[10][lines[10].index(",") :]
    (files / "bureau.csv").write_text("\n".join(lines) + "\n")
    refused(
        simulate(files),
        files,
        "bureau.csv",
        "line 11",
        f"duplicate applicant id '{dup_id}'",
        "line 4",
    )


def test_feature_column_renamed_to_another_owners(files):
    """The bureau's file has the bank's `purpose` instead of its own `credit_history`: the
    foreign column is ignored, the missing one refused."""
    text = (files / "bureau.csv").read_text().replace("credit_history", "purpose", 1)
    (files / "bureau.csv").write_text(text)
    refused(simulate(files), files, "bureau.csv", "line 1", "missing column(s) 'credit_history'")


def add_column(path: Path, name: str, value: str) -> None:
    """Append a column `name` holding `value` on every row."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([f"{lines[0]},{name}", *(f"{r},{value}" for r in lines[1:])]) + "\n")


def test_columns_the_model_does_not_use_are_ignored_and_listed_once(files):
    """An institution's applicant file has more columns than the model's: scoring uses the
    model's, and one line on stderr per file names the rest (never an error)."""
    assert simulate(files, "--reveal", "reasons").returncode == 0
    expected = (files / "out.csv").read_text()
    (files / "out.csv").unlink()
    add_column(files / "bank.csv", "branch", "[bold]north[/bold]")  # not a number, not markup
    add_column(files / "bank.csv", "email", "x@example.org")
    add_column(files / "bureau.csv", "purpose", "car")  # the bank's feature, at the bureau
    proc = simulate(files, "--reveal", "reasons")
    assert proc.returncode == 0, proc.stderr
    assert (files / "out.csv").read_text() == expected
    notes = [line for line in proc.stderr.splitlines() if "ignored" in line]
    assert len(notes) == 2, proc.stderr
    bank = next(n for n in notes if "bank.csv" in n)
    assert "2 columns not used by model 'german-credit-demo' from bank" in bank
    assert bank.endswith("ignored: 'branch', 'email'")
    bureau = next(n for n in notes if "bureau.csv" in n)
    assert bureau.endswith("ignored: 'purpose' (bank's feature)")
    assert "telco.csv" not in proc.stderr


def test_id_list_naming_unknown_applicants(files):
    (files / "ids.txt").write_text("A0001\nA9999\n")
    refused(simulate(files, "--ids", "ids.txt"), files, "ids.txt", "'A9999'", "entry 2")


def test_missing_id_list(files):
    refused(simulate(files, "--ids", "nope.txt"), files, "nope.txt", "not found")


def test_fewer_than_three_parties_is_refused(files):
    data = json.loads((files / "model.json").read_text())
    for f in data["features"]:
        f["owner"] = "bank" if f["owner"] == "telco" else f["owner"]
    (files / "two.json").write_text(json.dumps(data))
    proc = simulate(files, data={"bank": "bank.csv", "bureau": "bureau.csv"}, model="two.json")
    refused(proc, files, "2 parties", "at least 3")


def test_unknown_reveal_policy(files):
    refused(simulate(files, "--reveal", "everything"), files, "--reveal", "everything")


def test_failed_session_leaves_an_existing_output_untouched(files):
    (files / "out.csv").write_text("previous\n")
    edit_csv(files / "bank.csv", 3, "credit_amount", "n/a")
    proc = simulate(files)
    assert proc.returncode != 0 and "bank.csv" in proc.stderr
    assert (files / "out.csv").read_text() == "previous\n"


def test_receiver_file_without_applicants(files):
    header = (files / "bank.csv").read_text().splitlines()[0]
    (files / "bank.csv").write_text(header + "\n")
    refused(simulate(files), files, "bank.csv", "no applicants to score")
