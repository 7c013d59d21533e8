"""`mpc-credit train` bad input through the real command line: exit 2, one line naming the file,
line and column (or the flag), no model file, no privacy spent."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_bad_input import refused as refused_by_cli
from tests.local.train_inputs import cli, train_args, write_inputs

DP = ("--epsilon", "1")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write_inputs(tmp_path)
    return tmp_path


def refused(proc: subprocess.CompletedProcess[str], folder: Path, *needles: str) -> str:
    """`simulate`'s clean refusal (exit 2, one line naming the culprit), no model, no budget."""
    err = refused_by_cli(proc, folder, *needles)
    assert not (folder / "model.json").exists()
    assert not list(folder.glob(".model.json.*"))
    ledgers = folder / "ledgers"
    assert not ledgers.exists() or not any(ledgers.iterdir())  # no privacy spent
    return err


def rewrite(path: Path, edit) -> None:
    """Apply `edit(rows)` to a CSV file's rows (header first)."""
    rows = list(csv.reader(io.StringIO(path.read_text())))
    edit(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())


def test_label_column_missing(files):
    rewrite(files / "bank.csv", lambda rows: [r.pop() for r in rows])
    proc = cli(*train_args(*DP), cwd=files)
    refused(proc, files, "bank.csv, line 1", "no label column 'default'")


def test_label_that_is_not_0_or_1(files):
    def edit(rows):
        rows[5][-1] = "yes"

    rewrite(files / "bank.csv", edit)
    proc = cli(*train_args(*DP), cwd=files)
    refused(proc, files, "party bank", "bank.csv, line 6, column 'default'", "'yes'", "0 (good)")


def test_label_that_is_not_0_or_1_in_the_holdout(files):
    held = (files / "test.txt").read_text().split()[0]

    def edit(rows):
        for r in rows:
            if r[0] == held:
                r[-1] = "2"

    rewrite(files / "bank.csv", edit)
    proc = cli(*train_args(*DP, "--test-ids", "test.txt"), cwd=files)
    refused(proc, files, "bank.csv, line", "column 'default'", "label '2'")


def test_feature_with_a_single_value(files):
    def edit(rows):
        for r in rows[1:]:
            r[3] = "42"  # telco's age_in_years

    rewrite(files / "telco.csv", edit)
    proc = cli(*train_args(*DP), cwd=files)
    refused(proc, files, "party telco", "telco.csv, column 'age_in_years'", "single value '42'")


def test_non_finite_number(files):
    def edit(rows):
        rows[9][2] = "inf"  # bank's duration_in_month

    rewrite(files / "bank.csv", edit)
    proc = cli(*train_args(*DP), cwd=files)
    refused(proc, files, "bank.csv, line 10, column 'duration_in_month'", "not a finite number")


def test_fewer_than_three_parties(files):
    data = {"bank": "bank.csv", "bureau": "bureau.csv"}
    proc = cli(*train_args(*DP, data=data), cwd=files)
    refused(proc, files, "at least 3 parties", "got 2: bank, bureau")


def test_too_few_rows_for_the_bins_asked(files):
    proc = cli(*train_args(*DP, "--bins", "250"), cwd=files)
    refused(proc, files, ".csv, column '", "too few for 250 bins", "fewer --bins")


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--epsilon", "1", "--no-dp"), "either --epsilon or --no-dp, not both"),
        (("--epsilon", "0"), "--epsilon 0: must be a positive number"),
        (("--epsilon", "-2"), "--epsilon -2: must be a positive number"),
        (("--epsilon", "nan"), "must be a positive number"),
    ],
)
def test_privacy_is_one_explicit_choice(files, flags, needle):
    refused(cli(*train_args(*flags), cwd=files), files, needle)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--pdo", "0"), "--pdo 0: must be a positive number"),
        (("--odds", "-1"), "--odds -1: must be a positive number"),
        (("--bins", "0"), "--bins"),
        (("--polish-steps", "-1"), "--polish-steps -1: must be 0 or more"),
        (("--label", "bank"), "--label 'bank': expected PARTY:COLUMN"),
    ],
)
def test_scaling_and_steps_are_checked_before_any_party_starts(files, flags, needle):
    refused(cli(*train_args(*DP, *flags), cwd=files), files, needle)


def test_a_feature_name_at_two_parties(files):
    def edit(rows):
        rows[0][1] = "age_in_years"  # telco's column name at the bureau

    rewrite(files / "bureau.csv", edit)
    proc = cli(*train_args(*DP), cwd=files)
    refused(proc, files, "line 1, column 'age_in_years': also a column of", "must differ")


def test_missing_data_file(files):
    (files / "telco.csv").unlink()
    refused(cli(*train_args(*DP), cwd=files), files, "telco.csv: training data not found")


def test_holdout_naming_an_unknown_applicant(files):
    (files / "test.txt").write_text("A0001\nZ9999\n")
    proc = cli(*train_args(*DP, "--test-ids", "test.txt"), cwd=files)
    refused(proc, files, "test.txt: applicant 'Z9999' (entry 2) is not in", "bank.csv")


def test_label_of_a_party_without_data(files):
    proc = cli(*train_args(*DP, "--label", "lender:default"), cwd=files)
    refused(proc, files, "--label: 'lender' is not one of the --data parties")


def test_exact_logistic_regression_with_dp(files):
    proc = cli(*train_args(*DP, "--regression", "logistic"), cwd=files)
    refused(proc, files, "the exact logistic regression has no DP release")


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--monotone", "duration_in_month:up"), "expected FEATURE:TREND"),
        (("--c", "0"), "--c 0: must be a positive number"),
        (("--woe-clip", "-1"), "--woe-clip -1: must be a positive number"),
        (("--test-fraction", "1.5"), "--test-fraction 1.5: must lie strictly between 0 and 1"),
        (("--test-fraction", "0.3", "--test-ids", "test.txt"), "not both"),
        (("--regression", "tree"), "--regression"),
    ],
)
def test_modelling_controls_are_checked_before_any_party_starts(files, flags, needle):
    refused(cli(*train_args(*DP, *flags), cwd=files), files, needle)


def test_output_over_an_input(files):
    proc = cli(*train_args(*DP, "--out", "bank.csv"), cwd=files)
    refused(proc, files, "--out: bank.csv is bank's --data file")


def test_scoring_data_that_is_a_file(files):
    (files / "scoring").write_text("not a folder\n")
    proc = cli(*train_args(*DP, "--scoring-data", "scoring"), cwd=files)
    refused(proc, files, "--scoring-data scoring: not a folder")


def test_a_bad_reason_table_is_refused_before_any_party_starts(files):
    (files / "reasons.csv").write_text("feature,code,statement\nage_in_years,R 13,Age\n")
    proc = cli(*train_args(*DP, "--reasons", "reasons.csv"), cwd=files)
    refused(proc, files, "reasons.csv, line 2, column 'code': must be 1 to 16")
