"""`pki init`: create a consortium, its keys and every party's configuration.

`init_consortium` writes, for n parties: a CA for the MPC links (certificates named
`MPyC party {pid}`, as MPyC's `--ssl` checks), a second CA for the control plane (MQTT
client certificates named after the party, a broker server certificate), one Ed25519
signing key per party, each non-owner's model part, the consortium file and one
`party.toml` per party. Private keys are written with mode 0600.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.consortium import pki
from mpc_credit.consortium.config import (
    DEFAULT_BROKER_PORT,
    DEFAULT_BROKER_TLS_PORT,
    DEFAULT_MPC_BASE,
    DEFAULT_MPC_PORTS,
    Consortium,
    ModelInfo,
    PartyInfo,
    Policy,
    RequesterPolicy,
)
from mpc_credit.consortium.signing import new_signing_key, public_b64, write_signing_key
from mpc_credit.errors import UsageError
from mpc_credit.scorecard.model import dump_model, load_model
from mpc_credit.vocabulary import MODES, REVEALS


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
    lines += [
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


@dataclass(frozen=True)
class PartyPlan:
    """One party of a consortium being created."""

    name: str
    host: str = "127.0.0.1"
    mpc_port: int = 0  # 0: DEFAULT_MPC_BASE + 10 * pid
    data: Path | None = None


def parse_party_arg(text: str) -> PartyPlan:
    """`NAME`, `NAME=HOST` or `NAME=HOST:PORT` from the command line."""
    name, sep, rest = text.partition("=")
    if not name or (sep and not rest):
        raise UsageError(f"--party {text!r}: expected NAME, NAME=HOST or NAME=HOST:PORT")
    if not rest:
        return PartyPlan(name)
    host, colon, port = rest.rpartition(":") if rest.count(":") == 1 else ("", "", "")
    if colon:
        try:
            return PartyPlan(name, host, int(port))
        except ValueError:
            raise UsageError(f"--party {text!r}: port {port!r} is not a number") from None
    return PartyPlan(name, rest)


def _relpath(target: Path, start: Path) -> str:
    return os.path.relpath(target.resolve(), start.resolve())


def init_consortium(
    out: str | Path,
    model_path: str | Path,
    *,
    parties: Sequence[PartyPlan] = (),
    name: str = "demo",
    model_owner: str | None = None,
    requesters: Sequence[str] = (),
    reveals: Sequence[str] = REVEALS,
    broker_host: str = "127.0.0.1",
    broker_port: int | None = None,
    broker_tls: bool = False,
    mpc_ports: int = DEFAULT_MPC_PORTS,
    daily_budget: int | None = None,
    force: bool = False,
) -> Consortium:
    """Create a consortium under `out` (see the module docstring); returns its file's content.

    Parties default to the model's feature owners; the model owner (default: the first
    party) keeps the full model, every other party gets its `shared` and `secret` parts.
    Each party's data defaults to `out/NAME/applicants.csv` when that file exists.
    """
    out = Path(out)
    model = load_model(model_path)
    if model.part is not None:
        raise UsageError(f"{model_path}: is one owner's part; pki init needs the full model")
    plans = list(parties) or [PartyPlan(o) for o in model.owners]
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise UsageError(f"a party is named twice: {', '.join(names)}")
    if len(plans) < 3:
        raise UsageError(f"{len(plans)} parties; honest-majority MPC needs at least 3")
    missing = [o for o in model.owners if o not in names]
    if missing:
        raise UsageError(f"model owner(s) {', '.join(missing)} of {model_path} are not parties")
    owner = model_owner or names[0]
    if owner not in names:
        raise UsageError(f"--model-owner {owner!r} is not a party")
    asked = list(requesters) or [owner]
    for r in asked:
        if r not in names:
            raise UsageError(f"--requester {r!r} is not a party")
    for r in reveals:
        if r not in REVEALS:
            raise UsageError(f"--reveal {r!r} is not one of {', '.join(REVEALS)}")
    cfile = out / "consortium.json"
    if cfile.exists() and not force:
        raise UsageError(
            f"{cfile} exists: the consortium is already set up (use --force to replace)"
        )
    bport = broker_port or (DEFAULT_BROKER_TLS_PORT if broker_tls else DEFAULT_BROKER_PORT)

    out.mkdir(parents=True, exist_ok=True)
    ca_dir = out / "ca"
    ca_dir.mkdir(exist_ok=True)
    mpc_ca = pki.new_authority(f"mpc-credit {name} MPC CA")
    mqtt_ca = pki.new_authority(f"mpc-credit {name} control-plane CA")
    pki.write_authority(ca_dir, "mpc-ca", mpc_ca)
    pki.write_authority(ca_dir, "mqtt-ca", mqtt_ca)
    broker_dir = out / "broker"
    broker_dir.mkdir(exist_ok=True)
    skey, scert = pki.issue_cert(
        mqtt_ca,
        "mpc-credit broker",
        server=True,
        names=sorted({broker_host, "localhost", "127.0.0.1"}),
    )
    (broker_dir / "ca.crt").write_bytes(pki.pem(mqtt_ca.cert))
    (broker_dir / "server.crt").write_bytes(pki.pem(scert))
    pki.write_private(broker_dir / "server.key", pki.key_pem(skey))

    infos: list[PartyInfo] = []
    settings: list[dict[str, Any]] = []
    model_file = Path(model_path).resolve()
    digest = model.digest()
    for pid, plan in enumerate(plans):
        folder = out / plan.name
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = pki.issue(mpc_ca, pid)
        pki.write_party_tls(folder, pid, mpc_ca.cert, key, cert)
        ckey, ccert = pki.issue_cert(mqtt_ca, plan.name, client=True)
        (folder / "mqtt").mkdir(exist_ok=True)
        (folder / "mqtt" / "ca.crt").write_bytes(pki.pem(mqtt_ca.cert))
        (folder / "mqtt" / "client.crt").write_bytes(pki.pem(ccert))
        pki.write_private(folder / "mqtt" / "client.key", pki.key_pem(ckey))
        sk = new_signing_key()
        write_signing_key(folder / "signing.key", sk)
        port = plan.mpc_port or DEFAULT_MPC_BASE + 10 * pid
        infos.append(PartyInfo(plan.name, pid, plan.host, port, mpc_ports, public_b64(sk)))
        models: dict[str, str] = {}
        if plan.name == owner:
            for mode in MODES:
                models[mode] = _relpath(model_file, folder)
        else:
            helper = plan.name not in model.owners
            for mode in MODES:
                part = folder / f"{model.name}.{mode}-part.json"
                dump_model(model.split(plan.name, mode, helper=helper), part)
                models[mode] = part.name
        data = plan.data or (folder / "applicants.csv")
        settings.append(
            {
                "party": plan.name,
                "consortium_name": name,
                "consortium": _relpath(cfile, folder),
                # a feature owner's CSV, which may be put in place after pki init
                "data": _relpath(data, folder) if plan.name in model.owners else None,
                "models": {model.name: models},
                "broker": {"host": broker_host, "port": bport, "tls": broker_tls},
                "mpc_host": plan.host,
                "mpc_listen": plan.host,
                "mpc_port": port,
                "mpc_ports": mpc_ports,
            }
        )
    rule = RequesterPolicy(tuple(reveals), daily_budget=daily_budget)
    policy = Policy({r: rule for r in asked})
    cons = Consortium(
        name, f"mpc-credit/{name}", tuple(infos), (ModelInfo(model.name, digest, owner),), policy
    )
    cons.dump(cfile)
    for s in settings:
        (out / s["party"] / "party.toml").write_text(render_party_toml(s), encoding="utf-8")
    return cons
