"""`simulate` end to end: one OS process per institution, mutual TLS, real files.

The MPC result must equal the plaintext reference exactly, for all 1000 German credit
applicants (each owner's rows in its own order, 30 applicants absent at the telco),
in both modes and for every reveal policy; only the receiver learns anything.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
from pathlib import Path

import pytest

from mpc_credit.errors import SessionError
from mpc_credit.local.simulate import Simulation, run_simulation, simulate
from mpc_credit.scorecard.data import load_owner_csv
from mpc_credit.scorecard.model import load_model
from mpc_credit.scorecard.reference import reference
from mpc_credit.scorecard.reveal import columns
from mpc_credit.vocabulary import REVEALS
from tests.conftest import MODEL, OWNERS


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def expected(data: dict[str, Path], ids: list[str] | None, reveal: str) -> list[list[str]]:
    model = load_model(MODEL)
    tables = {o: load_owner_csv(p, model, o) for o, p in data.items()}
    ids = list(tables["bank"].ids) if ids is None else ids
    result = reference(model, tables, ids, reveal)  # type: ignore[arg-type]
    return [["applicant_id", *columns(reveal)], *result.rows()]  # type: ignore[arg-type]


def test_demo_files_are_shuffled_and_incomplete(demo_data):
    model = load_model(MODEL)
    tables = {o: load_owner_csv(p, model, o) for o, p in demo_data.items()}
    assert len(tables["bank"].ids) == 1000
    assert tables["bank"].ids != tables["bureau"].ids  # a different row order per owner
    assert len(set(tables["bank"].ids) - set(tables["telco"].ids)) == 30


@pytest.mark.parametrize("mode", ["shared", "secret"])
@pytest.mark.parametrize("reveal", REVEALS)
def test_all_german_applicants_match_the_reference(tmp_path, demo_data, mode, reveal):
    out = tmp_path / "scores.csv"
    sim = Simulation(MODEL, demo_data, receiver="bank", reveal=reveal, out=out, mode=mode)
    outcome = simulate(sim)
    assert outcome.received == {"bank": True, "bureau": False, "telco": False}
    assert read_csv(out) == expected(demo_data, None, reveal)
    assert outcome.rows == 1000


def test_requested_ids_in_request_order_to_another_receiver(tmp_path, demo_data):
    ids = ["A0007", "A0500", "A0001", "A0999"]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    out = tmp_path / "out.csv"
    sim = Simulation(
        MODEL,
        demo_data,
        receiver="bureau",
        reveal="score",
        out=out,
        ids=tmp_path / "ids.txt",
        batch=3,
    )
    outcome = simulate(sim)
    assert outcome.received == {"bank": False, "bureau": True, "telco": False}
    assert read_csv(out) == expected(demo_data, ids, "score")


def test_secret_mode_with_the_model_owner_apart_from_the_receiver(tmp_path, demo_data):
    telco = load_owner_csv(demo_data["telco"], load_model(MODEL), "telco")
    ids = list(telco.ids[:5])
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    out = tmp_path / "out.csv"
    sim = Simulation(
        MODEL,
        demo_data,
        "telco",
        "reasons",
        out,
        ids=tmp_path / "ids.txt",
        mode="secret",
        model_owner="bank",
    )
    assert simulate(sim).received == {"bank": False, "bureau": False, "telco": True}
    assert read_csv(out) == expected(demo_data, ids, "reasons")


def test_a_helper_party_makes_two_owners_a_majority(tmp_path, demo_data):
    model = load_model(MODEL)
    merged = tmp_path / "two-owner.json"
    from mpc_credit.scorecard.model import Scorecard, dump_model

    feats = tuple(
        type(f)(**{**f.__dict__, "owner": "bank"}) if f.owner == "telco" else f
        for f in model.features
    )
    dump_model(Scorecard(model.name, model.scaling, model.intercept, model.cutoff, feats), merged)
    bank = load_owner_csv(demo_data["bank"], model, "bank")
    telco = load_owner_csv(demo_data["telco"], model, "telco")
    from mpc_credit.local.synthetic import write_owner_csv
    from mpc_credit.scorecard.data import OwnerTable

    cols = {
        **bank.columns,
        **{k: v for k, v in zip(telco.columns, telco.select(bank.ids).values())},
    }
    write_owner_csv(OwnerTable("bank", tmp_path, bank.ids, cols), tmp_path / "bank.csv")
    data = {"bank": tmp_path / "bank.csv", "bureau": demo_data["bureau"]}
    out = tmp_path / "out.csv"
    outcome = simulate(Simulation(merged, data, "bank", "score", out, helpers=("auditor",)))
    assert outcome.received == {"bank": True, "bureau": False, "auditor": False}
    assert read_csv(out) == expected(demo_data, None, "score")


def test_a_party_killed_mid_session_aborts_with_its_name_and_no_output(tmp_path, demo_data):
    out = tmp_path / "out.csv"
    sim = Simulation(MODEL, demo_data, receiver="bank", reveal="reasons", out=out, mode="secret")

    def kill_telco(pids: dict[str, int]) -> None:
        os.kill(pids["telco"], signal.SIGKILL)

    with pytest.raises(SessionError, match="telco"):
        asyncio.run(run_simulation(sim, on_started=kill_telco))
    assert not out.exists()
    assert [p for p in tmp_path.iterdir()] == []  # no staged partial file either


@pytest.mark.parametrize("mode", ["shared", "secret"])
def test_each_party_gets_only_its_own_csv_and_model_part(tmp_path, demo_data, mode):
    from mpc_credit.local.simulate import _write_specs
    from mpc_credit.local.worker import WorkerSpec

    model = load_model(MODEL)
    sim = Simulation(MODEL, demo_data, "bank", "score", tmp_path / "o.csv", mode=mode)
    specs = _write_specs(sim, model, list(OWNERS), ["A0001"], tmp_path, tmp_path / "staged")
    for path, owner in zip(specs, OWNERS):
        spec = WorkerSpec.loads(path.read_text())
        assert spec.data == str(demo_data[owner].resolve())
        part = load_model(spec.model)
        if mode == "secret" and owner == "bank":  # the model owner
            assert part.part is None and part.has_points
            continue
        assert part.part is not None and part.part.owner == owner
        for f in part.features:
            has_points = getattr(f, "points", None) is not None
            assert has_points == (mode == "shared" and f.owner == owner), f.name
        keys = sorted(p.name for p in (tmp_path / "tls" / f"party{spec.pid}" / ".config").iterdir())
        assert keys == ["mpyc_ca.crt", f"party_{spec.pid}.crt", f"party_{spec.pid}.key"]


def test_output_to_a_folder_is_refused(tmp_path, demo_data):
    from mpc_credit.errors import UsageError

    with pytest.raises(UsageError, match="is a folder"):
        simulate(Simulation(MODEL, demo_data, "bank", "score", tmp_path))
