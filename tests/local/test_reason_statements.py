"""Reason statements exact against the model for every declined applicant of the demo, in
both modes: the MPC opens which features are the top reasons, the receiver maps them to the
model's codes and statements; the plaintext reference here ranks the points itself."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mpc_credit.local.simulate import Simulation, simulate
from mpc_credit.scorecard.data import load_owner_csv
from mpc_credit.scorecard.model import load_model
from mpc_credit.scorecard.reason_table import apply_reasons, load_reason_table
from mpc_credit.scorecard.reference import points_matrix
from tests.conftest import MODEL, PARTIES


def _statements() -> dict[str, tuple[str, str]]:
    """The demo's reason table, read with the csv module alone."""
    with (PARTIES / "bank" / "reasons.csv").open(newline="") as fh:
        return {r["feature"]: (r["code"], r["statement"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def model_with_reasons(tmp_path_factory) -> Path:
    data, _ = apply_reasons(
        json.loads(MODEL.read_text()), load_reason_table(PARTIES / "bank" / "reasons.csv")
    )
    path = tmp_path_factory.mktemp("model") / "model.json"
    path.write_text(json.dumps(data))
    return path


def _plaintext(model_path: Path, data: dict[str, Path]) -> dict[str, list[str]]:
    """Each applicant's decision and up to 4 (code, statement) pairs, costliest first."""
    model = load_model(model_path)
    tables = {o: load_owner_csv(p, model, o) for o, p in data.items()}
    ids = list(tables["bank"].ids)
    pts = points_matrix(model, tables, ids)
    best = np.array([f.bin_points.max() for f in model.features])  # type: ignore[union-attr]
    said = _statements()
    out = {}
    for aid, row in zip(ids, pts):
        if (model.intercept or 0) + int(row.sum()) >= model.cutoff:
            out[aid] = ["approve"] + [""] * 8
            continue
        cost = best - row
        top = sorted((f for f in range(len(row)) if cost[f] > 0), key=lambda f: (-cost[f], f))
        cells = [c for f in top[:4] for c in said[model.features[f].name]]
        out[aid] = ["decline", *cells, *[""] * (8 - len(cells))]
    return out


@pytest.mark.parametrize("mode", ["shared", "secret"])
def test_every_declined_applicant_gets_the_models_statements(
    tmp_path, demo_data, model_with_reasons, mode
):
    out = tmp_path / "reasons.csv"
    sim = Simulation(
        model_with_reasons, demo_data, receiver="bank", reveal="reasons", out=out, mode=mode
    )
    assert simulate(sim).received == {"bank": True, "bureau": False, "telco": False}
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["applicant_id", "decision"] + [
        f"reason_{i}_{x}" for i in range(1, 5) for x in ("code", "text")
    ]
    got = {r[0]: r[1:] for r in rows[1:]}
    want = _plaintext(model_with_reasons, demo_data)
    declined = [a for a, r in want.items() if r[0] == "decline"]
    assert len(declined) > 100 and got == want
    assert all(got[a][1].startswith("R") and got[a][2] for a in declined)
