"""The consortium policy as one party enforces it: nonces, budgets, per-applicant limits, checks.

Every party checks every request on its own, against the public consortium file and its own
clock and history; no party trusts another's word that a request is allowed. The checks fail
closed: each is written so that a NaN (with which every comparison is False) refuses, and none
relies on the parser having run, so a request built another way (`Request.from_dict`) cannot
slip through either. What a party accepts is charged at its own clock, never at the time the
request claims: mpc_credit.consortium.ledger keeps what a party accepted (`record_accepted`)
and rebuilds it from the audit log (`restore`); its older names are re-exported here.

A training request (`check_train`) is checked for its shape, a trainer of the policy with its
signature, and freshness by the same `_fresh` as a scoring request; its nonce is remembered
and restored from the audit log like any other. The party's privacy budget is its own
(daemon/train_job.py). The policy's prohibited characteristics (`prohibited_features`) are
no refusal: every party leaves them out of every run it joins (`exclusion`, used by
daemon/train_job.py), so such a column of a party's CSV never leaves it whatever the job says;
`prohibited_in` finds them among any feature names (a trained model's, for instance).

Refusals are `Refusal` strings: the full reason for this party's log and its local client,
and a public category for the broker (mpc_credit.consortium.reasons).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from mpc_credit.consortium import reasons as why
from mpc_credit.consortium.config import Consortium, Policy
from mpc_credit.consortium.fields import clean_text, is_identifier
from mpc_credit.consortium.ledger import DAY as DAY
from mpc_credit.consortium.ledger import NonceCache as NonceCache
from mpc_credit.consortium.ledger import QueryLedger as QueryLedger
from mpc_credit.consortium.messages import (
    MAX_COUNT,
    MAX_INLINE_IDS,
    REQUEST_LABEL,
    SESSION_ID,
    Request,
    ids_digest,
)
from mpc_credit.consortium.publish_request import PUBLISH_LABEL, PublishRequest
from mpc_credit.consortium.reasons import Refusal
from mpc_credit.consortium.signing import verify
from mpc_credit.consortium.train_request import TRAIN_LABEL, TrainJob, TrainRequest
from mpc_credit.vocabulary import MODES, REVEALS

if TYPE_CHECKING:
    from mpc_credit.scorecard.model import Scorecard


def check_applicants(
    ids: Sequence[str], ledger: QueryLedger, policy: Policy, now: float
) -> Refusal | None:
    """Why scoring `ids` now would exceed the per-applicant limit, or None.

    For a batch the daemon calls it once the ids arrived over the MPC links, and then
    records them with `ledger.add_applicants`; inline ids are checked by `check_request`.
    """
    limit = policy.per_applicant_daily
    if limit is None:
        return None
    for applicant, times in Counter(ids).items():
        used = ledger.applicant_uses(applicant, now)
        if not used + times <= limit:
            return Refusal(
                f"applicant {clean_text(str(applicant), 64)!r} was scored {used} times in the "
                f"last 24 hours; {times} more exceed the limit of {limit} per applicant",
                why.PER_APPLICANT,
            )
    return None


def _shape(req: Request) -> Refusal | None:
    """The request's own consistency: types, bounds, finite times, ids matching count."""
    if not (isinstance(req.session, str) and SESSION_ID.fullmatch(req.session)):
        return Refusal("malformed session id", why.MALFORMED)
    if type(req.count) is not int or not 1 <= req.count <= MAX_COUNT:
        return Refusal(f"the applicant count is not from 1 to {MAX_COUNT}", why.MALFORMED)
    if not all(type(x) is float and math.isfinite(x) for x in (req.ts, req.deadline)):
        return Refusal("the request's timestamp or deadline is not a finite time", why.MALFORMED)
    if req.mode not in MODES:
        return Refusal(f"unknown mode {clean_text(str(req.mode), 16)!r}", why.MALFORMED)
    if req.ids is not None and not (
        len(req.ids) <= MAX_INLINE_IDS
        and len(req.ids) == req.count
        and all(is_identifier(a) for a in req.ids)
        and ids_digest(req.ids) == req.batch_digest
    ):
        return Refusal(
            "the applicant ids do not match the request's count and digest", why.MALFORMED
        )
    return None


