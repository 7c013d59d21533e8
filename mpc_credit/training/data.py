"""An institution's training CSV: applicant ids, its candidate features, the label at the lender.

The file has a header; `applicant_id` first, then columns. At the lender one column is the label
(1 = bad, 0 = good), which is not a feature; every other column is a candidate feature of the
file's owner. A column whose every non-empty cell is a finite number is numeric, any other is
categorical (the cell text, as `simulate` reads it); an empty cell is missing. Each error names
the file, the line (the header is line 1) and the column.

After training, `write_columns` writes the owner's scoring CSV: the same cells of the columns the
model kept, so that `simulate` reads exactly the values the training saw.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mpc_credit.errors import DataError
from mpc_credit.scorecard.data import applicant_rows, read_csv_rows
from mpc_credit.scorecard.model import ID_COLUMN
from mpc_credit.training.bins import MIN_ROWS_PER_BIN
from mpc_credit.training.session import Table


@dataclass(frozen=True)
class TrainingData:
    """One owner's rows as read: ids, raw cells by column, each row's line in the file."""

    path: Path
    header: tuple[str, ...]  # without applicant_id
    ids: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]  # per row, in header order
    lines: tuple[int, ...]
    label: str | None = None

    @property
    def features(self) -> list[str]:
        return [c for c in self.header if c != self.label]

    def column(self, name: str) -> list[str]:
        j = self.header.index(name)
        return [row[j] for row in self.cells]

    def labels(self) -> np.ndarray | None:
        """The label column as int64 0/1, or None at a party without one."""
        if self.label is None:
            return None
        out = np.empty(len(self.ids), dtype=np.int64)
        for k, cell in enumerate(self.column(self.label)):
            if cell.strip() not in ("0", "1"):
                raise DataError(
                    f"{self.path}, line {self.lines[k]}, column {self.label!r}: label {cell!r} "
                    "is not 0 (good) or 1 (bad)"
                )
            out[k] = int(cell.strip())
        return out

    def without(self, ids: Sequence[str], source: str) -> TrainingData:
        """These rows less the applicants `ids` (the holdout), each of which must be here."""
        row = {a: k for k, a in enumerate(self.ids)}
        for k, aid in enumerate(ids):
            if aid not in row:
                raise DataError(
                    f"{source}: applicant {aid!r} (entry {k + 1}) is not in {self.path}"
                )
        drop = {row[a] for a in ids}
        keep = [k for k in range(len(self.ids)) if k not in drop]
        if not keep:
            raise DataError(f"{source}: holds every applicant of {self.path}; none left to train")
        return replace(
            self,
            ids=tuple(self.ids[k] for k in keep),
            cells=tuple(self.cells[k] for k in keep),
            lines=tuple(self.lines[k] for k in keep),
        )

    def rows_of(self, ids: Sequence[str]) -> TrainingData:
        """Only the rows of `ids` (each here), in that order."""
        row = {a: k for k, a in enumerate(self.ids)}
        keep = [row[a] for a in ids]
        return replace(
            self,
            ids=tuple(ids),
            cells=tuple(self.cells[k] for k in keep),
            lines=tuple(self.lines[k] for k in keep),
        )

    def table(self, bins: int, exclude: Sequence[str] = ()) -> Table:
        """The session's table: typed candidate columns (checked) and the labels; the
        `exclude`d columns are neither checked nor taken (they never leave the file)."""
        names = [name for name in self.features if name not in exclude]
        columns = {name: self._feature(name, bins) for name in names}
        return Table(list(self.ids), columns, self.labels())

    def _feature(self, name: str, bins: int) -> np.ndarray:
        cells = self.column(name)
        known = [(k, c.strip()) for k, c in enumerate(cells) if c.strip()]
        where = f"{self.path}, column {name!r}"
        if len({c for _, c in known}) < 2:
            what = f"the single value {known[0][1]!r}" if known else "no value"
            raise DataError(f"{where}: has {what} in every row; it cannot separate good from bad")
        if len(known) < MIN_ROWS_PER_BIN * bins:
            raise DataError(
                f"{where}: {len(known)} known values are too few for {bins} bins "
                f"(at least {MIN_ROWS_PER_BIN * bins}: give fewer --bins)"
            )
        numbers = [_number(c) for _, c in known]
        if any(x is None for x in numbers):
            return np.array([c if c.strip() else None for c in cells], dtype=object)
        for (k, c), x in zip(known, numbers):
            if not math.isfinite(x):  # type: ignore[arg-type]
                raise DataError(
                    f"{self.path}, line {self.lines[k]}, column {name!r}: "
                    f"{c!r} is not a finite number"
                )
        out = np.full(len(cells), np.nan)
        out[[k for k, _ in known]] = numbers
        return out

    def write_columns(self, path: Path, columns: Sequence[str]) -> None:
        """applicant_id and `columns` of every row, the cells as read."""
        index = [self.header.index(c) for c in columns]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([ID_COLUMN, *columns])
        writer.writerows([aid, *(row[j] for j in index)] for aid, row in zip(self.ids, self.cells))
        path.write_text(buffer.getvalue(), encoding="utf-8")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_training_csv(path: str | Path, label: str | None = None) -> TrainingData:
    """Read and check one owner's training CSV; `label` names the lender's label column."""
    path = Path(path)
    rows = read_csv_rows(path, "training data")
    header = _header(path, rows[0], label)
    ids, raw, lines = applicant_rows(path, rows, len(header) + 1)
    cells = [tuple(row[1:]) for row in raw]
    if not ids:
        raise DataError(f"{path}: no applicants (the file has a header only)")
    return TrainingData(path, header, tuple(ids), tuple(cells), tuple(lines), label)


def training_table(
    path: str | Path,
    label: str | None,
    bins: int,
    holdout: Sequence[str] | None = None,
    source: str = "",
    exclude: Sequence[str] = (),
) -> tuple[TrainingData, Table]:
    """A party's preparation for a run: all its rows as read, and its checked training table
    (the lender's, with `label`, less the `holdout` ids listed in `source`, without the
    `exclude`d columns)."""
    data = read_training_csv(path, label)
    rows = data if holdout is None else data.without(holdout, source)
    return data, rows.table(bins, exclude)


def read_header(path: str | Path) -> tuple[str, ...]:
    """The column names after applicant_id (the public schema), reading the first line only."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            first = next(csv.reader(fh), [])
    except FileNotFoundError:
        raise DataError(f"{path}: training data not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from None
    if not first:
        raise DataError(f"{path}: empty file, expected a header starting with {ID_COLUMN!r}")
    return _header(path, first, None)


def _header(path: Path, header: list[str], label: str | None) -> tuple[str, ...]:
    if header[0].strip().lstrip("\ufeff") != ID_COLUMN:
        raise DataError(f"{path}, line 1: first column must be {ID_COLUMN!r}, not {header[0]!r}")
    names = tuple(header[1:])
    for j, name in enumerate(names, start=2):
        if not name.strip():
            raise DataError(f"{path}, line 1, column {j}: empty column name")
        if names.index(name) != j - 2 or name == ID_COLUMN:
            raise DataError(f"{path}, line 1, column {j} {name!r}: duplicate column")
    if label is not None and label not in names:
        raise DataError(
            f"{path}, line 1: no label column {label!r} (columns: {', '.join(names) or 'none'})"
        )
    return names
