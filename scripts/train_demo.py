"""Train the German-credit demo scorecard and write the demo parties' files (mpc_credit/demo/).

Run from the repository root::

    python scripts/train_demo.py [--data PATH] [--check-only]

Fits an optbinning ``BinningProcess`` (numeric bins monotone in risk) and a
scikit-learn ``LogisticRegression`` into an optbinning ``Scorecard`` (PDO 20,
odds 50, base points 600, integer points) on the 1000 applicants of the German
credit data (``creditability``: bad = event = 1). Everything is deterministic.

The cutoff is the integer score that approves closest to 70 % of applicants
(approve iff score >= cutoff): 498, approving 70.0 % (AUC on the training data
0.830).

Writes, overwriting:

* ``mpc_credit/demo/bank/german-credit-demo.json``: the model (the model file of docs/formats.md).
* ``mpc_credit/demo/{bank,bureau,telco}/applicants.csv``: ``applicant_id`` (``A0001`` ..
  ``A1000`` in source order) and the owner's feature columns, rows shuffled per
  owner. The telco does not know 30 applicants and has 20 empty cells; the bureau
  has 10 empty cells.
* ``mpc_credit/demo/bank/labels.csv``: ``applicant_id,bad`` (0/1), the only place the
  target goes.

Before writing, the model is applied by hand (contract semantics) to the complete
source data and must reproduce ``Scorecard.score`` for every applicant.
``--check-only`` re-fits and verifies the files on disk equal what would be
written, without writing.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / "scripts" / "data" / "germancredit.csv"
DEMO = Path("mpc_credit/demo")  # the package's demo data, relative to the repository root
TARGET = "creditability"
MODEL_NAME = "german-credit-demo"
PDO, ODDS, BASE_POINTS = 20, 50, 600
APPROVAL_TARGET = 0.70
SEED = 20240611
# Monotone numeric bins keep the points explainable (reason codes); optbinning's
# default ("auto") gave e.g. credit_amount points 22, 25, 33, 65, 17, 17, -1.
MONOTONIC_TREND = "auto_asc_desc"

OWNERS: dict[str, str] = {
    # bank: the account relationship and the loan applied for
    "status_of_existing_checking_account": "bank",
    "duration_in_month": "bank",
    "purpose": "bank",
    "credit_amount": "bank",
    "savings_account_and_bonds": "bank",
    "installment_rate_in_percentage_of_disposable_income": "bank",
    "property": "bank",
    "other_debtors_or_guarantors": "bank",
    # bureau: credit record and address history
    "credit_history": "bureau",
    "other_installment_plans": "bureau",
    "number_of_existing_credits_at_this_bank": "bureau",
    "present_residence_since": "bureau",
    # telco / employer: customer and employment profile
    "present_employment_since": "telco",
    "age_in_years": "telco",
    "housing": "telco",
    "telephone": "telco",
    "job": "telco",
    "personal_status_and_sex": "telco",
    "foreign_worker": "telco",
    "number_of_people_being_liable_to_provide_maintenance_for": "telco",
}
PARTIES = ("bank", "bureau", "telco")
# owner -> (applicants the owner does not know, empty cells among known rows)
GAPS: dict[str, tuple[int, int]] = {
    "bank": (0, 0),
    "bureau": (0, 10),
    "telco": (30, 20),
}


def load_data(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Features, bad indicator (1 = bad) and applicant ids A0001.. in file order."""
    frame = pd.read_csv(path)
    labels = frame.pop(TARGET)
    unknown = set(labels) - {"good", "bad"}
    if unknown:
        raise ValueError(f"{path}: unexpected {TARGET} values {sorted(unknown)}")
    y = (labels == "bad").astype(int).to_numpy()
    ids = [f"A{i:04d}" for i in range(1, len(frame) + 1)]
    return frame, y, ids


def build_model(scorecard: Any, cutoff: int) -> dict[str, Any]:
    """The contract model dict of the fitted scorecard."""
    if str(REPO_ROOT) not in sys.path:  # run from a checkout, package not installed
        sys.path.insert(0, str(REPO_ROOT))
    from mpc_credit.scorecard.optbinning_import import scorecard_to_model

    return scorecard_to_model(
        scorecard,
        OWNERS,
        name=MODEL_NAME,
        cutoff=cutoff,
        pdo=PDO,
        odds=ODDS,
        base_points=BASE_POINTS,
    )


def fit_scorecard(features: pd.DataFrame, y: np.ndarray) -> Any:
    """Fit the optbinning scorecard (deterministic)."""
    from optbinning import BinningProcess, Scorecard
    from sklearn.linear_model import LogisticRegression

    numeric = [c for c in features.columns if features[c].dtype.kind in "iuf"]
    binning = BinningProcess(
        variable_names=list(features.columns),
        binning_fit_params={c: {"monotonic_trend": MONOTONIC_TREND} for c in numeric},
    )
    scorecard = Scorecard(
        binning_process=binning,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={
            "pdo": PDO,
            "odds": ODDS,
            "scorecard_points": BASE_POINTS,
        },
        rounding=True,
    )
    return scorecard.fit(features, y)


def choose_cutoff(scores: np.ndarray, target: float = APPROVAL_TARGET) -> int:
    """Integer cutoff whose approval rate (score >= cutoff) is closest to target."""
    low, high = math.floor(scores.min()), math.ceil(scores.max()) + 1
    # ties go to the higher (stricter) cutoff
    return min(range(low, high + 1), key=lambda c: (abs(np.mean(scores >= c) - target), -c))


