"""A consortium: its public file, each party's configuration, and `pki init` that makes both.

The consortium file (`consortium.json`, public, the same at every party) lists the
parties in MPyC pid order with their hosts, MPC port ranges and Ed25519 public keys,
the models with their digests, and the policy: who may request which reveal policy.
It never holds a private key.

A party's configuration (`party.toml`, read with tomllib) names its own files: data CSV,
model files by model id and mode, signing key, TLS folder, broker settings, the MPC
listen address and port range. Relative paths are relative to the TOML file's folder.

`init_consortium` writes, for n parties: a CA for the MPC links (certificates named
`MPyC party {pid}`, as MPyC's `--ssl` checks), a second CA for the control plane (MQTT
client certificates named after the party, a broker server certificate), one Ed25519
signing key per party, each non-owner's model part, the consortium file and one
`party.toml` per party. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from mpc_credit.errors import UsageError
from mpc_credit.files import read_json, read_text
from mpc_credit.signing import public_from_b64

if TYPE_CHECKING:  # imported where used: the `score` CLI's start-up path stays short
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from mpc_credit import pki

FORMAT = "mpc-credit/consortium@1"
# as in mpc_credit.model and mpc_credit.reveal, repeated so that the `score` CLI's
# import path stays free of numpy
MODES = ("shared", "secret")
REVEALS = ("score", "decision", "reasons", "pd")
DEFAULT_MPC_BASE = 12100
DEFAULT_MPC_PORTS = 8
DEFAULT_BROKER_PORT = 1883
DEFAULT_BROKER_TLS_PORT = 8883
DEFAULT_WINDOW = 120.0
DEFAULT_MAX_SECONDS = 3600.0


# ---------------------------------------------------------------- the public file


@dataclass(frozen=True)
class PartyInfo:
    """One party as every other party knows it."""

    name: str
    pid: int
    host: str
    mpc_port: int
    mpc_ports: int
    signing_key: str  # base64 raw Ed25519 public key

    @property
    def public_key(self) -> Any:
        return public_from_b64(self.signing_key)

    def port_ok(self, port: int) -> bool:
        """Whether `port` is in this party's announced MPC range."""
        return self.mpc_port <= port < self.mpc_port + self.mpc_ports


@dataclass(frozen=True)
class ModelInfo:
    """A model the consortium scores with: id, digest of the full model, its owner."""

    id: str
    digest: str
    owner: str


@dataclass(frozen=True)
class RequesterPolicy:
    """What one requester may ask for."""

    reveal: tuple[str, ...]
    max_batch: int = 100_000
    daily_budget: int | None = None  # applicants per rolling 24 hours; None: no limit


@dataclass(frozen=True)
class Policy:
    """The consortium's rules every party enforces on every request."""

    requesters: Mapping[str, RequesterPolicy]
    timestamp_window: float = DEFAULT_WINDOW  # seconds either side of a party's clock
    max_session_seconds: float = DEFAULT_MAX_SECONDS  # deadline at most this far ahead


