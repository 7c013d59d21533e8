"""The model file: validation messages, binning per the contract, per-owner parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mpc_credit.errors import ModelError
from mpc_credit.scorecard.model import (
    CategoricalFeature,
    HiddenFeature,
    NumericFeature,
    dump_model,
    from_dict,
    load_model,
    to_dict,
)
from tests.conftest import MODEL

EXAMPLE = {
    "format": "mpc-credit/scorecard@1",
    "name": "german-credit-demo",
    "scaling": {"pdo": 20, "odds": 50, "base_points": 600},
    "intercept": 0,
    "cutoff": 520,
    "features": [
        {"name": "duration_in_month", "owner": "bank", "kind": "numeric",
         "edges": [11.5, 15.5, 24.5, 43.5], "points": [48, 40, 33, 25, 12], "missing_points": 30},
        {"name": "purpose", "owner": "bureau", "kind": "categorical",
         "categories": [["car (new)"], ["radio/television", "furniture/equipment"]],
         "points": [20, 35], "other_points": 27, "missing_points": 27},
    ],
}  # fmt: skip


def test_the_design_example_loads_and_round_trips():
    m = from_dict(EXAMPLE)
    assert to_dict(m) == EXAMPLE
    assert m.owners == ("bank", "bureau")
    assert m.score_range() == (12 + 20, 48 + 35)
    assert m.max_cost() == 36


def test_numeric_bins_are_left_closed_right_open_and_nan_is_missing():
    f = from_dict(EXAMPLE).features[0]
    assert isinstance(f, NumericFeature)
    x = np.array([-1e9, 11.4999, 11.5, 15.5, 24.4, 43.5, 1e9, np.nan])
    assert f.bin_points[f.bins(x)].tolist() == [48, 48, 40, 33, 33, 12, 12, 30]


def test_categories_other_and_missing():
    f = from_dict(EXAMPLE).features[1]
    assert isinstance(f, CategoricalFeature)
    x = np.array(["car (new)", "furniture/equipment", "boat", None], dtype=object)
    assert f.bin_points[f.bins(x)].tolist() == [20, 35, 27, 27]


def test_shared_part_keeps_only_the_owners_points():
    m = from_dict(EXAMPLE)
    part = m.split("bureau", "shared")
    d = to_dict(part)
    assert d["features"][0] == {
        "name": "duration_in_month",
        "owner": "bank",
        "kind": "hidden",
        "bins": 6,
    }
    assert d["features"][1] == EXAMPLE["features"][1]
    assert d["part"]["model_digest"] == m.digest()
    assert from_dict(d).digest() == m.digest()


def test_secret_part_holds_no_points_at_all():
    m = from_dict(EXAMPLE)
    text = json.dumps(to_dict(m.split("bank", "secret")))
    for value in ("48", "40", "33", "25", "35", "27"):
        assert f" {value}," not in text and f" {value}]" not in text and f"[{value}" not in text
    part = from_dict(json.loads(text))
    assert part.intercept is None and not part.has_points
    assert isinstance(part.features[1], HiddenFeature)


def test_digest_ignores_formatting(tmp_path: Path):
    (tmp_path / "a.json").write_text(json.dumps(EXAMPLE))
    (tmp_path / "b.json").write_text(json.dumps(EXAMPLE, indent=4, sort_keys=True))
    assert load_model(tmp_path / "a.json").digest() == load_model(tmp_path / "b.json").digest()


def bad(**changes: object) -> dict:
    d = json.loads(json.dumps(EXAMPLE))
    for path, value in changes.items():
        *head, last = path.split("__")
        target = d
        for key in head:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is KeyError:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return d


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bad(format="scorecard@2"), "format: must be 'mpc-credit/scorecard@1'"),
        (bad(name=KeyError), "name: is missing"),
        (bad(scaling__pdo=-1), "scaling.pdo: must be positive"),
        (bad(cutoff="520"), 'cutoff: must be an integer, not "520"'),
        (bad(features=[]), "features: must be a non-empty list"),
        (bad(features__0__kind="ordinal"), "features[0] (duration_in_month).kind"),
        (bad(features__0__edges=[11.5, 11.5, 24.5, 43.5]), "edges: must be strictly increasing"),
        (bad(features__0__points=[48, 40, 33, 25]), "has 4 entries but 4 edges need 5"),
        (
            bad(features__0__points=[48, 40, 33.5, 25, 12]),
            "points[2]: must be an integer, not 33.5",
        ),
        (bad(features__1__points=[20]), "has 1 entries but there are 2 category groups"),
        (bad(features__1__categories=[["a"], ["a", "b"]]), "category 'a' is in two groups"),
        (bad(features__1__other_points=KeyError), "(purpose).other_points: is missing"),
        (bad(features__1__name="duration_in_month"), "duplicate feature name"),
        (bad(features__1__name="applicant_id"), "reserved for the id column"),
        (bad(features__0__owner=""), "owner: must be a non-empty string"),
    ],
)
def test_validation_errors_name_the_field(data, message):
    with pytest.raises(ModelError) as exc:
        from_dict(data, source="m.json")
    assert str(exc.value).startswith("m.json: ")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_and_truncated_files(tmp_path: Path):
    with pytest.raises(ModelError, match=r"nope\.json: model file not found"):
        load_model(tmp_path / "nope.json")
    (tmp_path / "t.json").write_text(json.dumps(EXAMPLE)[:80])
    with pytest.raises(
        ModelError, match=r"t.json: not valid JSON at line 1 column 80: Unterminated string"
    ):
        load_model(tmp_path / "t.json")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args], cwd=cwd, capture_output=True, text=True
    )


def test_model_commands(tmp_path: Path):
    proc = cli("model", "validate", str(MODEL), cwd=tmp_path)
    assert proc.returncode == 0 and "ok, full model, 20 features" in proc.stdout
    assert load_model(MODEL).digest() in proc.stdout
    proc = cli("model", "show", str(MODEL), cwd=tmp_path)
    assert (
        proc.returncode == 0 and "duration_in_month" in proc.stdout and "(missing)" in proc.stdout
    )
    proc = cli("model", "split", str(MODEL), "--out-dir", "parts", "--mode", "secret", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    parts = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert parts == ["bank.secret.json", "bureau.secret.json", "telco.secret.json"]
    part = load_model(tmp_path / "parts" / "telco.secret.json")
    assert part.part is not None and part.part.owner == "telco" and not part.has_points
    proc = cli("model", "validate", "parts/telco.secret.json", cwd=tmp_path)
    assert "part of telco (secret mode)" in proc.stdout


def test_model_split_refuses_unknown_owner(tmp_path: Path):
    proc = cli("model", "split", str(MODEL), "--out-dir", "p", "--owner", "insurer", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"mpc-credit: {MODEL}: no feature is owned by 'insurer'"
    ]


def test_dump_then_load_is_identity(tmp_path: Path):
    m = load_model(MODEL)
    dump_model(m, tmp_path / "m.json")
    assert load_model(tmp_path / "m.json") == m
