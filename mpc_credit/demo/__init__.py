"""The demo consortium's data, shipped inside the package so that `mpc-credit demo` and
`mpc-credit pki init` run from any install (a wheel, pip install, a source checkout).

The German credit data split over three institutions (README, "Data";
scripts/train_demo.py writes these files):

* ``bank/german-credit-demo.json``: the demo scorecard (the full model);
* ``bank/applicants.csv``, ``bureau/applicants.csv``, ``telco/applicants.csv``: each
  institution's own features, ``applicant_id`` first;
* ``bank/labels.csv``: ``applicant_id,bad``, the bank's outcomes, kept apart;
* ``bank/reasons.csv``: the reason table (``feature,code,statement``): each feature's
  adverse-action reason code and statement, which `mpc-credit demo` puts into its model.

This folder is the only copy: read it in place, never write into it (an installed package
may be read-only). `copy_demo` puts the files into a consortium folder for `pki init`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mpc_credit.errors import UsageError

DEMO_DIR = Path(__file__).resolve().parent
OWNERS = ("bank", "bureau", "telco")
MODEL_NAME = "german-credit-demo"
MODEL = f"bank/{MODEL_NAME}.json"
LABELS = "bank/labels.csv"  # applicant_id,bad
REASONS = "bank/reasons.csv"  # feature,code,statement (docs/formats.md)
FILES = (MODEL, LABELS, REASONS, *(f"{o}/applicants.csv" for o in OWNERS))


def demo_dir() -> Path:
    """The folder of the demo's files; UsageError when the install lacks any of them."""
    missing = [f for f in FILES if not (DEMO_DIR / f).is_file()]
    if missing:
        raise UsageError(
            f"demo data missing under {DEMO_DIR}: {', '.join(missing)}; reinstall mpc-credit"
        )
    return DEMO_DIR


def applicants(owner: str) -> Path:
    """An institution's demo CSV."""
    return demo_dir() / owner / "applicants.csv"


def copy_demo(out: Path) -> list[Path]:
    """Copy the demo's files into `out/NAME/` (as `pki init` lays out a consortium); a file
    already there is kept. Returns the files copied."""
    source = demo_dir()
    copied = []
    for name in FILES:
        target = out / name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
        copied.append(target)
    return copied