@dataclass(frozen=True)
class Consortium:
    """The public consortium file."""

    name: str
    topic_prefix: str
    parties: tuple[PartyInfo, ...]
    models: tuple[ModelInfo, ...]
    policy: Policy
    source: str = field(default="<consortium>", compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parties)

    def party(self, name: str) -> PartyInfo:
        for p in self.parties:
            if p.name == name:
                return p
        raise KeyError(name)

    def model(self, model_id: str) -> ModelInfo | None:
        return next((m for m in self.models if m.id == model_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "topic_prefix": self.topic_prefix,
            "parties": [
                {
                    "name": p.name,
                    "pid": p.pid,
                    "host": p.host,
                    "mpc_port": p.mpc_port,
                    "mpc_ports": p.mpc_ports,
                    "signing_key": p.signing_key,
                }
                for p in self.parties
            ],
            "models": [{"id": m.id, "digest": m.digest, "owner": m.owner} for m in self.models],
            "policy": {
                "requesters": {
                    k: {
                        "reveal": list(v.reveal),
                        "max_batch": v.max_batch,
                        "daily_budget": v.daily_budget,
                    }
                    for k, v in self.policy.requesters.items()
                },
                "timestamp_window": self.policy.timestamp_window,
                "max_session_seconds": self.policy.max_session_seconds,
            },
        }

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_consortium(path: str | Path) -> Consortium:
    """Read and check a consortium file; errors name the file and the field."""
    path = Path(path)
    data = read_json(path, "consortium file", UsageError)
    try:
        if data.get("format") != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}")
        parties = tuple(
            PartyInfo(
                str(p["name"]),
                int(p["pid"]),
                str(p["host"]),
                int(p["mpc_port"]),
                int(p["mpc_ports"]),
                str(p["signing_key"]),
            )
            for p in data["parties"]
        )
        for i, p in enumerate(parties):
            if p.pid != i:
                raise ValueError(f"parties[{i}]: pid {p.pid}, expected {i} (pid order)")
            public_from_b64(p.signing_key)
        if len({p.name for p in parties}) != len(parties):
            raise ValueError("a party name is listed twice")
        models = tuple(
            ModelInfo(str(m["id"]), str(m["digest"]), str(m["owner"])) for m in data["models"]
        )
        pol = data["policy"]
        requesters = {
            str(k): RequesterPolicy(
                tuple(v["reveal"]),
                int(v.get("max_batch", 100_000)),
                None if v.get("daily_budget") is None else int(v["daily_budget"]),
            )
            for k, v in pol["requesters"].items()
        }
        policy = Policy(
            requesters,
            float(pol.get("timestamp_window", DEFAULT_WINDOW)),
            float(pol.get("max_session_seconds", DEFAULT_MAX_SECONDS)),
        )
        return Consortium(
            str(data["name"]), str(data["topic_prefix"]), parties, models, policy, str(path)
        )
    except (KeyError, TypeError, ValueError, AttributeError, UsageError) as exc:
        raise UsageError(f"{path}: invalid consortium file: {exc}") from None


# ---------------------------------------------------------------- one party's configuration


@dataclass(frozen=True)
class BrokerSettings:
    """How a daemon reaches the MQTT broker."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_BROKER_PORT
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    keepalive: int = 10

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class PartyConfig:
    """A party's own configuration (`party.toml`)."""

    party: str
    folder: Path  # holds .config/ for MPyC's TLS; the daemon's working directory
    consortium_file: Path
    signing_key: Path
    data: Path | None
    models: Mapping[str, Mapping[str, Path]]  # model id -> mode -> file
    broker: BrokerSettings
    mpc_host: str
    mpc_listen: str
    mpc_port: int
    mpc_ports: int
    mpc_tls: bool
    audit: Path
    control_socket: Path
    max_queue: int = 16
    source: Path = Path("party.toml")

    def model_file(self, model_id: str, mode: str) -> Path | None:
        return self.models.get(model_id, {}).get(mode)


