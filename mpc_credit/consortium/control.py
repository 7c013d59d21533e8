"""The local control socket's requests: what the `score` and `party status` commands ask a daemon.

The socket is a Unix socket of mode 0600 in the party's folder, so only the party's own
account can write to it; its requests are still parsed as strictly as the broker's, one JSON
object per connection, in one of three shapes:

  {"op": "status"}
  {"op": "score", "ids": [ID, ...], "reveal": R, "mode": M, "model_id": ID | null,
   "timeout": SECONDS}
  {"op": "submit", "request": REQUEST, "ids": [ID, ...]}
  {"op": "train", "job": JOB, "timeout": SECONDS}

`score` asks the daemon to build and sign a request; `submit` hands it one signed elsewhere
(of the broker's request schema, mpc_credit.consortium.messages) with the ids it covers;
`train` asks the daemon to sign a training request for JOB (the public parameters of a joint
training run, of mpc_credit.consortium.train_request's schema, `job_of`).
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
MAX_DEPTH = 4
MAX_IDS = 100_000
MIN_TIMEOUT = 0.001
MAX_TIMEOUT = 86_400.0
SCORE, STATUS, SUBMIT, TRAIN = "score", "status", "submit", "train"
OPS = (SCORE, STATUS, SUBMIT, TRAIN)
SCORE_FIELDS = frozenset({"op", "ids", "reveal", "mode", "model_id", "timeout"})
SUBMIT_FIELDS = frozenset({"op", "request", "ids"})
TRAIN_FIELDS = frozenset({"op", "job", "timeout"})


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

    def body(self) -> dict[str, Any]:
        if self.op == STATUS:
            return {"op": STATUS}
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
    if op != SCORE:
        f.exact(d, {"op"})
        return ControlRequest(STATUS)
    f.exact(d, SCORE_FIELDS)
    return ControlRequest(
        op=SCORE,
        ids=f.identifiers(d, "ids", MAX_IDS),
        reveal=f.choice(d, "reveal", REVEALS),
        mode=f.choice(d, "mode", MODES),
        model_id=None if d["model_id"] is None else f.safe_name(d, "model_id"),
        timeout=f.real(d, "timeout", MIN_TIMEOUT, MAX_TIMEOUT, exact_type=False),
    )