def _allowed(req: Request, cons: Consortium) -> Refusal | None:
    """Known requester, allowed to ask, within its batch size, and the signature."""
    if req.requester not in cons.names:
        return Refusal(
            f"unknown requester {clean_text(str(req.requester), 32)!r}", why.UNKNOWN_REQUESTER
        )
    rule = cons.policy.requesters.get(req.requester)
    if rule is None:
        return Refusal(
            f"the consortium policy does not allow {req.requester!r} to request scores",
            why.NOT_ALLOWED,
        )
    if not req.count <= rule.max_batch:
        return Refusal(
            f"batch of {req.count} exceeds the policy's maximum of {rule.max_batch}",
            why.BATCH_TOO_LARGE,
        )
    if not verify(REQUEST_LABEL, req.body(), cons.party(req.requester).public_key):
        return Refusal(f"bad signature on the request from {req.requester!r}", why.BAD_SIGNATURE)
    if req.reveal not in REVEALS or req.reveal not in rule.reveal:
        shown = clean_text(str(req.reveal), 16)
        return Refusal(
            f"the consortium policy does not allow {req.requester!r} reveal policy {shown!r}",
            why.NOT_ALLOWED,
        )
    if req.receiver != req.requester:
        return Refusal("the receiver must be the requester itself", why.NOT_ALLOWED)
    return None


def _fresh(
    req: Request | TrainRequest | PublishRequest, policy: Policy, nonces: NonceCache, now: float
) -> Refusal | None:
    """Not replayed, timestamp within the window, deadline ahead but within the longest
    session, both measured on this party's clock."""
    if nonces.seen(req.nonce):
        return Refusal("replayed request (nonce seen before)", why.REPLAYED)
    window = policy.timestamp_window
    if not abs(now - req.ts) <= window:
        off = now - req.ts
        return Refusal(
            f"request timestamp is {off:+.0f} s off this party's clock (window {window:.0f} s)",
            why.CLOCK,
        )
    if not now < req.deadline:
        return Refusal("the request's deadline has passed", why.DEADLINE)
    if not req.deadline <= now + policy.max_session_seconds:
        return Refusal(
            f"deadline beyond the policy's {policy.max_session_seconds:.0f} s from now",
            why.DEADLINE,
        )
    return None


DEADLINE_SLACK = 0.001  # seconds: a deadline signed as `ts + ceiling` is within the ceiling


def deadline_ceiling(policy: Policy, count: int | None) -> tuple[float, str]:
    """The longest deadline a request may ask for, in seconds after its timestamp, and the
    rule's name: one applicant `max_decision_seconds`; a batch of `count` that plus
    `per_applicant_seconds` each; training (`count` None) `max_session_seconds`; never more
    than `max_session_seconds`."""
    longest = policy.max_session_seconds
    if count is None:
        return longest, "max_session_seconds"
    if count == 1:
        return min(policy.max_decision_seconds, longest), "max_decision_seconds for one applicant"
    grown = policy.max_decision_seconds + policy.per_applicant_seconds * count
    rule = f"max_decision_seconds + per_applicant_seconds x {count} applicants"
    return (grown, rule) if grown <= longest else (longest, "max_session_seconds")


def _ceiling(req: Request, policy: Policy) -> Refusal | None:
    """The deadline the request asks for (after its own timestamp, so no clock enters)
    within the ceiling for its count (`deadline_ceiling`)."""
    ceiling, rule = deadline_ceiling(policy, req.count)
    asked = req.deadline - req.ts
    if not asked <= ceiling + DEADLINE_SLACK:
        return Refusal(
            f"a deadline {asked:.0f} s after the request is beyond the policy's {ceiling:.0f} s "
            f"({rule})",
            why.DEADLINE,
        )
    return None


def _within_budgets(
    req: Request, policy: Policy, ledger: QueryLedger | None, now: float
) -> Refusal | None:
    """The requester's daily budget, and (inline ids) the per-applicant limit."""
    if ledger is None:
        return None
    budget = policy.requesters[req.requester].daily_budget
    if budget is not None:
        used = ledger.used(req.requester, now)
        if not used + req.count <= budget:
            return Refusal(
                f"{req.requester!r} has had {used} applicants scored in the last 24 hours; "
                f"{req.count} more exceed the daily budget of {budget}",
                why.DAILY_BUDGET,
            )
    if req.ids is not None:
        return check_applicants(req.ids, ledger, policy, now)
    return None


def _model(req: Request, models: Mapping[tuple[str, str], Scorecard]) -> Refusal | None:
    """This party serves the requested version (ID@VERSION) in the requested mode, with the
    requested digest: `models` holds only versions the registry has in service whose files
    match the digests their owner signed (daemon/models.py)."""
    model = models.get((req.model_id, req.mode))
    if model is None:
        return Refusal(f"no {req.mode}-mode model {req.model_id!r} in service here", why.MODEL)
    if model.digest() != req.model_digest:
        return Refusal(f"model {req.model_id!r} here has another digest than requested", why.MODEL)
    return None