def load_party_config(path: str | Path) -> PartyConfig:
    """Read `party.toml`; relative paths are taken relative to its folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_text(path, "party configuration", UsageError))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    base = path.resolve().parent

    def rel(value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise UsageError(f"{path}: {key} must be a non-empty path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    def opt(table: Mapping[str, Any], key: str, where: str) -> Path | None:
        v = table.get(key)
        return rel(v, f"{where}{key}") if v else None

    try:
        party = str(raw["party"])
        b = raw.get("broker", {})
        broker = BrokerSettings(
            host=str(b.get("host", "127.0.0.1")),
            port=int(b.get("port", DEFAULT_BROKER_PORT)),
            tls=bool(b.get("tls", False)),
            ca=opt(b, "ca", "broker."),
            cert=opt(b, "cert", "broker."),
            key=opt(b, "key", "broker."),
            username=b.get("username") or None,
            password_file=opt(b, "password_file", "broker."),
            keepalive=int(b.get("keepalive", 10)),
        )
        m = raw.get("mpc", {})
        models: dict[str, dict[str, Path]] = {}
        for mid, modes in raw.get("models", {}).items():
            models[str(mid)] = {}
            for mode, file in modes.items():
                if mode not in MODES:
                    raise UsageError(f"{path}: models.{mid}.{mode}: mode must be shared or secret")
                models[str(mid)][mode] = rel(file, f"models.{mid}.{mode}")
        return PartyConfig(
            party=party,
            folder=rel(raw.get("folder", "."), "folder"),
            consortium_file=rel(raw["consortium"], "consortium"),
            signing_key=rel(raw["signing_key"], "signing_key"),
            data=opt(raw, "data", ""),
            models=models,
            broker=broker,
            mpc_host=str(m.get("host", "127.0.0.1")),
            mpc_listen=str(m.get("listen", m.get("host", "127.0.0.1"))),
            mpc_port=int(m["port"]),
            mpc_ports=int(m.get("ports", DEFAULT_MPC_PORTS)),
            mpc_tls=bool(m.get("tls", True)),
            audit=rel(raw.get("audit", "audit.jsonl"), "audit"),
            control_socket=rel(raw.get("control_socket", "daemon.sock"), "control_socket"),
            max_queue=int(raw.get("max_queue", 16)),
            source=path,
        )
    except KeyError as exc:
        raise UsageError(f"{path}: missing setting {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: invalid setting: {exc}") from None


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


# ---------------------------------------------------------------- pki init


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


def _cert_name(cn: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue_tls(
    ca: pki.Authority, cn: str, *, server: bool, names: Sequence[str] = ()
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A control-plane certificate: a client named `cn`, or a server for `names`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from mpc_credit import pki

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    alt: list[x509.GeneralName] = []
    for n in names or [cn]:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_cert_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + pki.VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


def _write_ca(folder: Path, stem: str, ca: pki.Authority) -> None:
    from mpc_credit import pki

    (folder / f"{stem}.crt").write_bytes(pki.pem(ca.cert))
    pki.write_private(folder / f"{stem}.key", _key_pem(ca.key))


def _relpath(target: Path, start: Path) -> str:
    import os

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
    from mpc_credit import pki
    from mpc_credit.model import dump_model, load_model
    from mpc_credit.signing import new_signing_key, public_b64, write_signing_key

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
    _write_ca(ca_dir, "mpc-ca", mpc_ca)
    _write_ca(ca_dir, "mqtt-ca", mqtt_ca)
    broker_dir = out / "broker"
    broker_dir.mkdir(exist_ok=True)
    skey, scert = issue_tls(
        mqtt_ca,
        "mpc-credit broker",
        server=True,
        names=sorted({broker_host, "localhost", "127.0.0.1"}),
    )
    (broker_dir / "ca.crt").write_bytes(pki.pem(mqtt_ca.cert))
    (broker_dir / "server.crt").write_bytes(pki.pem(scert))
    pki.write_private(broker_dir / "server.key", _key_pem(skey))

    infos: list[PartyInfo] = []
    settings: list[dict[str, Any]] = []
    model_file = Path(model_path).resolve()
    digest = model.digest()
    for pid, plan in enumerate(plans):
        folder = out / plan.name
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = pki.issue(mpc_ca, pid)
        pki.write_party_tls(folder, pid, mpc_ca.cert, key, cert)
        ckey, ccert = issue_tls(mqtt_ca, plan.name, server=False)
        (folder / "mqtt").mkdir(exist_ok=True)
        (folder / "mqtt" / "ca.crt").write_bytes(pki.pem(mqtt_ca.cert))
        (folder / "mqtt" / "client.crt").write_bytes(pki.pem(ccert))
        pki.write_private(folder / "mqtt" / "client.key", _key_pem(ckey))
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
                "data": _relpath(data, folder) if Path(data).exists() else None,
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
