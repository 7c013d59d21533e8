"""The operator's side of enrollment, `pki sign`, and its one-machine shortcut `pki init`.

`sign_consortium` issues, from the parties' requests (mpc_credit.consortium.enroll), each
party's MPC certificate (MPC CA; name `MPyC party {pid}`, as MPyC's `--ssl` checks) and
broker client certificate (control-plane CA; name = party name), a broker server
certificate, and writes consortium.json (public keys only), each non-owner's model parts
and one public bundle per party in `out/NAME/`: its certificates, the CA certificates, its
model files, party.toml and a copy of consortium.json. No bundle holds a private key; the
only private files in `out` are the operator's own: the two CA keys (`ca/`, kept and reused
by a later `pki sign`) and the broker's key (`broker/server.key`).

`init_consortium` is the shortcut for the demo and tests: it makes every party's keys in
`out/NAME/` (`enroll.request_party`), signs, and installs each bundle in place; its party
folders share `out/consortium.json` and reference the full model where it is.

(Over 300 lines on purpose: the operator's whole job, from checks to party.toml, in one place.)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_credit.consortium import pki
from mpc_credit.consortium.config import (
    CONSORTIUM_NAME,
    DEFAULT_BROKER_PORT,
    DEFAULT_BROKER_TLS_PORT,
    DEFAULT_MAX_TRAINING_RUNS,
    DEFAULT_MPC_BASE,
    DEFAULT_MPC_PORTS,
    Consortium,
    ModelInfo,
    PartyInfo,
    Policy,
    RequesterPolicy,
    check_party_name,
    check_prohibited,
    check_safe,
)
from mpc_credit.consortium.enroll import PartyRequest, install_bundle, request_party
from mpc_credit.errors import UsageError
from mpc_credit.names import check_name, join
from mpc_credit.scorecard.model import Scorecard, dump_model, load_model
from mpc_credit.vocabulary import MODES, REVEALS


@dataclass(frozen=True)
class Setup:
    """The operator's choices for a consortium: the options `pki init` and `pki sign` share."""

    name: str = "demo"
    model_owner: str | None = None  # holder of the full model (default: the first party)
    requesters: Sequence[str] = ()  # parties that may request scores (default: the owner)
    trainers: Sequence[str] | None = None  # parties that may start training (default: the owner)
    prohibited_features: Sequence[str] = ()  # characteristics no model may use (policy)
    reveals: Sequence[str] = REVEALS
    broker_host: str = "127.0.0.1"
    broker_port: int | None = None  # default 1883, or 8883 with TLS
    broker_tls: bool = False
    daily_budget: int | None = None
    per_applicant_daily: int | None = None  # scorings of one applicant per 24 h (no limit)
    rule: Mapping[str, Any] = field(default_factory=dict)  # more RequesterPolicy fields
    force: bool = False  # replace an existing consortium.json


@dataclass(frozen=True)
class PartyPlan:
    """One party of a consortium being created on one machine."""

    name: str
    host: str = "127.0.0.1"
    mpc_port: int = 0  # 0: DEFAULT_MPC_BASE + 10 * pid
    data: Path | None = None
    training_data: Path | None = None  # its training CSV (the lender's with the label column)


def parse_party_arg(text: str) -> PartyPlan:
    """`NAME`, `NAME=HOST` or `NAME=HOST:PORT` from the command line."""
    name, sep, rest = text.partition("=")
    if not name or (sep and not rest):
        raise UsageError(f"--party {text!r}: expected NAME, NAME=HOST or NAME=HOST:PORT")
    check_party_name(name, "--party")
    if not rest:
        return PartyPlan(name)
    host, colon, port = rest.rpartition(":") if rest.count(":") == 1 else ("", "", "")
    if colon:
        try:
            return PartyPlan(name, host, int(port))
        except ValueError:
            raise UsageError(f"--party {text!r}: port {port!r} is not a number") from None
    return PartyPlan(name, rest)


def _toml_str(v: str) -> str:
    return json.dumps(v)  # a JSON string is a valid TOML basic string


