"""Consortium setup (`pki init`), party configuration, signed requests and their checks."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from mpc_credit.consortium.broker import mosquitto_acl, mosquitto_conf
from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.create import PartyPlan, init_consortium, parse_party_arg
from mpc_credit.consortium.messages import ids_digest, new_request
from mpc_credit.consortium.policy import NonceCache, check_request
from mpc_credit.consortium.signing import load_signing_key, sign, verify
from mpc_credit.errors import UsageError
from mpc_credit.local.consortium import daemon_argv
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL
from tests.mosquitto import HARDENED


@pytest.fixture(scope="module")
def cons_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("c")
    init_consortium(out, MODEL, reveals=("score", "decision"), requesters=("bank",))
    return out


def test_pki_init_layout_and_modes(cons_dir: Path) -> None:
    cons = load_consortium(cons_dir / "consortium.json")
    assert cons.names == ("bank", "bureau", "telco")
    text = (cons_dir / "consortium.json").read_text()
    assert "PRIVATE" not in text and "BEGIN" not in text
    for p in cons.parties:
        folder = cons_dir / p.name
        crt = x509.load_pem_x509_certificate(
            (folder / ".config" / f"party_{p.pid}.crt").read_bytes()
        )
        assert crt.subject.rfc4514_string() == f"CN=MPyC party {p.pid}"
        assert (folder / ".config" / "mpyc_ca.crt").exists()
        for key in (
            folder / ".config" / f"party_{p.pid}.key",
            folder / "signing.key",
            folder / "mqtt" / "client.key",
        ):
            assert key.stat().st_mode & 0o777 == 0o600, key
        cfg = load_party_config(folder / "party.toml")
        assert (
            cfg.party == p.name and cfg.consortium_file == (cons_dir / "consortium.json").resolve()
        )
        assert cfg.mpc_port == p.mpc_port and cfg.signing_key.exists()
        # each party's model files: the owner the full model, the others their parts
        for mode, path in cfg.models["german-credit-demo"].items():
            m = load_model(path)
            assert m.digest() == cons.models[0].digest
            assert (m.part is None) == (p.name == "bank")
            if m.part is not None:
                assert m.part.mode == mode
        assert not (folder / ".config" / "mpc.key").exists()  # installed as party_{pid}.key
        for sub in (folder, folder / ".config", folder / "mqtt"):
            assert sub.stat().st_mode & 0o777 == 0o700, sub
    for key in (cons_dir / "ca").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
    assert (cons_dir / "ca").stat().st_mode & 0o777 == 0o700


def test_pki_init_refuses_to_overwrite(cons_dir: Path) -> None:
    with pytest.raises(UsageError, match="already set up"):
        init_consortium(cons_dir, MODEL)


def test_pki_init_checks_parties(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least 3"):
        init_consortium(tmp_path, MODEL, parties=[PartyPlan("bank"), PartyPlan("bureau")])
    with pytest.raises(UsageError, match="telco"):
        init_consortium(tmp_path, MODEL, parties=[PartyPlan(n) for n in ("bank", "bureau", "x")])
    assert parse_party_arg("bank=10.0.0.1:9000") == PartyPlan("bank", "10.0.0.1", 9000)
    assert parse_party_arg("bank=mpc.bank.example") == PartyPlan("bank", "mpc.bank.example")


def test_pki_init_from_the_cli(tmp_path: Path) -> None:
    from mpc_credit.cli.app import main

    assert (
        main(
            [
                "pki",
                "init",
                "--out",
                str(tmp_path),
                "--model",
                str(MODEL),
                "--party",
                "bank",
                "--party",
                "bureau",
                "--party",
                "telco",
                "--party",
                "helper",
            ]
        )
        == 0
    )
    cons = load_consortium(tmp_path / "consortium.json")
    assert cons.names[-1] == "helper"
    helper = load_model(
        load_party_config(tmp_path / "helper" / "party.toml").models["german-credit-demo"]["shared"]
    )
    assert helper.part is not None and not helper.features_of("helper")


def test_signatures(cons_dir: Path) -> None:
    key = load_signing_key(cons_dir / "bank" / "signing.key")
    cons = load_consortium(cons_dir / "consortium.json")
    msg = sign("label", {"a": 1, "b": [1, 2]}, key)
    assert verify("label", msg, cons.party("bank").public_key)
    assert not verify("other", msg, cons.party("bank").public_key)
    assert not verify("label", {**msg, "a": 2}, cons.party("bank").public_key)
    assert not verify("label", msg, cons.party("bureau").public_key)
    (cons_dir / "loose.key").write_bytes((cons_dir / "bank" / "signing.key").read_bytes())
    (cons_dir / "loose.key").chmod(0o644)
    with pytest.raises(UsageError, match="readable by others"):
        load_signing_key(cons_dir / "loose.key")


def _req(cons_dir: Path, signer: str = "bank", **kw):  # type: ignore[no-untyped-def]
    cons = load_consortium(cons_dir / "consortium.json")
    args = dict(
        requester=signer,
        model_id="german-credit-demo",
        model_digest=cons.models[0].digest,
        mode="shared",
        reveal="score",
        ids=["A0191"],
        timeout=30.0,
    )
    args.update(kw)
    return new_request(load_signing_key(cons_dir / signer / "signing.key"), **args)


def test_check_request_rules(cons_dir: Path) -> None:
    from mpc_credit.consortium.messages import Request

    cons = load_consortium(cons_dir / "consortium.json")
    model = load_model(MODEL)
    models = {("german-credit-demo", "shared"): model}
    nonces = NonceCache(cons.policy.timestamp_window)
    ok = _req(cons_dir)
    assert check_request(ok, cons, models, nonces) is None
    nonces.add(ok.nonce, ok.ts)
    assert "nonce" in check_request(ok, cons, models, nonces)  # type: ignore[operator]
    cases = {
        "bad signature": Request.from_dict({**_req(cons_dir).body(), "reveal": "decision"}),
        "to request scores": _req(cons_dir, signer="bureau"),
        "reveal policy 'reasons'": _req(cons_dir, reveal="reasons"),
        "off this party's clock": _req(cons_dir, now=time.time() + 500),
        "deadline has passed": _req(cons_dir, timeout=-1),
        "another digest": _req(cons_dir, model_digest="ab" * 32),
        "no secret-mode model": _req(cons_dir, mode="secret"),
    }
    for why, req in cases.items():
        assert why in (check_request(req, cons, models, nonces) or ""), why
    forged = sign(
        "mpc-credit/request@1",
        {**_req(cons_dir).body(), "requester": "eve"},
        load_signing_key(cons_dir / "bank" / "signing.key"),
    )
    assert "unknown requester" in check_request(Request.from_dict(forged), cons, models, nonces)  # type: ignore[operator]


def test_batch_requests_carry_a_digest(cons_dir: Path) -> None:
    ids = [f"X{i}" for i in range(500)]
    req = _req(cons_dir, ids=ids)
    assert req.ids is None and req.count == 500 and req.batch_digest == ids_digest(ids)
    assert "X1" not in json.dumps(req.body())


def test_mosquitto_files(cons_dir: Path) -> None:
    cons = load_consortium(cons_dir / "consortium.json")
    acl = mosquitto_acl(cons)
    assert "user bank\n" in acl and "topic write mpc-credit/demo/session/+/bank" in acl
    bureau = acl.split("user bureau")[1].split("user telco")[0]
    assert "topic write mpc-credit/demo/request" not in bureau  # only requesters may ask
    conf = mosquitto_conf(cons, acl_file="/etc/acl", cafile="ca", certfile="c", keyfile="k")
    for line in (
        *HARDENED,
        "allow_anonymous false",
        "acl_file /etc/acl",
        "listener 8883 0.0.0.0",
    ):
        assert line in conf.splitlines()
    assert not any(x.startswith("crlfile") for x in conf.splitlines())
    kw = dict(acl_file="/etc/acl", cafile="ca", certfile="c", keyfile="k")
    assert "crlfile /etc/crl.pem" in mosquitto_conf(cons, crlfile="/etc/crl.pem", **kw)
    assert not any(x.startswith("log_dest") for x in conf.splitlines())  # stderr: journald
    log = "/var/log/mpc-credit-broker.log"  # not a pipe nobody reads (docs/deployment.md)
    assert f"log_dest file {log}" in mosquitto_conf(cons, log_file=log, **kw).splitlines()
    with pytest.raises(UsageError, match="refusing to write acl_file"):
        mosquitto_conf(cons, **{**kw, "acl_file": "/etc/acl\nallow_anonymous true"})


def test_unsafe_party_names_are_refused(cons_dir: Path, tmp_path: Path) -> None:
    """A party name is read from consortium.json, party.toml, request files and flags;
    wherever it comes from, only a-z 0-9 _ - passes (a newline once made an ACL line)."""
    data = json.loads((cons_dir / "consortium.json").read_text())
    evil = "telco\ntopic readwrite #"
    data["parties"][2]["name"] = evil
    bad = tmp_path / "consortium.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(UsageError) as err:
        load_consortium(bad)
    assert str(err.value) == (
        f"{bad}: invalid consortium file: parties[2].name: 'telco\\ntopic readwrite #' is not "
        "allowed (a party name is a lowercase letter, then up to 31 of a-z 0-9 _ -)"
    )
    for field, value in [("topic_prefix", "mpc-credit/#"), ("name", "a\nb")]:
        bad.write_text(
            json.dumps({**json.loads((cons_dir / "consortium.json").read_text()), field: value})
        )
        with pytest.raises(UsageError, match=f"invalid consortium file: {field}: "):
            load_consortium(bad)

    # defence in depth: the ACL generator renders no unsafe name or prefix
    cons = load_consortium(cons_dir / "consortium.json")
    forged = replace(cons, parties=(*cons.parties[:2], replace(cons.parties[2], name=evil)))
    with pytest.raises(UsageError, match="unsafe party name"):
        mosquitto_acl(forged)
    with pytest.raises(UsageError, match="unsafe topic prefix"):
        mosquitto_acl(replace(cons, topic_prefix="mpc-credit/#"))

    toml = (cons_dir / "bank" / "party.toml").read_text()
    bad_toml = tmp_path / "party.toml"
    bad_toml.write_text(toml.replace('party = "bank"', 'party = "Bank"'))
    with pytest.raises(UsageError, match=f"{bad_toml}: party: 'Bank' is not allowed"):
        load_party_config(bad_toml)
    with pytest.raises(UsageError, match="--party: 'bank;rm' is not allowed"):
        parse_party_arg("bank;rm=10.0.0.1")
    with pytest.raises(UsageError, match="--requester: 'x/y' is not allowed"):
        init_consortium(tmp_path / "n", MODEL, requesters=["x/y"])


def test_party_config_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_party_config(tmp_path / "nope.toml")
    bad = tmp_path / "p.toml"
    bad.write_text('party = "bank"\n')
    with pytest.raises(UsageError, match="missing setting 'consortium'"):
        load_party_config(bad)


def test_daily_budget_counts_applicants_per_requester(cons_dir: Path) -> None:
    from dataclasses import replace

    from mpc_credit.consortium.policy import DAY, QueryLedger

    cons = load_consortium(cons_dir / "consortium.json")
    assert cons.policy.requesters["bank"].daily_budget is None  # pki init's default
    rule = replace(cons.policy.requesters["bank"], daily_budget=5)
    cons = replace(cons, policy=replace(cons.policy, requesters={"bank": rule}))
    models = {("german-credit-demo", "shared"): load_model(MODEL)}
    now = time.time()
    ledger = QueryLedger()
    ledger.add("bank", now - DAY - 10, 100)  # more than a day ago: no longer counts
    ledger.add("bank", now - 60, 4)

    def check(n: int) -> str | None:
        req = _req(cons_dir, ids=[f"A{i + 1:04d}" for i in range(n)])
        return check_request(req, cons, models, NonceCache(120), ledger=ledger)

    assert check(1) is None
    assert check(2) == (
        "'bank' has had 4 applicants scored in the last 24 hours; "
        "2 more exceed the daily budget of 5"
    )


def test_party_run_names_a_missing_data_file(tmp_path: Path) -> None:
    """pki init names each owner's CSV even before it is in place; the daemon says so."""
    import subprocess

    init_consortium(tmp_path, MODEL)
    config = load_party_config(tmp_path / "telco" / "party.toml")
    assert config.data == (tmp_path / "telco" / "applicants.csv").resolve()
    proc = subprocess.run(
        daemon_argv(tmp_path / "telco" / "party.toml"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mpc-credit: {config.data}: file not found"
