"""Reason tables: the CSV in which a lender gives a model's features their reason code and
adverse-action statement (`model import`, `train` and `model reasons` take it as --reasons).

    feature,code,statement
    duration_in_month,R02,Duration of credit too long

One row per feature, the columns in any order; the code a short token (letters, digits,
`-_.`, at most 16), the statement one line of printable text (at most 200 characters); no
feature or code twice. Errors name the file, the line (the header is line 1) and the column.
A row for a feature the model does not use is a warning, not an error: one table can serve
every model trained on the same institutions' data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.errors import DataError, ModelError
from mpc_credit.scorecard.data import read_csv_rows
from mpc_credit.scorecard.reasons import Reason, code_problem, statement_problem

COLUMNS = ("feature", "code", "statement")
NO_BINS = (
    "per-bin statements are not supported: the applicant's bin of another institution's "
    "feature stays secret (docs/scoring.md)"
)


@dataclass(frozen=True)
class ReasonTable:
    """A parsed reason table: feature name -> reason, in file order."""

    path: Path
    reasons: dict[str, Reason]


def load_reason_table(path: str | Path) -> ReasonTable:
    """Read and check a reason table; DataError naming the file, line and column."""
    path = Path(path)
    rows = read_csv_rows(path, "reason table", first=COLUMNS[0])
    where = _header(path, rows[0])
    reasons: dict[str, Reason] = {}
    lines: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            raise DataError(f"{path}, line {line}: {len(row)} fields, the header has 3")
        feature, code, statement = (row[where[c]] for c in COLUMNS)
        _check_row(path, line, feature, code, statement)
        _check_unique(path, line, feature, code, reasons, lines)
        reasons[feature] = Reason(code, statement)
        lines[feature] = line
    if not reasons:
        raise DataError(f"{path}: no rows after the header {','.join(COLUMNS)}")
    return ReasonTable(path, reasons)


def _header(path: Path, header: list[str]) -> dict[str, int]:
    """Column name -> index; exactly feature, code and statement, in any order."""
    names = [h.strip().lstrip("\ufeff") for h in header]
    for j, name in enumerate(names, start=1):
        if name == "bin":
            raise DataError(f"{path}, line 1, column {j} 'bin': {NO_BINS}")
        if name not in COLUMNS:
            raise DataError(
                f"{path}, line 1, column {j} {name!r}: unknown column, expected {','.join(COLUMNS)}"
            )
        if names.index(name) != j - 1:
            raise DataError(f"{path}, line 1, column {j} {name!r}: duplicate column")
    absent = [c for c in COLUMNS if c not in names]
    if absent:
        raise DataError(f"{path}, line 1: missing column(s) {', '.join(map(repr, absent))}")
    return {name: j for j, name in enumerate(names)}


def _check_row(path: Path, line: int, feature: str, code: str, statement: str) -> None:
    if not feature.strip():
        raise DataError(f"{path}, line {line}, column 'feature': empty feature name")
    for column, why in (("code", code_problem(code)), ("statement", statement_problem(statement))):
        if why is not None:
            raise DataError(f"{path}, line {line}, column {column!r}: {why}")


def _check_unique(
    path: Path,
    line: int,
    feature: str,
    code: str,
    reasons: dict[str, Reason],
    lines: dict[str, int],
) -> None:
    if feature in reasons:
        raise DataError(
            f"{path}, line {line}, column 'feature': {feature!r} is also on line {lines[feature]}"
        )
    for other, r in reasons.items():
        if r.code == code:
            raise DataError(
                f"{path}, line {line}, column 'code': {code!r} is also the code of {other!r} "
                f"(line {lines[other]})"
            )


def apply_reasons(model: dict[str, Any], table: ReasonTable) -> tuple[dict[str, Any], list[str]]:
    """A copy of a full model's dict with the table's reasons, and one-line warnings: the
    table's features the model does not use, the model's features the table leaves out."""
    if "part" in model:
        raise ModelError(
            f"model {model.get('name')!r} is the part of {model['part'].get('owner')!r}: "
            "reasons go into the full model (then split it again)"
        )
    out = copy.deepcopy(model)
    names = []
    for f in out.get("features") or []:
        name = f.get("name") if isinstance(f, dict) else None
        names.append(name)
        if name in table.reasons:
            f["reason"] = table.reasons[name].to_dict()
    return out, _warnings(table, model, names)


def _warnings(table: ReasonTable, model: dict[str, Any], names: list[Any]) -> list[str]:
    unused = [n for n in table.reasons if n not in names]
    left = [n for n in names if isinstance(n, str) and n not in table.reasons]
    which = f"model {model.get('name')!r}"
    out = []
    if unused:
        out.append(f"{table.path}: features {which} does not use, ignored: {', '.join(unused)}")
    if left:
        out.append(
            f"{table.path}: no row for {which}'s features {', '.join(left)} (each keeps "
            "the reason it had, or its name as code and statement)"
        )
    return out
