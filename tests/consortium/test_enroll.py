"""Enrollment in which no private key leaves its institution: pki request at each party,
pki sign at the operator, pki install back at each party; revocation; key file modes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from mpc_credit.cli.app import main
from mpc_credit.consortium import pki
from mpc_credit.consortium.config import check_private_files, load_party_config
from mpc_credit.consortium.create import init_consortium, sign_consortium
from mpc_credit.consortium.enroll import (
    install_bundle,
    load_request,
    request_party,
    write_request,
)
from mpc_credit.consortium.requester import score_request
from mpc_credit.consortium.revoke import MPC_CRL, MQTT_CRL, PARTY_CRL, revoke_party, revoked_serials
from mpc_credit.errors import SessionError, UsageError
from mpc_credit.local.ports import free_port_blocks, free_ports
from tests.cluster import Cluster, expected_scores
from tests.conftest import MODEL, OWNERS, PARTIES
from tests.mosquitto import MOSQUITTO, needs_mosquitto, write_config


def _cli(*args: str) -> None:
    assert main(list(args)) == 0, args


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three institutions and an operator, each in its own folder, enrolled by the CLI:
    request at each party, sign at the operator, install at each party."""
    root = tmp_path_factory.mktemp("enroll")
    (broker_port,) = free_ports(1)
    bases = free_port_blocks(len(OWNERS), 4, lo=30000)
    for name, base in zip(OWNERS, bases):
        _cli(
            "pki",
            "request",
            "--party",
            name,
            "--out",
            f"{root / name}",
            f"--port={base}",
            "--ports=4",
        )
    requests = [a for n in OWNERS for a in ("--requests", str(root / n / "request"))]
    op = ["--out", f"{root / 'operator'}", "--model", f"{MODEL}", "--broker-tls"]
    _cli("pki", "sign", *requests, *op, f"--broker-port={broker_port}")
    for name in OWNERS:
        # the operator ships only the bundle; the institution adds its own data
        bundle = root / "received" / name
        shutil.copytree(root / "operator" / name, bundle)
        _cli("pki", "install", "--bundle", str(bundle), "--folder", str(root / name))
        shutil.copyfile(PARTIES / name / "applicants.csv", root / name / "applicants.csv")
    return {"root": root, "operator": root / "operator", **{n: root / n for n in OWNERS}}


def _private_files(folder: Path) -> dict[Path, bytes]:
    return {
        p: p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and b"PRIVATE KEY" in p.read_bytes()
    }


def test_no_private_key_of_a_party_reaches_the_operator(enrolled: dict[str, Path]) -> None:
    op = enrolled["operator"]
    own = {op / "ca" / "mpc-ca.key", op / "ca" / "mqtt-ca.key", op / "broker" / "server.key"}
    assert set(_private_files(op)) == own  # the operator's own keys, nothing else
    for name in OWNERS:
        keys = _private_files(enrolled[name])
        folder = enrolled[name]
        pid = OWNERS.index(name)
        assert set(keys) == {
            folder / "signing.key",
            folder / "mqtt" / "client.key",
            folder / ".config" / f"party_{pid}.key",
        }
        for path, pem in keys.items():
            assert path.stat().st_mode & 0o777 == 0o600, path
            assert all(pem not in data for data in _private_files(op).values())
        for sub in (folder, folder / ".config", folder / "mqtt"):
            assert sub.stat().st_mode & 0o777 == 0o700, sub
        crt = x509.load_pem_x509_certificate((folder / ".config" / f"party_{pid}.crt").read_bytes())
        assert pki.subject_cn(crt) == f"MPyC party {pid}"
        mqtt = x509.load_pem_x509_certificate((folder / "mqtt" / "client.crt").read_bytes())
        assert pki.subject_cn(mqtt) == name


@needs_mosquitto
async def test_the_enrolled_consortium_runs_a_session(enrolled: dict[str, Path], tmp_path) -> None:
    """The daemons of the distributed enrollment score through mosquitto over TLS."""
    from mpc_credit.local.consortium import start_daemons, stop_daemons, wait_all_online

    configs = [enrolled[n] / "party.toml" for n in OWNERS]
    port = load_party_config(configs[0]).broker.port
    conf = write_config(enrolled["operator"], tmp_path / "mosquitto", port)
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)  # type: ignore[list-item]
    procs = []
    try:
        procs = await start_daemons(configs)
        await wait_all_online(configs[0])
        ids = ["A0191", "A0922"]
        out = await score_request(configs[0], ids, reveal="score", timeout=60)
        assert out.rows == expected_scores(ids)
    finally:
        await stop_daemons(procs)
        broker.terminate()
        broker.wait(10)
    assert [p.returncode for p in procs] == [0, 0, 0]


