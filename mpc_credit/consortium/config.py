"""A consortium: its public file and each party's configuration (`pki init` writes them:
mpc_credit.consortium.create).

The consortium file (`consortium.json`, public, the same at every party) lists the
parties in MPyC pid order with their hosts, MPC port ranges and Ed25519 public keys,
the models with their digests, and the policy: who may request which reveal policy, who
may start a joint training run (`trainers`), which characteristics no model may use
(`prohibited_features`). It never holds a private key.

A party's configuration (`party.toml`, read with tomllib) names its own files: data CSV,
model files by model id and mode, signing key, TLS folder, broker settings, the MPC listen
address and port range, and for joint training its training CSV, its privacy budget (epsilon
at delta 1e-6) and its privacy ledger. Relative paths are relative to the TOML file's
folder.

(About 400 lines on purpose: both files are read here, with every check a value from them
gets (safe party names, port ranges, policy bounds, key file modes), so that nothing read
from either file reaches the rest of the code unchecked.)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as the package tomli (a dependency there)
    import tomli as tomllib

from mpc_credit.consortium.signing import public_from_b64
from mpc_credit.errors import UsageError
from mpc_credit.files import read_json, read_text
from mpc_credit.names import check_name
from mpc_credit.vocabulary import MODES, REVEALS

FORMAT = "mpc-credit/consortium@1"
DEFAULT_MPC_BASE = 12100
DEFAULT_MPC_PORTS = 8
DEFAULT_BROKER_PORT = 1883
DEFAULT_BROKER_TLS_PORT = 8883
DEFAULT_WINDOW = 120.0
DEFAULT_MAX_SECONDS = 3600.0
DEFAULT_CONNECT_SECONDS = 10.0  # every party acknowledged and connected, from a session's start
DEFAULT_DECISION_SECONDS = 60.0  # the longest deadline of a single-applicant request
DEFAULT_PER_APPLICANT_SECONDS = 0.1  # a batch's deadline may grow by this per applicant
DEFAULT_MAX_STALLS = 3  # stalled sessions of a requester in STALL_WINDOW before it is refused
MAX_POLICY_COUNT = 1_000_000_000
DAY_SECONDS = 86_400.0
DEFAULT_PRIVACY_BUDGET = 10.0  # a party's training budget: epsilon at delta 1e-6
DEFAULT_MAX_TRAINING_RUNS = 10  # training runs a party accepts in any 24 hours
MAX_PROHIBITED = 200  # policy.prohibited_features
MAX_FEATURE_CHARS = 64  # a feature name, as a training job's (fields.MAX_ID_CHARS)

# Names end up in MQTT topics, mosquitto ACL lines, file paths and log lines: a safe set only.
PARTY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
PARTY_NAME_RULE = "a lowercase letter, then up to 31 of a-z 0-9 _ -"
CONSORTIUM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64}){0,3}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_safe(value: object, field: str, pattern: re.Pattern[str], rule: str) -> str:
    """`value` if it is a string `pattern` matches whole; otherwise a one-line UsageError
    naming `field` and the rule."""
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise UsageError(f"{field}: {_shown(value)} is not allowed ({rule})")


def check_party_name(value: object, field: str) -> str:
    """`value` if it is a safe party name, else a UsageError naming `field`."""
    check_safe(value, field, PARTY_NAME, f"a party name is {PARTY_NAME_RULE}")
    return check_name(value, field)  # a narrower rule than names' (for files): both hold


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
    per_applicant_daily: int | None = None  # scorings of one applicant per 24 h, all requesters
    trainers: tuple[str, ...] = ()  # parties that may start a joint training run
    # characteristics no model may use (sex, marital status, ...): every party leaves these
    # columns out of every training run (daemon/train_job.py; policy.prohibited_in)
    prohibited_features: tuple[str, ...] = ()
    connect_seconds: float = DEFAULT_CONNECT_SECONDS  # acks and MPC links from a session's start
    max_decision_seconds: float = DEFAULT_DECISION_SECONDS  # a single applicant's deadline
    per_applicant_seconds: float = DEFAULT_PER_APPLICANT_SECONDS  # a batch's, per applicant more
    max_stalls: int = DEFAULT_MAX_STALLS  # a requester's stalled sessions in 10 min, at most
    # parties that may publish models to the registry (consortium/registry.py); empty: the
    # owners of the models in this file
    model_owners: tuple[str, ...] = ()


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
                "connect_seconds": self.policy.connect_seconds,
                "max_decision_seconds": self.policy.max_decision_seconds,
                "per_applicant_seconds": self.policy.per_applicant_seconds,
                "max_stalls": self.policy.max_stalls,
                "model_owners": list(self.policy.model_owners),
                "per_applicant_daily": self.policy.per_applicant_daily,
                "trainers": list(self.policy.trainers),
                "prohibited_features": list(self.policy.prohibited_features),
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
        name = check_safe(data["name"], "name", CONSORTIUM_NAME, "letters, digits, _ . -")
        prefix = check_safe(
            data["topic_prefix"], "topic_prefix", TOPIC_PREFIX, "up to 4 levels of a-z 0-9 _ . -"
        )
        parties = tuple(
            PartyInfo(
                check_party_name(p["name"], f"parties[{i}].name"),
                int(p["pid"]),
                str(p["host"]),
                int(p["mpc_port"]),
                int(p["mpc_ports"]),
                str(p["signing_key"]),
            )
            for i, p in enumerate(data["parties"])
        )
        for i, p in enumerate(parties):
            if p.pid != i:
                raise ValueError(f"parties[{i}]: pid {p.pid}, expected {i} (pid order)")
            public_from_b64(p.signing_key)
        if len({p.name for p in parties}) != len(parties):
            raise ValueError("a party name is listed twice")
        models = tuple(
            ModelInfo(
                check_name(m["id"], f"models[{i}].id"),
                str(m["digest"]),
                check_party_name(m["owner"], f"models[{i}].owner"),
            )
            for i, m in enumerate(data["models"])
        )
        policy = load_policy(data["policy"])
        return Consortium(name, prefix, parties, models, policy, str(path))
    except (KeyError, TypeError, ValueError, AttributeError, UsageError) as exc:
        raise UsageError(f"{path}: invalid consortium file: {exc}") from None


def load_policy(pol: Mapping[str, Any]) -> Policy:
    """The policy section: counts whole numbers of at least 1, durations positive seconds of
    at most a day, reveal policies known; ValueError naming the field otherwise."""

    def count(value: Any, where: str) -> int:
        if type(value) is not int or not 1 <= value <= MAX_POLICY_COUNT:
            raise ValueError(f"{where}: expected a whole number from 1 to {MAX_POLICY_COUNT}")
        return value

    def count_or_none(value: Any, where: str) -> int | None:
        return None if value is None else count(value, where)

    def seconds(value: Any, where: str) -> float:
        if type(value) not in (int, float) or not 0 < value <= DAY_SECONDS:
            raise ValueError(f"{where}: expected seconds, more than 0 and at most {DAY_SECONDS}")
        return float(value)

    requesters = {}
    for k, v in pol["requesters"].items():
        at = f"policy.requesters.{check_party_name(k, 'policy.requesters')}"
        if not isinstance(v["reveal"], list) or not set(v["reveal"]) <= set(REVEALS):
            raise ValueError(f"{at}.reveal: expected a list of {', '.join(REVEALS)}")
        requesters[k] = RequesterPolicy(
            tuple(v["reveal"]),
            count(v.get("max_batch", 100_000), f"{at}.max_batch"),
            count_or_none(v.get("daily_budget"), f"{at}.daily_budget"),
        )
    trainers = pol.get("trainers", [])
    if not isinstance(trainers, list):
        raise ValueError("policy.trainers: expected a list of party names")
    return Policy(
        requesters,
        seconds(pol.get("timestamp_window", DEFAULT_WINDOW), "policy.timestamp_window"),
        seconds(pol.get("max_session_seconds", DEFAULT_MAX_SECONDS), "policy.max_session_seconds"),
        count_or_none(pol.get("per_applicant_daily"), "policy.per_applicant_daily"),
        tuple(check_party_name(t, "policy.trainers") for t in trainers),
        check_prohibited(pol.get("prohibited_features", [])),
        connect_seconds=seconds(
            pol.get("connect_seconds", DEFAULT_CONNECT_SECONDS), "policy.connect_seconds"
        ),
        max_decision_seconds=seconds(
            pol.get("max_decision_seconds", DEFAULT_DECISION_SECONDS), "policy.max_decision_seconds"
        ),
        per_applicant_seconds=seconds(
            pol.get("per_applicant_seconds", DEFAULT_PER_APPLICANT_SECONDS),
            "policy.per_applicant_seconds",
        ),
        max_stalls=count(pol.get("max_stalls", DEFAULT_MAX_STALLS), "policy.max_stalls"),
        model_owners=tuple(
            check_party_name(o, "policy.model_owners") for o in pol.get("model_owners", [])
        ),
    )


def check_prohibited(value: Any, where: str = "policy.prohibited_features") -> tuple[str, ...]:
    """Prohibited features: at most MAX_PROHIBITED feature names, distinct ignoring case and
    surrounding spaces, each 1 to MAX_FEATURE_CHARS printable characters (as a training job's
    feature names); ValueError naming `where` otherwise."""
    if not isinstance(value, list) or len(value) > MAX_PROHIBITED:
        raise ValueError(f"{where}: expected a list of at most {MAX_PROHIBITED} feature names")
    for name in value:
        if not (isinstance(name, str) and name.strip() and len(name) <= MAX_FEATURE_CHARS):
            raise ValueError(
                f"{where}: {_shown(name)} is not a feature name (1 to {MAX_FEATURE_CHARS} "
                "printable characters)"
            )
        if not name.isprintable():
            raise ValueError(f"{where}: {_shown(name)} has a control character")
    if len({n.strip().casefold() for n in value}) != len(value):
        raise ValueError(f"{where}: a feature is listed twice")
    return tuple(value)


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
    max_queue_per_requester: int | None = None  # None: admission.requester_cap's default
    source: Path = Path("party.toml")
    training_data: Path | None = None  # this party's training CSV (the lender's: with labels)
    privacy_budget: float = DEFAULT_PRIVACY_BUDGET  # epsilon at delta 1e-6, on its applicants
    privacy_ledger: Path = Path("privacy.json")  # the zCDP this party's data has spent
    allow_no_dp: bool = False  # whether it accepts a training run without DP (--no-dp)
    max_training_runs_per_day: int = DEFAULT_MAX_TRAINING_RUNS  # any 24 hours, from its ledger
    # model owners whose published versions this party approves as soon as it holds its part
    auto_approve: tuple[str, ...] = ()

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
        party = check_party_name(raw["party"], f"{path}: party")
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
            check_name(mid, f"{path}: models (a model id)")
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
            max_queue_per_requester=_per_requester(raw.get("max_queue_per_requester")),
            source=path,
            training_data=opt(raw, "training_data", ""),
            privacy_budget=_budget(raw.get("privacy_budget", DEFAULT_PRIVACY_BUDGET)),
            privacy_ledger=rel(raw.get("privacy_ledger", "privacy.json"), "privacy_ledger"),
            allow_no_dp=_flag(raw.get("allow_no_dp", False), "allow_no_dp"),
            max_training_runs_per_day=_runs(
                raw.get("max_training_runs_per_day", DEFAULT_MAX_TRAINING_RUNS)
            ),
            auto_approve=tuple(
                check_party_name(o, f"{path}: auto_approve") for o in raw.get("auto_approve", [])
            ),
        )
    except KeyError as exc:
        raise UsageError(f"{path}: missing setting {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: invalid setting: {exc}") from None


def _budget(value: Any) -> float:
    """`privacy_budget`: a finite epsilon >= 0 (0: no DP training run is accepted)."""
    if type(value) not in (int, float) or not 0 <= value < float("inf"):
        raise ValueError("privacy_budget: expected a finite epsilon >= 0")
    return float(value)


def _flag(value: Any, key: str) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{key}: expected true or false")
    return value


def _per_requester(value: Any) -> int | None:
    """`max_queue_per_requester`: absent, or a whole number from 1 (queued and running)."""
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_POLICY_COUNT):
        raise ValueError("max_queue_per_requester: expected a whole number of at least 1")
    return value


def _runs(value: Any) -> int:
    """`max_training_runs_per_day`: an integer >= 0 (0: no training run is accepted)."""
    if type(value) is not int or not 0 <= value <= MAX_POLICY_COUNT:
        raise ValueError("max_training_runs_per_day: expected an integer >= 0")
    return value


def check_private_files(cfg: PartyConfig) -> None:
    """Refuse to start when a private key (or password) file can be read by anyone but
    its owner: a one-line UsageError naming the file and its mode."""
    tls = cfg.folder / ".config"
    files = [cfg.signing_key, cfg.broker.key, cfg.broker.password_file]
    files += sorted(tls.glob("*.key")) if tls.is_dir() else []
    for path in files:
        if path is None:
            continue
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue  # the code that needs the file says it is missing
        if mode & 0o077:
            raise UsageError(
                f"{path}: private file readable by others (mode {mode:o}); chmod 600 it"
            )
