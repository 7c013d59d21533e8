"""Institution data: one owner's CSV of applicant features, and applicant id lists.

Each error names the file, the line and the column; a line number counts the header as 1.
A column that is not one of the owner's features in the model (an institution's applicant
file always has more) is ignored: never parsed, never used; the table lists it in `ignored`
and `ignored_note` says so in one line, which the caller prints once.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc_credit.errors import DataError
from mpc_credit.files import read_text
from mpc_credit.scorecard.model import (
    ID_COLUMN,
    CategoricalFeature,
    HiddenFeature,
    NumericFeature,
    Scorecard,
)

Column = np.ndarray  # float64 with NaN for numeric, object (str | None) for categorical
NOTE_COLUMNS = 30  # ignored columns named in the note, the rest counted


@dataclass(frozen=True)
class OwnerTable:
    """One owner's validated rows: ids in file order and one array per feature column."""

    owner: str
    path: Path
    ids: tuple[str, ...]
    columns: dict[str, Column]
    ignored: tuple[str, ...] = ()  # the header's columns that are not the owner's features

    def select(self, ids: Sequence[str]) -> dict[str, Column]:
        """Columns for `ids` in that order; an id this owner does not know reads as missing."""
        row = {a: i for i, a in enumerate(self.ids)}
        idx = np.fromiter((row.get(a, -1) for a in ids), dtype=np.int64, count=len(ids))
        known = idx >= 0
        out: dict[str, Column] = {}
        for name, col in self.columns.items():
            if col.dtype == object:
                sel = np.full(len(ids), None, dtype=object)
            else:
                sel = np.full(len(ids), np.nan)
            sel[known] = col[idx[known]]
            out[name] = sel
        return out


def load_owner_csv(path: str | Path, model: Scorecard, owner: str) -> OwnerTable:
    """Read `owner`'s CSV and check it against the model's features of that owner; the
    columns that are not among them are ignored (listed in the table's `ignored`)."""
    path = Path(path)
    feats = {f.name: f for f in model.features_of(owner)}
    rows = read_csv_rows(path)
    header = rows[0]
    _check_header(path, header, feats)
    ids, raw, lines = applicant_rows(path, rows, len(header))
    columns = {
        name: _parse_column(path, name, feats[name], [r[j] for r in raw], lines)
        for j, name in enumerate(header)
        if j > 0 and name in feats
    }
    ignored = tuple(dict.fromkeys(name for name in header[1:] if name not in feats))
    return OwnerTable(owner, path, tuple(ids), columns, ignored)


def ignored_note(table: OwnerTable, model: Scorecard) -> str | None:
    """One line naming the file and the columns it holds that the model does not use from its
    owner (None when there are none): for the caller to print once."""
    if not table.ignored:
        return None
    others = {f.name: f.owner for f in model.features if f.owner != table.owner}
    n = len(table.ignored)
    named = ", ".join(
        repr(name) + (f" ({others[name]}'s feature)" if name in others else "")
        for name in table.ignored[:NOTE_COLUMNS]
    )
    if n > NOTE_COLUMNS:
        named += f" and {n - NOTE_COLUMNS} more"
    return (
        f"{table.path}: {n} column{'s' if n > 1 else ''} not used by model "
        f"{model.name!r} from {table.owner}, ignored: {named}"
    )


def read_csv_rows(path: Path, what: str = "file", first: str = ID_COLUMN) -> list[list[str]]:
    """All rows of a CSV with a header (starting with column `first`); errors name the file."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from None
    if not rows or not rows[0]:
        raise DataError(f"{path}: empty file, expected a header starting with {first!r}")
    return rows


def applicant_rows(
    path: Path, rows: list[list[str]], width: int
) -> tuple[list[str], list[list[str]], list[int]]:
    """The data rows after the header: their applicant ids, the rows, and their line numbers.

    Blank lines are skipped; a row of another width, an empty id or an id seen before is an
    error naming the file, line and column.
    """
    ids: list[str] = []
    first_line: dict[str, int] = {}
    raw: list[list[str]] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != width:
            raise DataError(f"{path}, line {line}: {len(row)} fields, the header has {width}")
        aid = row[0].strip()
        if not aid:
            raise DataError(f"{path}, line {line}, column {ID_COLUMN!r}: empty applicant id")
        if aid in first_line:
            raise DataError(
                f"{path}, line {line}, column {ID_COLUMN!r}: duplicate applicant id {aid!r} "
                f"(first on line {first_line[aid]})"
            )
        first_line[aid] = line
        ids.append(aid)
        raw.append(row)
    return ids, raw, list(first_line.values())


def _check_header(path: Path, header: list[str], feats: dict[str, object]) -> None:
    """The id column first, each of the owner's features once; other columns are ignored."""
    if header[0].strip().lstrip("\ufeff") != ID_COLUMN:
        raise DataError(f"{path}, line 1: first column must be {ID_COLUMN!r}, not {header[0]!r}")
    for j, name in enumerate(header[1:], start=2):
        if name in feats and header.index(name) != j - 1:
            raise DataError(f"{path}, line 1, column {j} {name!r}: duplicate column")
    absent = [n for n in feats if n not in header]
    if absent:
        raise DataError(f"{path}, line 1: missing column(s) {', '.join(map(repr, absent))}")


def _parse_column(
    path: Path, name: str, feature: object, cells: list[str], lines: list[int]
) -> Column:
    if isinstance(feature, CategoricalFeature):
        return np.array([c if c.strip() else None for c in cells], dtype=object)
    assert isinstance(feature, NumericFeature | HiddenFeature)
    out = np.empty(len(cells))
    for k, cell in enumerate(cells):
        text = cell.strip()
        if not text:
            out[k] = np.nan
            continue
        try:
            out[k] = float(text)
        except ValueError:
            raise DataError(
                f"{path}, line {lines[k]}, column {name!r}: {cell!r} is not a number"
            ) from None
    return out


def load_ids(path: str | Path) -> list[str]:
    """Applicant ids, one per line; blank lines are skipped; duplicates are refused."""
    path = Path(path)
    text = read_text(path, "id list", DataError)
    ids: list[str] = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(text.splitlines(), start=1):
        aid = raw.strip()
        if not aid:
            continue
        if aid in seen:
            raise DataError(
                f"{path}, line {line}: applicant {aid!r} listed twice (line {seen[aid]})"
            )
        seen[aid] = line
        ids.append(aid)
    if not ids:
        raise DataError(f"{path}: no applicant ids")
    return ids


def check_known(ids: Sequence[str], table: OwnerTable, source: str) -> None:
    """Refuse ids the requesting owner's own file does not hold."""
    known = set(table.ids)
    for k, aid in enumerate(ids):
        if aid not in known:
            raise DataError(
                f"{source}: applicant {aid!r} (entry {k + 1}) "
                f"is not in {table.owner}'s file {table.path}"
            )
