"""Reason codes and statements: in the model file (validated, in every part, under the
digest, absent in older files) and in the reason table a lender writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mpc_credit.errors import DataError, ModelError
from mpc_credit.scorecard.model import from_dict, load_model, to_dict
from mpc_credit.scorecard.reason_table import apply_reasons, load_reason_table
from mpc_credit.scorecard.reasons import Reason
from mpc_credit.scorecard.reveal import Result, result_fields, result_from_fields
from tests.conftest import MODEL, PARTIES

TABLE = PARTIES / "bank" / "reasons.csv"


def _model_with(reason: object, feature: int = 1) -> dict:
    d = json.loads(MODEL.read_text())
    d["features"][feature]["reason"] = reason
    return d


def test_an_old_model_loads_with_names_as_codes_and_keeps_its_digest():
    model = load_model(MODEL)
    assert all(r == Reason(f.name, f.name) for f, r in zip(model.features, model.reasons()))
    assert "reason" not in json.dumps(to_dict(model))
    assert model.digest() == from_dict(to_dict(model)).digest()


def test_statements_travel_in_every_part_and_the_digest_covers_them():
    data, warnings = apply_reasons(json.loads(MODEL.read_text()), load_reason_table(TABLE))
    assert warnings == []
    model = from_dict(data)
    assert model.reasons()[1] == Reason("R02", "Duration of credit too long")
    assert model.digest() != load_model(MODEL).digest()
    for owner in model.owners:
        for mode in ("shared", "secret"):
            part = from_dict(to_dict(model.split(owner, mode)))  # type: ignore[arg-type]
            assert part.reasons() == model.reasons()
            assert part.digest() == model.digest()


@pytest.mark.parametrize(
    ("reason", "where", "why"),
    [
        ({"code": "R 1", "statement": "x"}, "reason.code", "letters, digits"),
        ({"code": "R" * 17, "statement": "x"}, "reason.code", "1 to 16"),
        ({"code": "R1", "statement": "a\nb"}, "reason.statement", "single line"),
        ({"code": "R1", "statement": "x" * 201}, "reason.statement", "at most 200"),
        ({"code": "R1", "statement": ""}, "reason.statement", "non-empty"),
        ({"code": "R1"}, "reason", "exactly"),
        ("R1", "reason", "exactly"),
    ],
)
def test_a_bad_reason_names_the_file_and_the_feature(reason, where, why):
    with pytest.raises(ModelError) as exc:
        from_dict(_model_with(reason), source="m.json")
    msg = str(exc.value)
    assert msg.startswith("m.json: features[1] (duration_in_month).") and where in msg
    assert why in msg


def test_two_features_with_one_code_are_refused():
    d = _model_with({"code": "R1", "statement": "a"})
    d["features"][3]["reason"] = {"code": "R1", "statement": "b"}
    with pytest.raises(ModelError, match=r"m.json: features\[3\] \(purpose\): reason code 'R1' "):
        from_dict(d, source="m.json")


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reasons.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feature,code\nx,R1\n", "line 1: missing column(s) 'statement'"),
        ("feature,code,statement,bin\n", "line 1, column 4 'bin': per-bin statements are not"),
        ("feature,code,statement,note\n", "line 1, column 4 'note': unknown column"),
        ("feature,code,statement\nx,R 1,too long\n", "line 2, column 'code': must be 1 to 16"),
        ("feature,code,statement\n\nx,R1,\n", "line 3, column 'statement': must be a non-empty"),
        ("feature,code,statement\nx,R1,a\ny,R1,b\n", "line 3, column 'code': 'R1' is also"),
        ("feature,code,statement\nx,R1,a\nx,R2,b\n", "line 3, column 'feature': 'x' is also on"),
        ("feature,code,statement\n,R1,a\n", "line 2, column 'feature': empty feature name"),
        ("feature,code,statement\nx,R1\n", "line 2: 2 fields, the header has 3"),
        ("feature,code,statement\n", "no rows after the header"),
        ("", "empty file, expected a header starting with 'feature'"),
    ],
)
def test_reason_table_errors_name_file_line_and_column(tmp_path, text, message):
    path = _table(tmp_path, text)
    with pytest.raises(DataError) as exc:
        load_reason_table(path)
    assert str(exc.value).startswith(f"{path}") and message in str(exc.value)


def test_columns_in_any_order_and_a_statement_with_a_comma(tmp_path):
    path = _table(tmp_path, 'statement,feature,code\n"Too long, by far",duration_in_month,R2\n')
    assert load_reason_table(path).reasons == {
        "duration_in_month": Reason("R2", "Too long, by far")
    }


def test_unused_rows_and_uncovered_features_are_one_line_warnings(tmp_path):
    path = _table(tmp_path, "feature,code,statement\nduration_in_month,R2,a\nnot_a_feature,R9,b\n")
    data, warnings = apply_reasons(json.loads(MODEL.read_text()), load_reason_table(path))
    assert len(warnings) == 2
    assert "does not use, ignored: not_a_feature" in warnings[0]
    assert "no row for" in warnings[1] and "credit_amount" in warnings[1]
    assert from_dict(data).reasons()[1] == Reason("R2", "a")


def test_a_result_keeps_its_statements_across_the_daemons_socket():
    model = from_dict(apply_reasons(json.loads(MODEL.read_text()), load_reason_table(TABLE))[0])
    values = np.array([[0, 2, 7, 0, 0], [1, 0, 0, 0, 0]])
    names = tuple(f.name for f in model.features)
    sent = Result("reasons", ("A1", "A2"), values, names, model.scaling, model.reasons())
    fields = json.loads(json.dumps(result_fields(sent)))
    got = result_from_fields(fields, ["A1", "A2"])
    assert got.rows() == sent.rows()
    assert got.rows()[0][:6] == [
        "A1", "decline", "R02", "Duration of credit too long",
        "R07", "Length of employment too short",
    ]  # fmt: skip
    older = {k: v for k, v in fields.items() if k != "reasons"}  # a daemon before statements
    assert result_from_fields(older, ["A1", "A2"]).rows()[0][2:4] == [names[1], names[1]]
    with pytest.raises(ValueError, match="a code and a statement per feature"):
        result_from_fields({**fields, "reasons": [["R1", "x"]]}, ["A1", "A2"])
