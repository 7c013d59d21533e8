"""Names never become paths unchecked: a model id, a training job's name, a label column, a
party name or an API client name with `../`, a separator, NUL or a drive letter is refused
through the real entry points (the command line in process, the broker's and the control
socket's decoders, party.toml and consortium.json), the refusal names the field, and nothing
is written outside the folder the command runs in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpc_credit.cli.app import main
from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.control import ControlRequest, parse_control
from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.messages import decode_request
from mpc_credit.consortium.train_request import TrainJob, decode_train_request, new_train_request
from mpc_credit.errors import UsageError
from mpc_credit.names import check_name, is_name, join
from tests.conftest import MODEL, OWNERS
from tests.consortium.members import members
from tests.consortium.test_messages import REQ_BYTES
from tests.local.train_inputs import train_args, write_inputs

HOSTILE = ["../x", "/etc/x", "a\x00b", "..\\x", "C:\\x", "a/b"]
M = members().with_policy(trainers=("bank",))


def _outside(root: Path, inner: Path) -> set[Path]:
    """Every path under `root` that is not under `inner`."""
    return {p for p in root.rglob("*") if inner not in (p, *p.parents)}


@pytest.fixture
def inner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder a command runs in, one level below tmp_path (so `../x` would land there)."""
    folder = tmp_path / "work" / "inner"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    return folder


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], field: str) -> None:
    assert main(argv) == 2, capsys.readouterr().err
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert field in err, err
    assert "\x00" not in err


def test_the_rule() -> None:
    for bad in [*HOSTILE, "", ".hidden", "..", "x" * 65, "a\nb", "a b", "a:b", "a\u202eb"]:
        assert not is_name(bad), bad
        with pytest.raises(UsageError, match=r"^--name: not a safe name"):
            check_name(bad, "--name")
    for good in ["joint", "german-credit-demo", "m1.v2", "A_b-9", "x" * 64]:
        assert check_name(good, "--name") == good
    assert is_name("ops@bank", at=True) and not is_name("ops@bank")
    with pytest.raises(UsageError, match="party name"):
        join(Path("/tmp"), "../x", ".json", "party name")


@pytest.mark.parametrize("bad", HOSTILE)
def test_train_refuses_hostile_names_before_writing(
    bad: str, inner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_inputs(inner)
    root = inner.parent.parent
    before = _outside(root, inner)
    args = train_args()
    refused(capsys, [*args[:6], bad, *args[7:]], "--name")  # the model's (job's) name
    refused(capsys, [*args[:2], f"bank:{bad}", *args[3:]], "--label")  # the label column
    data = {o: f"{o}.csv" for o in OWNERS} | {bad: "bank.csv"}
    refused(capsys, train_args(data=data), "--data")  # a party name: its folder, its ledger
    assert _outside(root, inner) == before
    assert not (inner / "model.json").exists() and not (inner / "ledgers").exists()


@pytest.mark.parametrize("bad", HOSTILE)
def test_pki_init_refuses_a_hostile_model_or_party_name(
    bad: str, inner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = inner.parent.parent
    model = json.loads(MODEL.read_text())
    model["name"] = bad
    (inner / "model.json").write_text(json.dumps(model))
    before = _outside(root, inner)
    refused(
        capsys, ["pki", "init", "--out", "parties", "--model", "model.json"], "name (the model's)"
    )
    assert not (inner / "parties").exists()
    argv = ["pki", "init", "--out", "parties", "--model", str(MODEL)]
    refused(capsys, [*argv, "--party", bad, "--party", "bureau", "--party", "telco"], "--party")
    assert _outside(root, inner) == before


@pytest.mark.parametrize("bad", HOSTILE)
def test_model_split_and_import_refuse_hostile_owner_and_model_names(
    bad: str, inner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = inner.parent.parent
    model = json.loads(MODEL.read_text())
    for f in model["features"]:
        f["owner"] = bad if f["owner"] == "telco" else f["owner"]
    (inner / "model.json").write_text(json.dumps(model))
    before = _outside(root, inner)
    refused(capsys, ["model", "split", "model.json", "--out-dir", "parts"], "owner")
    assert not (inner / "parts").exists()
    (inner / "owners.json").write_text("{}")
    argv = ["model", "import", "x.pkl", "--owners", "owners.json", "--name", bad]
    refused(capsys, [*argv, "--cutoff", "500", "--out", "m.json"], "--name")
    assert _outside(root, inner) == before


@pytest.mark.parametrize("bad", HOSTILE)
def test_serve_token_refuses_a_hostile_client_name(
    bad: str, inner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inner / "party.toml").write_text(
        'party = "bank"\nconsortium = "consortium.json"\nsigning_key = "signing.key"\n'
        "[mpc]\nport = 12100\n"
    )
    root = inner.parent.parent
    before = _outside(root, inner)
    argv = ["serve", "token", "--config", "party.toml", "--name", bad]
    refused(capsys, argv, "--name")
    assert not (inner / "serve-tokens.json").exists()
    assert _outside(root, inner) == before


@pytest.mark.parametrize("bad", HOSTILE)
def test_party_toml_and_consortium_json_refuse_hostile_model_ids(bad: str, tmp_path: Path) -> None:
    toml = tmp_path / "party.toml"
    toml.write_text(
        'party = "bank"\nconsortium = "consortium.json"\nsigning_key = "signing.key"\n'
        f'[mpc]\nport = 12100\n[models.{json.dumps(bad)}]\nshared = "m.json"\n'
    )
    with pytest.raises(UsageError, match="models"):
        load_party_config(toml)
    data = M.cons.to_dict()
    data["models"][0]["id"] = bad
    cfile = tmp_path / "consortium.json"
    cfile.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"models\[0\]\.id"):
        load_consortium(cfile)


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("field", ["name", "label"])
def test_broker_and_control_decoders_refuse_hostile_job_names(bad: str, field: str) -> None:
    job = TrainJob(name="joint", label="default", cutoff=520, epsilon=1.0)
    req = new_train_request(M.keys["bank"], requester="bank", job=job, timeout=60.0)
    body = json.loads(req.to_json())
    body["job"][field] = bad
    with pytest.raises(MessageError, match=f"field '{field}': not a safe name"):
        decode_train_request(json.dumps(body), M.cons)
    op = json.loads(ControlRequest("train", job=job, timeout=90.0).to_json())
    op["job"][field] = bad
    with pytest.raises(MessageError, match=f"field '{field}': not a safe name"):
        parse_control(json.dumps(op))


@pytest.mark.parametrize("bad", HOSTILE)
def test_broker_and_control_decoders_refuse_hostile_model_ids_and_parties(bad: str) -> None:
    body = json.loads(REQ_BYTES)
    body["model_id"] = bad
    with pytest.raises(MessageError, match="field 'model_id': not a safe name"):
        decode_request(json.dumps(body), M.cons)
    for key in ("requester", "receiver"):
        body = json.loads(REQ_BYTES)
        body[key] = bad
        with pytest.raises(MessageError, match=f"field '{key}'"):
            decode_request(json.dumps(body))  # no consortium at hand: the name's rule
    op = json.loads(ControlRequest("score", ids=("A1",), model_id="m", timeout=5.0).to_json())
    op["model_id"] = bad
    with pytest.raises(MessageError, match="field 'model_id': not a safe name"):
        parse_control(json.dumps(op))
