"""An owner's CSV against the model: its own features are read and checked, any other column
is ignored (never parsed) and named in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpc_credit.errors import DataError
from mpc_credit.scorecard.data import NOTE_COLUMNS, ignored_note, load_owner_csv
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL, PARTIES


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def bureau_with(folder: Path, columns: dict[str, str], *, first: bool = False) -> Path:
    """The bureau's demo CSV with `columns` (name: value on every row) added at the end, or
    right after applicant_id with `first`."""
    lines = (PARTIES / "bureau" / "applicants.csv").read_text().splitlines()
    names, values = ",".join(columns), ",".join(columns.values())
    out = []
    for k, line in enumerate(lines):
        aid, rest = line.split(",", 1)
        more = names if k == 0 else values
        out.append(f"{aid},{more},{rest}" if first else f"{line},{more}")
    path = folder / "bureau.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def test_extra_columns_are_ignored_anywhere_in_the_header(tmp_path, model):
    plain = load_owner_csv(PARTIES / "bureau" / "applicants.csv", model, "bureau")
    assert plain.ignored == () and ignored_note(plain, model) is None
    extra = {"branch": "[bold]x[/bold]", "income": "not a number", "purpose": "car"}
    for first in (False, True):
        table = load_owner_csv(bureau_with(tmp_path, extra, first=first), model, "bureau")
        assert table.ignored == ("branch", "income", "purpose")
        assert list(table.columns) == list(plain.columns)  # the model's columns only
        assert table.ids == plain.ids
        for name, col in plain.columns.items():
            assert np.array_equal(table.columns[name], col, equal_nan=col.dtype != object)


def test_the_note_names_the_file_and_the_columns_in_one_line(tmp_path, model):
    path = bureau_with(tmp_path, {"branch": "1", "purpose": "car"})
    note = ignored_note(load_owner_csv(path, model, "bureau"), model)
    assert note == (
        f"{path}: 2 columns not used by model 'german-credit-demo' from bureau, ignored: "
        "'branch', 'purpose' (bank's feature)"
    )
    many = {f"c{i}": "1" for i in range(NOTE_COLUMNS + 5)}
    note = ignored_note(load_owner_csv(bureau_with(tmp_path, many), model, "bureau"), model)
    assert note is not None and "\n" not in note
    assert f"{NOTE_COLUMNS + 5} columns" in note and note.endswith("and 5 more")


def test_the_owners_own_columns_are_still_checked(tmp_path, model):
    feature = next(f.name for f in model.features_of("bureau"))
    with pytest.raises(DataError, match=rf"column \d+ '{feature}': duplicate column"):
        load_owner_csv(bureau_with(tmp_path, {feature: "1"}), model, "bureau")
    lines = (PARTIES / "bureau" / "applicants.csv").read_text().splitlines()
    header = lines[0].replace(feature, "renamed")
    (tmp_path / "renamed.csv").write_text("\n".join([header, *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=rf"line 1: missing column\(s\) '{feature}'"):
        load_owner_csv(tmp_path / "renamed.csv", model, "bureau")