def check_request(
    req: Request,
    cons: Consortium,
    models: Mapping[tuple[str, str], Scorecard],
    nonces: NonceCache,
    *,
    ledger: QueryLedger | None = None,
    now: float | None = None,
) -> Refusal | None:
    """Why this party refuses `req` (one line, with a public category), or None to accept.

    In order, cheapest first: the request's shape; requester, batch size, signature and
    reveal policy; freshness on this party's clock; the deadline's ceiling for its count;
    the budgets in `ledger`; the model.
    On acceptance the caller charges it with `ledger.record_accepted`.
    """
    now = time.time() if now is None else now
    return (
        _shape(req)
        or _allowed(req, cons)
        or _fresh(req, cons.policy, nonces, now)
        or _ceiling(req, cons.policy)
        or _within_budgets(req, cons.policy, ledger, now)
        or _model(req, models)
    )


def check_train(
    req: TrainRequest, cons: Consortium, nonces: NonceCache, *, now: float | None = None
) -> Refusal | None:
    """Why this party refuses the training request `req` under the consortium policy, or None.

    The request's shape; a trainer of the policy with its valid signature; freshness on this
    party's clock exactly as for a scoring request. The party's own conditions (training data
    configured, its privacy budget) are the daemon's (daemon/train_job.py).
    """
    now = time.time() if now is None else now
    if not (isinstance(req.session, str) and SESSION_ID.fullmatch(req.session)):
        return Refusal("malformed session id", why.MALFORMED)
    if not all(type(x) is float and math.isfinite(x) for x in (req.ts, req.deadline)):
        return Refusal("the request's timestamp or deadline is not a finite time", why.MALFORMED)
    if not isinstance(req.job, TrainJob):
        return Refusal("the training job is malformed", why.MALFORMED)
    if req.requester not in cons.names:
        return Refusal(
            f"unknown requester {clean_text(str(req.requester), 32)!r}", why.UNKNOWN_REQUESTER
        )
    if req.requester not in cons.policy.trainers:
        return Refusal(
            f"the consortium policy does not allow {req.requester!r} to train", why.NOT_ALLOWED
        )
    if not verify(TRAIN_LABEL, req.body(), cons.party(req.requester).public_key):
        return Refusal(f"bad signature on the request from {req.requester!r}", why.BAD_SIGNATURE)
    return _fresh(req, cons.policy, nonces, now)


def check_publish(
    req: PublishRequest, cons: Consortium, nonces: NonceCache, *, now: float | None = None
) -> Refusal | None:
    """Why this party refuses the publish request `req` under the consortium policy, or None:
    a party of the consortium with its valid signature, fresh as any request. Whether the
    registry takes the version (a model owner, a newer version, no prohibited feature) is the
    daemon's check (daemon/admission.py), against its registry."""
    now = time.time() if now is None else now
    if not all(type(x) is float and math.isfinite(x) for x in (req.ts, req.deadline)):
        return Refusal("the request's timestamp or deadline is not a finite time", why.MALFORMED)
    if req.requester not in cons.names:
        return Refusal(
            f"unknown requester {clean_text(str(req.requester), 32)!r}", why.UNKNOWN_REQUESTER
        )
    if not verify(PUBLISH_LABEL, req.body(), cons.party(req.requester).public_key):
        return Refusal(f"bad signature on the request from {req.requester!r}", why.BAD_SIGNATURE)
    return _fresh(req, cons.policy, nonces, now)


def _feature_key(name: str) -> str:
    """A feature name as the policy matches it: whole, ignoring case and surrounding spaces."""
    return name.strip().casefold()


def prohibited_in(names: Iterable[str], cons: Consortium) -> list[str]:
    """The names among `names` that the consortium policy prohibits (`prohibited_features`),
    in their order, each once; a name matches whole, ignoring case and surrounding spaces
    ("Sex" is "sex", "sex_code" is not)."""
    banned = {_feature_key(p) for p in cons.policy.prohibited_features}
    out: list[str] = []
    for name in names:
        if _feature_key(name) in banned and name not in out:
            out.append(name)
    return out


def exclusion(job: TrainJob, cons: Consortium, columns: Iterable[str] = ()) -> tuple[str, ...]:
    """The features a party leaves out of the training run `job`: the job's `exclude`, the
    policy's `prohibited_features`, and the party's own `columns` (its CSV header) that the
    policy prohibits under another spelling of case or spaces; in that order, each once."""
    out = dict.fromkeys(job.exclude)
    out.update(dict.fromkeys(cons.policy.prohibited_features))
    out.update(dict.fromkeys(prohibited_in(columns, cons)))
    return tuple(out)