def render_party_toml(values: Mapping[str, Any]) -> str:
    """A `party.toml` for `values` (the keys of `load_party_config`), with comments."""
    v = values
    lines = [
        f"# mpc-credit party configuration of {v['party']} (consortium {v['consortium_name']}).",
        "# Relative paths are relative to this file's folder. Keep the key files private.",
        f"party = {_toml_str(v['party'])}",
        'folder = "."                 # the daemon runs here; MPyC reads .config/ from here',
        f"consortium = {_toml_str(v['consortium'])}",
        'signing_key = "signing.key"  # Ed25519, mode 0600: signs requests and status messages',
    ]
    if v.get("data"):
        lines.append(f"data = {_toml_str(v['data'])}")
    if v.get("training_data"):
        lines.append(f"training_data = {_toml_str(v['training_data'])}  # for joint training")
    lines += [
        "privacy_budget = 10.0        # epsilon (delta 1e-6) joint training may spend on its data",
        'privacy_ledger = "privacy.json"  # what it has spent: refused past the budget',
        f"allow_no_dp = {'true' if v.get('allow_no_dp') else 'false'}"
        "  # accept training without DP (--no-dp): exact statistics",
        f"max_training_runs_per_day = {DEFAULT_MAX_TRAINING_RUNS}  # in any 24 hours",
        'audit = "audit.jsonl"        # one JSON line per session',
        'control_socket = "daemon.sock"  # local CLI <-> daemon; results travel only here',
        "",
    ]
    for mid, modes in v["models"].items():
        lines.append(f"[models.{_toml_str(mid)}]")
        lines += [f"{mode} = {_toml_str(file)}" for mode, file in modes.items()]
        lines.append("")
    b = v["broker"]
    lines += [
        "[broker]",
        f"host = {_toml_str(b['host'])}",
        f"port = {b['port']}",
        f"tls = {'true' if b['tls'] else 'false'}",
        'ca = "mqtt/ca.crt"',
        'cert = "mqtt/client.crt"',
        'key = "mqtt/client.key"',
        "keepalive = 10",
        "",
        "[mpc]",
        f"host = {_toml_str(v['mpc_host'])}   # where the other parties reach this one",
        f"listen = {_toml_str(v['mpc_listen'])}",
        f"port = {v['mpc_port']}          # first port of this party's MPC range",
        f"ports = {v['mpc_ports']}",
        "tls = true",
        "",
    ]
    return "\n".join(lines)


def _relpath(target: Path, start: Path) -> str:
    return os.path.relpath(target.resolve(), start.resolve())


def _full_model(model_path: str | Path) -> Scorecard:
    model = load_model(model_path)
    if model.part is not None:
        raise UsageError(f"{model_path}: is one owner's part; the consortium needs the full model")
    return model


def check_setup(out: Path, model: Scorecard, names: Sequence[str], setup: Setup) -> str:
    """Refuse a consortium that cannot work (before any file is written); returns the
    model owner."""
    check_safe(setup.name, "--name", CONSORTIUM_NAME, "letters, digits, _ . -")
    check_name(model.name, f"{model.source or 'model'}: name (the model's)")
    if len(set(names)) != len(names):
        raise UsageError(f"a party is named twice: {', '.join(names)}")
    if len(names) < 3:
        raise UsageError(f"{len(names)} parties; honest-majority MPC needs at least 3")
    missing = [o for o in model.owners if o not in names]
    if missing:
        raise UsageError(f"model owner(s) {', '.join(missing)} of {model.name} are not parties")
    owner = setup.model_owner or names[0]
    named = [*((r, "--requester") for r in setup.requesters)]
    named += [(t, "--trainer") for t in setup.trainers or ()]
    for who, flag in [(owner, "--model-owner"), *named]:
        if who not in names:
            raise UsageError(f"{flag} {check_party_name(who, flag)!r} is not a party")
    for r in setup.reveals:
        if r not in REVEALS:
            raise UsageError(f"--reveal {r!r} is not one of {', '.join(REVEALS)}")
    try:
        check_prohibited(list(setup.prohibited_features), "--prohibit")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cfile = out / "consortium.json"
    if cfile.exists() and not setup.force:
        raise UsageError(
            f"{cfile} exists: the consortium is already set up (use --force to replace)"
        )
    return owner