def test_revoke_lists_the_partys_certificates(tmp_path: Path) -> None:
    out = tmp_path / "c"
    _cli("pki", "init", "--out", str(out), "--model", str(MODEL))
    _cli("pki", "revoke", "telco", "--consortium", str(out))
    mpc = pki.load_cert(out / "telco" / ".config" / "party_2.crt")
    mqtt = pki.load_cert(out / "telco" / "mqtt" / "client.crt")
    assert revoked_serials(out / MPC_CRL) == {mpc.serial_number}
    assert revoked_serials(out / MQTT_CRL) == {mqtt.serial_number}
    ca = pki.load_cert(out / "ca" / "mpc-ca.crt")
    crl = x509.load_pem_x509_crl((out / MPC_CRL).read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    for name in OWNERS:  # every party folder gets the MPC list where its links read it
        assert (out / name / PARTY_CRL).read_bytes() == (out / MPC_CRL).read_bytes()
    _cli("pki", "revoke", "bank", "--consortium", str(out))  # the list only grows
    bank = pki.load_cert(out / "bank" / ".config" / "party_0.crt")
    assert revoked_serials(out / MPC_CRL) == {mpc.serial_number, bank.serial_number}
    with pytest.raises(UsageError, match="'eve' is not in"):
        revoke_party(out, "eve")


def test_a_tampered_request_is_refused(tmp_path: Path) -> None:
    reqs = {}
    for name in OWNERS:
        req = request_party(tmp_path / name, name)
        reqs[name] = write_request(req, tmp_path / name)
    assert load_request(reqs["bank"]).name == "bank"
    with pytest.raises(UsageError, match="holds keys already"):
        request_party(tmp_path / "bank", "bank")
    assert main(["pki", "request", "--party", "bank\n", "--out", f"{tmp_path / 'eve'}"]) == 2
    assert not (tmp_path / "eve").exists()  # checked before anything is written

    path = reqs["bank"] / "request.json"
    good = path.read_bytes()
    data = json.loads(good)
    for change, why in [
        ({"host": "evil.example"}, "the signature does not match"),
        ({"party": "bank\ntopic readwrite #"}, "request.json: party: 'bank\\ntopic readwrite #'"),
        ({"extra": 1}, "unknown field 'extra'"),
        ({"mpc_port": 70000}, "mpc_port: 70000 is not a port number"),
    ]:
        path.write_text(json.dumps({**data, **change}))
        with pytest.raises(UsageError, match=why.replace("\\", "\\\\")) as err:
            load_request(reqs["bank"])
        assert "\n" not in str(err.value)
    path.write_bytes(good)
    shutil.copyfile(reqs["telco"] / "mqtt.csr", reqs["bank"] / "mqtt.csr")
    with pytest.raises(UsageError, match="csr_sha256 does not match"):
        load_request(reqs["bank"])


def test_sign_and_install_check_whose_keys(tmp_path: Path) -> None:
    reqs = [request_party(tmp_path / n, n, mpc_port=20000 + 10 * i) for i, n in enumerate(OWNERS)]
    copied = replace(reqs[0], name="telco", mpc_port=20020)  # bank's keys under another name
    with pytest.raises(UsageError, match="the same key"):
        sign_consortium([reqs[0], reqs[1], copied], tmp_path / "op", MODEL)
    clash = request_party(tmp_path / "x", "telco", mpc_port=20010)  # bureau's ports
    with pytest.raises(UsageError, match="overlap"):
        sign_consortium([reqs[0], reqs[1], clash], tmp_path / "op", MODEL)
    sign_consortium(reqs, tmp_path / "op", MODEL)
    with pytest.raises(UsageError, match="another signing key for 'bank'"):
        install_bundle(tmp_path / "op" / "bank", tmp_path / "bureau")
    bundle = tmp_path / "op" / "bank"
    smuggled = bundle / ".config" / "mpyc_crl.pem"  # a file install would copy
    smuggled.write_bytes((tmp_path / "op" / "ca" / "mpc-ca.key").read_bytes())
    with pytest.raises(UsageError, match="holds a private key; a bundle never does"):
        install_bundle(bundle, tmp_path / "bank")
    smuggled.unlink()
    smuggled.symlink_to(tmp_path / "op" / "ca" / "mpc-ca.key")
    with pytest.raises(UsageError, match="is a symbolic link"):
        install_bundle(bundle, tmp_path / "bank")
    smuggled.unlink()
    install_bundle(bundle, tmp_path / "bank")
    installed = load_party_config(tmp_path / "bank" / "party.toml")
    assert installed.party == "bank"
    assert not installed.allow_no_dp  # a deployment trains with DP unless it says otherwise
    assert installed.max_training_runs_per_day == 10
    assert not (tmp_path / "bank" / ".config" / "mpyc_crl.pem").exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    init_consortium(tmp_path, MODEL)
    cfg = load_party_config(tmp_path / "telco" / "party.toml")
    check_private_files(cfg)
    key = tmp_path / "telco" / ".config" / "party_2.key"
    key.chmod(0o644)
    with pytest.raises(UsageError) as err:
        check_private_files(cfg)
    assert str(err.value) == f"{key}: private file readable by others (mode 644); chmod 600 it"
    proc = subprocess.run(
        [sys.executable, "-m", "mpc_credit", "party", "run", "--config", str(cfg.source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mpc-credit: {err.value}"  # at start, before anything runs


async def test_the_mpc_links_honour_a_revocation(tmp_path: Path) -> None:
    """After `pki revoke telco` (its list copied into every party folder), a session with
    telco fails on the MPC links: its certificate is refused as revoked."""
    c = Cluster(tmp_path / "c")
    revoke_party(c.root, "telco")
    c.start_broker()
    try:
        c.start()
        await c.wait_idle()
        with pytest.raises(SessionError, match="MPC certificate was refused: certificate revoked"):
            await score_request(c.config("bank"), ["A0191"], reveal="score", timeout=30)
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), (codes, c.errors)