def feature_points(feature: Mapping[str, Any], value: Any) -> int:
    """Points of one feature for one value, per the model file contract."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return feature["missing_points"]
    if feature["kind"] == "numeric":
        # bin i holds edges[i-1] <= x < edges[i]
        return feature["points"][bisect.bisect_right(feature["edges"], float(value))]
    for group, points in zip(feature["categories"], feature["points"], strict=True):
        if str(value) in group:
            return points
    return feature["other_points"]


def apply_model(model: Mapping[str, Any], frame: pd.DataFrame) -> list[int]:
    """Score every row of frame by hand with the model dict (a plaintext oracle)."""
    scores = []
    for _, row in frame.iterrows():
        total = model["intercept"]
        for feature in model["features"]:
            total += feature_points(feature, row.get(feature["name"]))
        scores.append(total)
    return scores


def verify_scores(model: Mapping[str, Any], frame: pd.DataFrame, expected: np.ndarray) -> None:
    """Raise if the hand-applied model differs from optbinning's score on any row."""
    got = apply_model(model, frame)
    bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    if bad:
        i = bad[0]
        raise AssertionError(
            f"{len(bad)} of {len(got)} scores differ from Scorecard.score; "
            f"first at row {i}: model {got[i]} vs optbinning {expected[i]}"
        )


def owner_columns(model: Mapping[str, Any], owner: str) -> list[str]:
    """The owner's feature columns, in model order."""
    return [f["name"] for f in model["features"] if f["owner"] == owner]


def cell(value: Any) -> str:
    """CSV text of a value; empty for missing, integral numbers without '.0'."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def owner_rows(
    frame: pd.DataFrame, ids: Sequence[str], columns: Sequence[str], owner: str
) -> list[list[str]]:
    """Shuffled rows of one owner, with its absent applicants and empty cells."""
    rng = np.random.default_rng([SEED, PARTIES.index(owner)])
    absent, empty = GAPS[owner]
    order = rng.permutation(len(ids))
    order = order[absent:]  # the first `absent` of a random order are unknown
    rows = [[ids[i]] + [cell(frame.iloc[i][c]) for c in columns] for i in order]
    for flat in rng.choice(len(rows) * len(columns), size=empty, replace=False):
        r, c = divmod(int(flat), len(columns))
        rows[r][c + 1] = ""
    return rows


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render a CSV document with '\\n' line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def render_outputs(
    model: Mapping[str, Any], frame: pd.DataFrame, y: np.ndarray, ids: Sequence[str]
) -> dict[Path, str]:
    """All files the script writes: repo-relative path -> text."""
    outputs = {
        DEMO / "bank" / f"{MODEL_NAME}.json": json.dumps(model, indent=2) + "\n",
        DEMO / "bank" / "labels.csv": csv_text(
            ["applicant_id", "bad"], [[i, int(b)] for i, b in zip(ids, y, strict=True)]
        ),
    }
    for owner in PARTIES:
        columns = owner_columns(model, owner)
        rows = owner_rows(frame, ids, columns, owner)
        outputs[DEMO / owner / "applicants.csv"] = csv_text(["applicant_id", *columns], rows)
    return outputs


def stale_files(outputs: Mapping[Path, str], root: Path) -> list[Path]:
    """Paths whose file under root is missing or differs from the rendered text."""
    stale = []
    for path, text in outputs.items():
        target = root / path
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale


def write_outputs(outputs: Mapping[Path, str], root: Path) -> None:
    """Write every output file under root."""
    for path, text in outputs.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="")


def summary(model: Mapping[str, Any], scores: np.ndarray, y: np.ndarray) -> str:
    """Short human-readable summary."""
    from sklearn.metrics import roc_auc_score

    lines = [f"model {model['name']}: {len(model['features'])} features"]
    for owner in PARTIES:
        columns = owner_columns(model, owner)
        lines.append(f"  {owner} ({len(columns)}): {', '.join(columns)}")
    approved = float(np.mean(scores >= model["cutoff"]))
    auc = roc_auc_score(y, -scores)  # higher score = better risk; event = bad
    lines.append(f"cutoff {model['cutoff']}: approves {approved:.1%} of {len(scores)}")
    lines.append(f"training AUC {auc:.4f}; score range {scores.min():.0f}..{scores.max():.0f}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="germancredit.csv")
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="re-fit and verify the files on disk are up to date; write nothing",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Fit, verify, then write (or check) the demo files; return the exit code."""
    args = parse_args(argv)
    frame, y, ids = load_data(args.data)
    scorecard = fit_scorecard(frame, y)
    scores = scorecard.score(frame)
    model = build_model(scorecard, choose_cutoff(scores))
    verify_scores(model, frame, scores)
    outputs = render_outputs(model, frame, y, ids)
    print(summary(model, scores, y))
    print(f"hand-applied model == Scorecard.score for all {len(scores)} applicants")
    if args.check_only:
        stale = stale_files(outputs, REPO_ROOT)
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        print("check: " + ("FAILED" if stale else "files are up to date"))
        return 1 if stale else 0
    write_outputs(outputs, REPO_ROOT)
    print("wrote " + ", ".join(str(p) for p in outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