def _check_requests(requests: Sequence[PartyRequest]) -> None:
    """No key may be claimed twice, nor an MPC port twice on one host."""
    keys = [r.signing_key.encode() for r in requests]
    keys += [pki.public_der(pki.csr_key(c)) for r in requests for c in (r.mpc_csr, r.mqtt_csr)]
    if len(set(keys)) != len(keys):
        raise UsageError("two requests name the same key: each party makes its own keys")
    taken: dict[str, set[int]] = {}
    for r in requests:
        mine = set(range(r.mpc_port, r.mpc_port + r.mpc_ports))
        if taken.setdefault(r.host, set()) & mine:
            raise UsageError(f"{r.name}: MPC ports {r.mpc_port}+{r.mpc_ports} on {r.host} overlap")
        taken[r.host] |= mine


def _authorities(ca_dir: Path, name: str) -> tuple[pki.Authority, pki.Authority]:
    """The MPC and control-plane CAs: those in `ca_dir` if it holds them, else new ones."""
    if (ca_dir / "mpc-ca.key").exists() and (ca_dir / "mqtt-ca.key").exists():
        return pki.load_authority(ca_dir, "mpc-ca"), pki.load_authority(ca_dir, "mqtt-ca")
    pki.private_dir(ca_dir)
    mpc_ca = pki.new_authority(f"mpc-credit {name} MPC CA")
    mqtt_ca = pki.new_authority(f"mpc-credit {name} control-plane CA")
    pki.write_authority(ca_dir, "mpc-ca", mpc_ca)
    pki.write_authority(ca_dir, "mqtt-ca", mqtt_ca)
    return mpc_ca, mqtt_ca


def _write_broker(folder: Path, ca: pki.Authority, host: str) -> None:
    """The broker's server certificate and key, for the names daemons may reach it by."""
    key, cert = pki.issue_cert(
        ca, "mpc-credit broker", server=True, names=sorted({host, "localhost", "127.0.0.1"})
    )
    pki.private_dir(folder)
    (folder / "ca.crt").write_bytes(pki.pem(ca.cert))
    (folder / "server.crt").write_bytes(pki.pem(cert))
    pki.write_private(folder / "server.key", pki.key_pem(key))


def _model_files(
    folder: Path, model: Scorecard, model_path: Path, party: str, owner: str, local: bool
) -> dict[str, str]:
    """Write party's model files into its folder; their names by mode (for party.toml)."""
    if party == owner:
        if local:
            return dict.fromkeys(MODES, _relpath(model_path, folder))
        target = folder / model_path.name
        if not target.exists() or not target.samefile(model_path):
            shutil.copyfile(model_path, target)
        return dict.fromkeys(MODES, target.name)
    files = {}
    for mode in MODES:
        part = join(folder, model.name, f".{mode}-part.json", "model name")
        dump_model(model.split(party, mode, helper=party not in model.owners), part)
        files[mode] = part.name
    return files


def _write_certificates(
    folder: Path, pid: int, r: PartyRequest, mpc_ca: pki.Authority, mqtt_ca: pki.Authority
) -> Path:
    """Certify the keys of request `r` into the party's bundle folder (public files only)."""
    mpc = pki.certify(mpc_ca, pki.csr_key(r.mpc_csr), pki.party_name(pid), server=True, client=True)
    mqtt = pki.certify(mqtt_ca, pki.csr_key(r.mqtt_csr), r.name, client=True)
    conf = pki.private_dir(pki.private_dir(folder) / ".config")
    (conf / "mpyc_ca.crt").write_bytes(pki.pem(mpc_ca.cert))
    (conf / f"party_{pid}.crt").write_bytes(pki.pem(mpc))
    pki.private_dir(folder / "mqtt")
    (folder / "mqtt" / "ca.crt").write_bytes(pki.pem(mqtt_ca.cert))
    (folder / "mqtt" / "client.crt").write_bytes(pki.pem(mqtt))
    return folder


