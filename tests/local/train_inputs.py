"""The German credit parties as `mpc-credit train` inputs (helper, holds no tests).

The demo folder keeps the bank's labels apart (mpc_credit/demo/bank/labels.csv, column `bad`);
a training run wants them as a column of the lender's CSV, so `write_inputs` writes bank.csv =
mpc_credit/demo/bank/applicants.csv plus a `default` column, and a 30 % holdout (fixed seed).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from tests.cli.test_bad_input import cli
from tests.conftest import OWNERS, PARTIES

__all__ = ["cli", "train_args", "write_inputs"]

HOLDOUT = 300


def write_inputs(folder: Path) -> dict[str, Path]:
    """bank.csv (with `default`), bureau.csv, telco.csv and test.txt in `folder`."""
    with (PARTIES / "bank" / "labels.csv").open(newline="") as fh:
        labels = {r[0]: r[1] for r in list(csv.reader(fh))[1:]}
    with (PARTIES / "bank" / "applicants.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    with (folder / "bank.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*rows[0], "default"])
        w.writerows([*r, labels[r[0]]] for r in rows[1:])
    for o in OWNERS[1:]:
        (folder / f"{o}.csv").write_bytes((PARTIES / o / "applicants.csv").read_bytes())
    ids = sorted(labels)
    random.Random(7).shuffle(ids)
    (folder / "test.txt").write_text("\n".join(ids[:HOLDOUT]) + "\n")
    return {o: folder / f"{o}.csv" for o in OWNERS} | {"test": folder / "test.txt"}


def train_args(*extra: str, data: dict[str, str] | None = None) -> list[str]:
    """`mpc-credit train` on the files of `write_inputs`, plus `extra`."""
    data = data if data is not None else {o: f"{o}.csv" for o in OWNERS}
    args = ["train", "--label", "bank:default", "--model-owner", "bank", "--name", "joint"]
    args += ["--cutoff", "520", "--out", "model.json", "--ledger-dir", "ledgers"]
    for party, path in data.items():
        args += ["--data", f"{party}={path}"]
    return [*args, *extra]
