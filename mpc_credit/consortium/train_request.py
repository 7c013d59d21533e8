"""A training request: the signed, public parameters of one joint training run (a consortium job).

`mpc-credit train --config party.toml` asks its own daemon over the local socket; the daemon
signs a `TrainRequest` under TRAIN_LABEL (never valid as a scoring request, nor the reverse)
and publishes it on the consortium's training topic P/train. Every daemon decodes it with
`decode_train_request` (mpc_credit.consortium.fields: size, depth, exact fields, exact types,
bounds) and admits it under the consortium policy (`policy.check_train`) and its own privacy
budget. The requester is the lender (its training CSV holds the label column) and the model
owner: the model reaches the requester's command only, over its local socket.

The job's fields are public (docs/training.md: everyone learns which features were kept and the
epsilon spent); nothing here is a feature value, a count, a coefficient or the model. Every
field is required: the signature covers exactly the fields, and every daemon of a consortium
runs the same version, so a job of an older version (without `exclude`, `monotone`, `c`,
`clip`, `regression`) is refused as missing a field rather than read with guessed defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium import fields as f
from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.messages import envelope, fresh
from mpc_credit.consortium.signing import sign
from mpc_credit.jsonwire import encode

if TYPE_CHECKING:
    from mpc_credit.training.session import Options

TRAIN_LABEL = "mpc-credit/train@1"
SIGMOIDS = ("poly", "linear")
REGRESSIONS = ("quadratic", "logistic")
TRENDS = ("auto", "ascending", "descending", "none")  # mpc_credit.training.woe.Monotone
MAX_FEATURES = 200  # excluded features, monotone overrides
MIN_C, MAX_C = 1e-6, 1e6  # inverse ridge strength
MIN_CLIP, MAX_CLIP = 0.01, 100.0  # WOE clip
MAX_EPSILON = 100.0  # a run's epsilon (at delta 1e-6); more is no privacy at all
MAX_POINTS = 1e6  # |cutoff|, |base points|, pdo
MAX_ODDS = 1e6
MAX_BINS = 100
MAX_STEPS = 100


@dataclass(frozen=True)
class TrainJob:
    """A training run's public parameters (mpc_credit.training.session.Options)."""

    name: str  # the model's name
    label: str  # the label column of the requester's training CSV
    cutoff: int
    pdo: float = 20.0
    odds: float = 50.0
    base_points: float = 600.0
    epsilon: float | None = None  # None: no differential privacy (--no-dp)
    bins: int = 10
    exclude: tuple[str, ...] = ()  # features no party contributes (never leave their owner)
    monotone: tuple[tuple[str, str], ...] = ()  # (feature, trend) overrides, trend of TRENDS
    c: float = 1.0  # inverse ridge strength
    clip: float | None = None  # WOE clip; None: the rule for the run's epsilon
    regression: str = "quadratic"  # "logistic": the exact loss, without DP only
    sigmoid: str = "poly"
    newton_steps: int = 10
    polish_steps: int = 6

    def __post_init__(self) -> None:  # lists (from JSON or a caller) as tuples: hashable, equal
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "monotone", tuple(tuple(m) for m in self.monotone))

    def body(self) -> dict[str, Any]:
        """As JSON: the numbers with a fraction stay floats (the signature covers the type)."""
        d = asdict(self)
        for k in ("pdo", "odds", "base_points", "c"):
            d[k] = float(d[k])
        for k in ("epsilon", "clip"):
            if d[k] is not None:
                d[k] = float(d[k])
        d["exclude"] = list(self.exclude)
        d["monotone"] = [[feature, trend] for feature, trend in self.monotone]
        return d

    def options(self) -> Options:
        """The training session's options for this job (the other options at their defaults)."""
        from mpc_credit.scorecard.model import Scaling
        from mpc_credit.training.session import Options

        return Options(
            name=self.name,
            cutoff=self.cutoff,
            scaling=Scaling(self.pdo, self.odds, self.base_points),
            epsilon=self.epsilon,
            bins=self.bins,
            monotone_features=self.monotone,
            exclude=self.exclude,
            c=self.c,
            clip=self.clip,
            regression=self.regression,  # type: ignore[arg-type]
            sigmoid=self.sigmoid,  # type: ignore[arg-type]
            newton_steps=self.newton_steps,
            polish_steps=self.polish_steps,
        )


JOB_FIELDS = frozenset(TrainJob.__dataclass_fields__)