def sign_consortium(
    requests: Sequence[PartyRequest],
    out: str | Path,
    model_path: str | Path,
    setup: Setup = Setup(),
    *,
    data: Mapping[str, Path | None] | None = None,
    training: Mapping[str, Path | None] | None = None,
    local: bool = False,
) -> Consortium:
    """Issue every party's certificates from `requests` (in pid order) and write the
    consortium under `out` (see the module docstring); returns its consortium file's
    content. `data`: each feature owner's CSV (default `NAME/applicants.csv`); `training`:
    each party's training CSV (default none: set `training_data` in party.toml); `local`:
    party folders reference `out/consortium.json` and the model in place (`pki init`)."""
    out, model_path = Path(out), Path(model_path).resolve()
    model = _full_model(model_path)
    owner = check_setup(out, model, [r.name for r in requests], setup)
    _check_requests(requests)
    out.mkdir(parents=True, exist_ok=True)
    mpc_ca, mqtt_ca = _authorities(out / "ca", setup.name)
    _write_broker(out / "broker", mqtt_ca, setup.broker_host)
    tls = setup.broker_tls
    broker = {
        "host": setup.broker_host,
        "port": setup.broker_port or (DEFAULT_BROKER_TLS_PORT if tls else DEFAULT_BROKER_PORT),
        "tls": tls,
    }
    cfile = out / "consortium.json"
    infos, settings = [], []
    for pid, r in enumerate(requests):
        folder = _write_certificates(out / r.name, pid, r, mpc_ca, mqtt_ca)
        infos.append(PartyInfo(r.name, pid, r.host, r.mpc_port, r.mpc_ports, r.signing_key))
        csv = (data or {}).get(r.name) or folder / "applicants.csv"
        train = (training or {}).get(r.name)
        settings.append(
            {
                "party": r.name,
                "consortium_name": setup.name,
                "consortium": _relpath(cfile, folder) if local else cfile.name,
                # a feature owner's CSV, which may be put in place later
                "data": _relpath(csv, folder) if r.name in model.owners else None,
                "training_data": _relpath(train, folder) if train else None,
                # a deployment refuses training without DP unless its party.toml says so;
                # the demo consortium of one machine (`pki init`) allows it
                "allow_no_dp": local,
                "models": {
                    model.name: _model_files(folder, model, model_path, r.name, owner, local)
                },
                "broker": broker,
                "mpc_host": r.host,
                "mpc_listen": r.host,
                "mpc_port": r.mpc_port,
                "mpc_ports": r.mpc_ports,
            }
        )
    rule = RequesterPolicy(tuple(setup.reveals), daily_budget=setup.daily_budget, **setup.rule)
    policy = Policy(
        {r: rule for r in (setup.requesters or [owner])},
        per_applicant_daily=setup.per_applicant_daily,
        trainers=tuple([owner] if setup.trainers is None else setup.trainers),
        prohibited_features=tuple(setup.prohibited_features),
        model_owners=(owner,),  # publishes new models to the registry (model publish)
    )
    models = (ModelInfo(model.name, model.digest(), owner),)
    cons = Consortium(setup.name, f"mpc-credit/{setup.name}", tuple(infos), models, policy)
    cons.dump(cfile)
    for s in settings:
        folder = out / s["party"]
        (folder / "party.toml").write_text(render_party_toml(s), encoding="utf-8")
        if not local:
            shutil.copyfile(cfile, folder / cfile.name)
    return cons


def init_consortium(
    out: str | Path,
    model_path: str | Path,
    *,
    parties: Sequence[PartyPlan] = (),
    mpc_ports: int = DEFAULT_MPC_PORTS,
    training: Mapping[str, Path] | None = None,
    **options: Any,
) -> Consortium:
    """A whole consortium on one machine (`pki init`): every party's keys made in its folder
    `out/NAME/`, then signed and installed there. `parties` default to the model's feature
    owners, each one's data to `out/NAME/applicants.csv`; `training` names training CSVs by
    party (over the plans'); `options` are Setup's fields."""
    setup = Setup(**options)
    out = Path(out)
    model = _full_model(model_path)
    plans = list(parties) or [PartyPlan(o) for o in model.owners]
    where = "--party" if parties else f"{model_path}: feature owner"
    for p in plans:
        check_party_name(p.name, where)
    check_setup(out, model, [p.name for p in plans], setup)
    requests = [
        request_party(
            out / p.name,
            p.name,
            host=p.host,
            mpc_port=p.mpc_port or DEFAULT_MPC_BASE + 10 * pid,
            mpc_ports=mpc_ports,
            force=True,
        )
        for pid, p in enumerate(plans)
    ]
    data = {p.name: p.data for p in plans}
    for name in training or {}:
        if name not in {p.name for p in plans}:
            raise UsageError(
                f"--training-data {check_party_name(name, '--training-data')}: not a party"
            )
    training = {p.name: p.training_data for p in plans} | dict(training or {})
    cons = sign_consortium(
        requests, out, model_path, setup, data=data, training=training, local=True
    )
    for p in plans:
        install_bundle(out / p.name, out / p.name)
    return cons
