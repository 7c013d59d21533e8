"""The result as it crosses the control socket: typed values out of the daemon, the same
Result back at the requester, and nothing else accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mpc_credit.jsonwire import decode_object, encode
from mpc_credit.scorecard.data import load_owner_csv
from mpc_credit.scorecard.model import load_model
from mpc_credit.scorecard.reference import reference
from mpc_credit.scorecard.reveal import Result, result_fields, result_from_fields
from mpc_credit.vocabulary import REVEALS
from tests.conftest import MODEL, OWNERS, PARTIES

IDS = ["A0191", "A0922", "A0867", "A0405"]


def result(reveal: str) -> Result:
    model = load_model(MODEL)
    tables = {n: load_owner_csv(PARTIES / n / "applicants.csv", model, n) for n in OWNERS}
    return reference(model, tables, IDS, reveal)  # type: ignore[arg-type]


@pytest.mark.parametrize("reveal", REVEALS)
def test_a_result_survives_the_socket(reveal: str) -> None:
    sent = result(reveal)
    fields = decode_object(encode(result_fields(sent)))  # what the requester reads
    got = result_from_fields(fields, IDS)
    assert got.rows() == sent.rows() and got.header() == sent.header()
    assert got.values.tolist() == sent.values.tolist()
    records = got.records()
    assert [r["applicant_id"] for r in records] == IDS
    if reveal in ("score", "pd"):
        assert all(type(r["score"]) is int for r in records)
    if reveal == "pd":
        assert all(isinstance(r["pd"], float) and 0 < r["pd"] < 1 for r in records)
    if reveal == "reasons":
        assert any(r["decision"] == "decline" and r["reason_1_code"] for r in records)
    json.dumps(records)  # JSON as it is


def _edit(fields: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {**fields, **kw}


def test_anything_but_a_result_for_these_ids_is_refused() -> None:
    good = result_fields(result("reasons"))
    n_features = len(good["feature_names"])
    bad = {
        "reveal": _edit(good, reveal="everything"),
        "rows": _edit(good, values=good["values"][:-1]),
        "width": _edit(good, values=[r[:2] for r in good["values"]]),
        "bool": _edit(good, values=[[True, 0, 0, 0, 0]] * len(IDS)),
        "float": _edit(good, values=[[1.0, 0, 0, 0, 0]] * len(IDS)),
        "label": _edit(good, values=[[0, n_features + 1, 0, 0, 0]] * len(IDS)),
        "names": _edit(good, feature_names="duration"),
        "scaling": _edit(good, scaling={"pdo": 20, "odds": 50}),
    }
    for case, fields in bad.items():
        with pytest.raises(ValueError):
            result_from_fields(fields, IDS)
            pytest.fail(case)
