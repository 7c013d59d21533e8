"""The local control socket's requests: what the `score` and `party status` commands ask a daemon.

The socket is a Unix socket of mode 0600 in the party's folder, so only the party's own
account can write to it; its requests are still parsed as strictly as the broker's, one JSON
object per connection, in one of three shapes:

  {"op": "status"}
  {"op": "score", "ids": [ID, ...], "reveal": R, "mode": M, "model_id": ID | null,
   "timeout": SECONDS}
  {"op": "submit", "request": REQUEST, "ids": [ID, ...]}
  {"op": "train", "job": JOB, "timeout": SECONDS}
  {"op": "models"}
  {"op": "publish", "model": MODEL, "as": STATUS, "modes": [M, ...], "reveal": [R, ...],
   "timeout": SECONDS}
  {"op": "decide", "model_id": ID[@VERSION], "approve": true | false, "reason": TEXT}
  {"op": "set-status", "model_id": ID[@VERSION], "status": STATUS}

`score` asks the daemon to build and sign a request; `submit` hands it one signed elsewhere
(of the broker's request schema, mpc_credit.consortium.messages) with the ids it covers;
`train` asks the daemon to sign a training request for JOB (the public parameters of a joint
training run, of mpc_credit.consortium.train_request's schema, `job_of`). `models` lists the
registry as this party sees it; `publish` asks the daemon (a model owner's) to sign a publish
record for MODEL (a full scorecard, checked by the daemon) and run the publish session;
`decide` signs this party's approval or refusal of a version, `set-status` its owner's new
status for it (champion, challenger, candidate, retired).
ids: 1 to MAX_IDS distinct ids of 1 to 64 printable characters; reveal one of the reveal
policies, mode shared or secret; model_id null for the consortium's only model; timeout a
number of seconds from MIN_TIMEOUT to MAX_TIMEOUT. The size limit (MAX_BYTES, 16 MiB) is
larger than the broker's: a batch's ids come this way and go on over the MPC links, never
over the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpc_credit.consortium import fields as f
from mpc_credit.consortium.messages import Request, request_of
from mpc_credit.consortium.train_request import TrainJob, job_of
from mpc_credit.jsonwire import encode
from mpc_credit.vocabulary import MODES, REVEALS

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 8  # a model file's features nest deeper than the other requests
MAX_IDS = 100_000
MIN_TIMEOUT = 0.001
MAX_TIMEOUT = 86_400.0
SCORE, STATUS, SUBMIT, TRAIN = "score", "status", "submit", "train"
MODELS, PUBLISH, DECIDE, SET_STATUS = "models", "publish", "decide", "set-status"
OPS = (SCORE, STATUS, SUBMIT, TRAIN, MODELS, PUBLISH, DECIDE, SET_STATUS)
SCORE_FIELDS = frozenset({"op", "ids", "reveal", "mode", "model_id", "timeout"})
SUBMIT_FIELDS = frozenset({"op", "request", "ids"})
TRAIN_FIELDS = frozenset({"op", "job", "timeout"})
PUBLISH_FIELDS = frozenset({"op", "model", "as", "modes", "reveal", "timeout"})
DECIDE_FIELDS = frozenset({"op", "model_id", "approve", "reason"})
SET_STATUS_FIELDS = frozenset({"op", "model_id", "status"})


@dataclass(frozen=True)
class ControlRequest:
    """One request on the control socket; fields an operation does not carry keep defaults."""

    op: str
    ids: tuple[str, ...] = ()
    reveal: str = "score"
    mode: str = "shared"
    model_id: str | None = None
    timeout: float = 60.0
    request: Request | None = None  # submit
    job: TrainJob | None = None  # train
    model: dict[str, Any] | None = None  # publish: the full model, as JSON
    status: str = ""  # publish (as) and set-status
    modes: tuple[str, ...] = MODES  # publish
    reveals: tuple[str, ...] = REVEALS  # publish
    approve: bool = True  # decide
    reason: str = ""  # decide

    def body(self) -> dict[str, Any]:
        if self.op in (STATUS, MODELS):
            return {"op": self.op}
        if self.op == PUBLISH:
            return {
                "op": PUBLISH,
                "model": self.model,
                "as": self.status,
                "modes": list(self.modes),
                "reveal": list(self.reveals),
                "timeout": self.timeout,
            }
        if self.op == DECIDE:
            return {
                "op": DECIDE,
                "model_id": self.model_id,
                "approve": self.approve,
                "reason": self.reason,
            }
        if self.op == SET_STATUS:
            return {"op": SET_STATUS, "model_id": self.model_id, "status": self.status}
        if self.op == SUBMIT:
            assert self.request is not None
            return {"op": SUBMIT, "request": self.request.body(), "ids": list(self.ids)}
        if self.op == TRAIN:
            assert self.job is not None
            return {"op": TRAIN, "job": self.job.body(), "timeout": self.timeout}
        return {
            "op": SCORE,
            "ids": list(self.ids),
            "reveal": self.reveal,
            "mode": self.mode,
            "model_id": self.model_id,
            "timeout": self.timeout,
        }

    def to_json(self) -> bytes:
        """The request as one line for the socket."""
        return encode(self.body()) + b"\n"


def parse_control(payload: bytes | str) -> ControlRequest:
    """The control request in `payload` (one line), else MessageError with a short reason."""
    d = f.load(payload, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    op = f.choice(d, "op", OPS) if "op" in d else ""
    if op == SUBMIT:
        f.exact(d, SUBMIT_FIELDS)
        req = request_of(d["request"])
        return ControlRequest(SUBMIT, ids=f.identifiers(d, "ids", MAX_IDS), request=req)
    if op == TRAIN:
        f.exact(d, TRAIN_FIELDS)
        timeout = f.real(d, "timeout", MIN_TIMEOUT, MAX_TIMEOUT, exact_type=False)
        return ControlRequest(TRAIN, job=job_of(d["job"]), timeout=timeout)
    if op in (PUBLISH, DECIDE, SET_STATUS):
        return _registry_op(op, d)
    if op != SCORE:
        f.exact(d, {"op"})
        return ControlRequest(MODELS if op == MODELS else STATUS)
    f.exact(d, SCORE_FIELDS)
    return ControlRequest(
        op=SCORE,
        ids=f.identifiers(d, "ids", MAX_IDS),
        reveal=f.choice(d, "reveal", REVEALS),
        mode=f.choice(d, "mode", MODES),
        model_id=None if d["model_id"] is None else _ref(d),
        timeout=f.real(d, "timeout", MIN_TIMEOUT, MAX_TIMEOUT, exact_type=False),
    )


def _registry_op(op: str, d: dict[str, Any]) -> ControlRequest:
    """publish, decide or set-status: the registry's requests."""
    from mpc_credit.consortium.records import PUBLISHED_AS, STATUSES

    if op == PUBLISH:
        f.exact(d, PUBLISH_FIELDS)
        if not isinstance(d["model"], dict):
            raise f.MessageError("field 'model': expected a model file's JSON object")
        return ControlRequest(
            PUBLISH,
            model=d["model"],
            status=f.choice(d, "as", PUBLISHED_AS),
            modes=_subset(d, "modes", MODES),
            reveals=_subset(d, "reveal", REVEALS),
            timeout=f.real(d, "timeout", MIN_TIMEOUT, MAX_TIMEOUT, exact_type=False),
        )
    if op == DECIDE:
        f.exact(d, DECIDE_FIELDS)
        if not isinstance(d["approve"], bool):
            raise f.MessageError("field 'approve': expected true or false")
        return ControlRequest(
            DECIDE, model_id=_ref(d), approve=d["approve"], reason=f.text(d, "reason")
        )
    f.exact(d, SET_STATUS_FIELDS)
    return ControlRequest(SET_STATUS, model_id=_ref(d), status=f.choice(d, "status", STATUSES))


def _ref(d: dict[str, Any]) -> str:
    """`model_id`: ID or ID@VERSION, a safe name either way."""
    return f.safe_name(d, "model_id", at=True)


def _subset(d: dict[str, Any], key: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    v = d[key]
    if not isinstance(v, list) or not v or not all(x in choices for x in v) or len(set(v)) < len(v):
        raise f.MessageError(f"field {key!r}: expected distinct values among {', '.join(choices)}")
    return tuple(v)
