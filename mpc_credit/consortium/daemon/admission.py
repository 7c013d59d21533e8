"""Admission: parse and check what reaches a daemon, and decide; pure functions, no I/O.

- `refusal(req, here, holds_batch=...)`: the one check of a request (scoring or training),
  whether it arrived on the broker or from the local client: None to accept, else the reason
  every party reports. A training request is checked against the consortium policy
  (`policy.check_train`) and then the party's own conditions (daemon/train_job.py: training
  data configured, its privacy budget; a stat and an in-memory ledger, no other I/O).
- `requester_cap`: a requester's share of a party's queue; `refusal` refuses past it, and a
  requester that keeps stalling (daemon/stalls.py);
- `check_submission(...)`: what only the requester's own daemon checks before it publishes
  a request from its local client (its own, connected, the others online, ids it knows).
- `choose_model`: the model a local client's request names (or the only one).
- `signed`: whether a request carries its requester's valid signature (what decides between
  a `refused` audit line and a bounded `rejected` summary);
- `read_status`: what another party's report means for a session.

A refusal is a `Refusal`: the full reason for this party's log, its audit line and its local
client, with the public category that goes on the broker (`reasons.public_reason`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpc_credit.consortium.config import Consortium, ModelInfo
from mpc_credit.consortium.daemon import stalls
from mpc_credit.consortium.daemon.train_job import TrainingSide
from mpc_credit.consortium.fields import clean_text
from mpc_credit.consortium.messages import (
    ACK,
    DONE,
    FAILED,
    PROGRESS,
    REFUSE,
    REQUEST_LABEL,
    Request,
    ids_digest,
)
from mpc_credit.consortium.policy import (
    NonceCache,
    QueryLedger,
    check_publish,
    check_request,
    check_train,
)
from mpc_credit.consortium.publish_request import PUBLISH_LABEL, AnyRequest, PublishRequest
from mpc_credit.consortium.reasons import (
    MALFORMED,
    NO_TRAINING_DATA,
    REGISTRY,
    Refusal,
    requester_full,
)
from mpc_credit.consortium.registry import Registry, publishers
from mpc_credit.consortium.signing import verify
from mpc_credit.consortium.train_request import TRAIN_LABEL, TrainRequest
from mpc_credit.errors import (
    MpcCreditError,
    RefusedError,
    SessionError,
    UsageError,
    error_of_kind,
)
from mpc_credit.scorecard.model import Scorecard


@dataclass(frozen=True)
class Here:
    """What this party decides with: its consortium, models, history and load."""

    party: str
    cons: Consortium
    models: Mapping[tuple[str, str], Scorecard]
    nonces: NonceCache
    ledger: QueryLedger
    stopping: bool = False
    queued: int = 0
    max_queue: int = 16
    training: TrainingSide | None = None  # this party's training data, budget and ledger
    per_requester: Mapping[str, int] = field(default_factory=dict)  # sessions queued or running
    max_per_requester: int | None = None  # a requester's share of the queue; None: all of it
    stalls: Mapping[str, Sequence[float]] = field(default_factory=dict)  # StallBook.times()
    registry: Registry | None = None  # the model registry as this party holds it


SHUTTING_DOWN = "shutting down"
BUSY = "too many sessions queued"


def refusal(
    req: AnyRequest, here: Here, *, holds_batch: bool, now: float | None = None
) -> Refusal | None:
    """Why this party refuses `req`, or None to accept it.

    `holds_batch`: this daemon holds the ids of the session (its local client sent them);
    a receiver must, when the request carries only their digest.
    """
    if here.stopping:
        return Refusal(f"party {here.party} is shutting down", SHUTTING_DOWN)
    if isinstance(req, TrainRequest):
        reason = check_train(req, here.cons, here.nonces, now=now)
    elif isinstance(req, PublishRequest):
        reason = check_publish(req, here.cons, here.nonces, now=now) or _registry(req, here)
    else:
        reason = check_request(
            req, here.cons, here.models, here.nonces, ledger=here.ledger, now=now
        )
    if reason is not None:
        return reason
    reason = _load(req.requester, here, time.time() if now is None else now)
    if reason is not None or isinstance(req, PublishRequest):
        return reason
    if isinstance(req, TrainRequest):
        if here.training is None:
            return Refusal(f"party {here.party} does not train", NO_TRAINING_DATA)
        return here.training.refusal(req)
    if req.ids is None and req.receiver == here.party and not holds_batch:
        return Refusal("batch ids were not submitted through the receiver's daemon", MALFORMED)
    return None


def _registry(req: PublishRequest, here: Here) -> Refusal | None:
    """The version must be one the registry takes: a model owner's, newer than every earlier
    version of its id, no prohibited feature, a part for every party but its owner."""
    if here.registry is None:
        return Refusal(f"party {here.party} keeps no model registry", REGISTRY)
    if req.record.author not in publishers(here.cons):
        return Refusal(f"{req.record.author} may not publish models (not a model owner)", REGISTRY)
    reason = here.registry.refusal(req.record)
    return None if reason is None else Refusal(reason, REGISTRY)


def _load(requester: str, here: Here, now: float) -> Refusal | None:
    """A requester that keeps stalling, a full queue, a requester past its share of it."""
    times = here.stalls.get(requester, ())
    reason = stalls.refusal(requester, times, here.cons.policy.max_stalls, now)
    if reason is not None:
        return reason
    if here.queued >= here.max_queue:
        return Refusal(f"{here.queued} sessions already queued", BUSY)
    cap, load = here.max_per_requester, here.per_requester.get(requester, 0)
    if cap is not None and load >= cap:
        category = requester_full(requester, cap)
        return Refusal(f"{category}; max_queue_per_requester is {cap}", category)
    return None


def requester_cap(configured: int | None, max_queue: int, requesters: Collection[str]) -> int:
    """A requester's share of a party's queue (queued and running sessions): `configured`,
    else all of `max_queue` when the policy has one requester, else half of it (at least 1).
    The queue keeps the broker's order: a share caps what one requester holds, it never
    lets another's session run earlier (every party must run sessions in the same order)."""
    if configured is not None:
        return configured
    return max_queue if len(requesters) <= 1 else max(1, max_queue // 2)


def signed(req: AnyRequest, cons: Consortium) -> bool:
    """Whether `req` carries a valid signature of the consortium member it names."""
    if req.requester not in cons.names:
        return False
    label = (
        TRAIN_LABEL
        if isinstance(req, TrainRequest)
        else PUBLISH_LABEL
        if isinstance(req, PublishRequest)
        else REQUEST_LABEL
    )
    return verify(label, req.body(), cons.party(req.requester).public_key)


def check_submission(
    req: AnyRequest,
    ids: list[str],
    here: Here,
    *,
    connected: bool,
    presence: Mapping[str, str],
    known: Collection[str] | None,
    data_name: str = "",
    now: float | None = None,
) -> MpcCreditError | None:
    """Why the local client's request cannot go out, as the error it gets; None if it can.

    `known`: the applicants in this party's file for the request's model (None: it holds
    none of the model's features); `data_name` names that file in the message.
    """
    me = here.party
    if req.requester != me:
        return UsageError(f"this daemon is {me}'s, the request is {req.requester}'s")
    if not connected:
        return SessionError(f"party {me} is not connected to the broker")
    reason = refusal(req, here, holds_batch=True, now=now)
    if reason is not None:
        return RefusedError(f"party {me} refused: {reason}", reason.category)
    if isinstance(req, Request) and req.ids is None and ids_digest(ids) != req.batch_digest:
        return UsageError("the batch ids do not match the request's digest")
    absent = [p for p in here.cons.names if presence.get(p) != "online"]
    if absent:
        states = ", ".join(f"{p} ({presence.get(p, 'never seen')})" for p in absent)
        return SessionError(f"party {states} is not available; session not started")
    if known is not None and isinstance(req, Request):
        wanted = req.ids if req.ids is not None else ids
        unknown = [a for a in wanted if a not in known]
        if unknown:
            more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
            where = f"{me}'s file {data_name}".rstrip()
            return UsageError(f"applicant {unknown[0]!r}{more} is not in {where}")
    return None


def choose_model(cons: Consortium, model_id: str | None) -> ModelInfo:
    """The model a request names, or the consortium's only one."""
    if model_id is None:
        if len(cons.models) != 1:
            raise UsageError(f"{cons.source}: several models; name one with --model-id")
        return cons.models[0]
    info = cons.model(model_id)
    if info is None:
        raise UsageError(f"model {model_id!r} is not registered in {cons.source}")
    return info


# ---------------------------------------------------------------- the others' reports


@dataclass(frozen=True)
class StatusEvent:
    """What a verified status report of another party means for the session."""

    what: str  # "ack", "done", "progress" or "abort"
    port: int = 0  # ack: the party's MPC port
    message: str = ""  # progress
    error: SessionError | None = None  # abort
    remote: bool = True  # abort: the party reported it itself (no need to echo it)


def read_status(party: str, msg: Mapping[str, Any], cons: Consortium) -> StatusEvent | None:
    """The meaning of `party`'s report `msg` (already verified), None for nothing to do."""
    phase = msg.get("phase")
    if phase == ACK:
        port = msg.get("port")
        if (
            isinstance(port, bool)
            or not isinstance(port, int)
            or not cons.party(party).port_ok(port)
        ):
            error = SessionError(f"party {party} acknowledged with an MPC port outside its range")
            return StatusEvent("abort", error=error, remote=False)
        return StatusEvent("ack", port=port)
    if phase == REFUSE:
        why = _public(msg, party).removeprefix("refused: ")
        error = RefusedError(f"party {party} refused: {why}", why)
        return StatusEvent("abort", error=error)
    if phase == FAILED:
        message = f"party {party} failed: {_public(msg, party)}"
        error = error_of_kind(msg.get("kind"), message)
        if not isinstance(error, SessionError):  # another party's input is not ours
            error = SessionError(message)
        return StatusEvent("abort", error=error)
    if phase == DONE:
        return StatusEvent("done")
    if phase == PROGRESS:
        return StatusEvent("progress", message=f"{party}: {_text(msg, 'message')}")
    return None


def _text(msg: Mapping[str, Any], key: str = "reason") -> str:
    """Another party's words, without control characters or escape sequences."""
    value = msg.get(key, "")
    return clean_text(value) if isinstance(value, str) else ""


def _public(msg: Mapping[str, Any], party: str) -> str:
    """A report's public reason (`party: category`) without the party, which we name."""
    return _text(msg).removeprefix(f"{party}: ")