def job_of(d: Any) -> TrainJob:
    """The job in a decoded JSON value, of exactly its schema, else MessageError."""
    if not isinstance(d, dict):
        raise MessageError("field 'job': expected a JSON object")
    f.exact(d, JOB_FIELDS)
    eps = None if d["epsilon"] is None else f.real(d, "epsilon", 1e-6, MAX_EPSILON)
    sigmoid = f.choice(d, "sigmoid", SIGMOIDS)
    if sigmoid == "linear" and eps is not None:
        raise MessageError("field 'sigmoid': the linear sigmoid has no DP bound; use poly")
    regression = f.choice(d, "regression", REGRESSIONS)
    if regression == "logistic" and eps is not None:
        raise MessageError(
            "field 'regression': the exact logistic regression has no DP release; use "
            "quadratic, or no epsilon"
        )
    return TrainJob(
        name=f.safe_name(d, "name"),
        label=f.safe_name(d, "label"),
        cutoff=f.integer(d, "cutoff", -int(MAX_POINTS), int(MAX_POINTS)),
        pdo=f.real(d, "pdo", 1e-3, MAX_POINTS),
        odds=f.real(d, "odds", 1e-6, MAX_ODDS),
        base_points=f.real(d, "base_points", -MAX_POINTS, MAX_POINTS),
        epsilon=eps,
        bins=f.integer(d, "bins", 2, MAX_BINS),
        exclude=_features(d, "exclude"),
        monotone=_trends(d, "monotone"),
        c=f.real(d, "c", MIN_C, MAX_C),
        clip=None if d["clip"] is None else f.real(d, "clip", MIN_CLIP, MAX_CLIP),
        regression=regression,
        sigmoid=sigmoid,
        newton_steps=f.integer(d, "newton_steps", 1, MAX_STEPS),
        polish_steps=f.integer(d, "polish_steps", 0, MAX_STEPS),
    )


def _features(d: dict[str, Any], key: str) -> tuple[str, ...]:
    """A list of at most MAX_FEATURES distinct feature names (identifiers), maybe empty."""
    v = d[key]
    if not isinstance(v, list) or len(v) > MAX_FEATURES:
        raise MessageError(f"field {key!r}: expected a list of at most {MAX_FEATURES} features")
    if not all(f.is_identifier(a) for a in v):
        raise MessageError(
            f"field {key!r}: a feature name is not 1 to {f.MAX_ID_CHARS} printable characters"
        )
    if len(set(v)) != len(v):
        raise MessageError(f"field {key!r}: a feature is listed twice")
    return tuple(v)


def _trends(d: dict[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    """A list of at most MAX_FEATURES [feature, trend] pairs, each feature once, maybe empty."""
    v = d[key]
    if not isinstance(v, list) or len(v) > MAX_FEATURES:
        raise MessageError(
            f"field {key!r}: expected a list of at most {MAX_FEATURES} [feature, trend] pairs"
        )
    out = []
    for pair in v:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise MessageError(f"field {key!r}: expected [feature, trend] pairs")
        if not f.is_identifier(pair[0]):
            raise MessageError(
                f"field {key!r}: a feature name is not 1 to {f.MAX_ID_CHARS} printable characters"
            )
        if not (isinstance(pair[1], str) and pair[1] in TRENDS):
            raise MessageError(f"field {key!r}: a trend is not one of {', '.join(TRENDS)}")
        out.append((pair[0], pair[1]))
    if len({feature for feature, _ in out}) != len(out):
        raise MessageError(f"field {key!r}: a feature is listed twice")
    return tuple(out)


@dataclass(frozen=True)
class TrainRequest:
    """A training request, as signed by the requester (lender and model owner)."""

    session: str
    requester: str
    job: TrainJob
    deadline: float  # unix time
    nonce: str
    ts: float
    sig: str = ""

    def body(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("session", "requester", "deadline", "nonce", "ts")}
        return {"type": "train", **d, "job": self.job.body(), "sig": self.sig}

    def to_json(self) -> bytes:
        return encode(self.body())

    @property
    def receiver(self) -> str:
        """Who receives the model: the requester, always."""
        return self.requester

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainRequest:
        """A request from trusted fields (tests); the broker's go through `decode_train_request`."""
        job = d["job"]
        return cls(
            session=str(d["session"]),
            requester=str(d["requester"]),
            job=job if isinstance(job, TrainJob) else TrainJob(**job),
            deadline=float(d["deadline"]),
            nonce=str(d["nonce"]),
            ts=float(d["ts"]),
            sig=str(d.get("sig", "")),
        )


TRAIN_FIELDS = frozenset({"type", "session", "requester", "job", "deadline", "nonce", "ts", "sig"})


def new_train_request(
    key: Ed25519PrivateKey,
    *,
    requester: str,
    job: TrainJob,
    timeout: float,
    now: float | None = None,
) -> TrainRequest:
    """A signed training request for `job`, due `timeout` seconds from now."""
    body = TrainRequest(**fresh(timeout, now), requester=requester, job=job).body()
    return TrainRequest.from_dict(sign(TRAIN_LABEL, body, key))


def decode_train_request(payload: bytes | str, cons: Consortium | None = None) -> TrainRequest:
    """The training request in `payload`, of exactly its schema, else MessageError (the
    signature is the policy's check, which says why it refuses)."""
    return train_request_of(f.load(payload), cons)


def train_request_of(d: Any, cons: Consortium | None = None) -> TrainRequest:
    """`decode_train_request` of an already decoded JSON value."""
    common = envelope(d, "train", TRAIN_FIELDS, cons)
    return TrainRequest(**common, job=job_of(d["job"]))
