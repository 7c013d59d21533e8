"""The consortium policy as one party enforces it: nonces, budgets, per-applicant limits, checks.

Every party checks every request on its own, against the public consortium file and its own
clock and history; no party trusts another's word that a request is allowed. The checks fail
closed: each is written so that a NaN (with which every comparison is False) refuses, and none
relies on the parser having run, so a request built another way (`Request.from_dict`) cannot
slip through either. What a party accepts is charged at its own clock (`record_accepted`),
never at the time the request claims; the ledger can be rebuilt from the party's audit log
with `QueryLedger.add` and `add_applicants` at the times the log recorded.

Refusals are `Refusal` strings: the full reason for this party's log and its local client,
and a public category for the broker (mpc_credit.consortium.reasons).
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from mpc_credit.consortium import reasons as why
from mpc_credit.consortium.config import Consortium, Policy
from mpc_credit.consortium.fields import clean_text, is_identifier
from mpc_credit.consortium.messages import (
    MAX_COUNT,
    MAX_INLINE_IDS,
    REQUEST_LABEL,
    SESSION_ID,
    Request,
    ids_digest,
)
from mpc_credit.consortium.reasons import Refusal
from mpc_credit.consortium.signing import verify
from mpc_credit.vocabulary import MODES, REVEALS

if TYPE_CHECKING:
    from mpc_credit.scorecard.model import Scorecard

DAY = 86_400.0
SWEEP = 3_600.0  # seconds between sweeps of applicants no longer counted


class NonceCache:
    """Nonces seen within the timestamp window (older requests are refused by time)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, nonce: str) -> bool:
        return nonce in self._seen

    def add(self, nonce: str, ts: float) -> None:
        self._seen[nonce] = ts
        horizon = time.time() - 2 * self.window - 60
        while self._seen:
            first, t = next(iter(self._seen.items()))
            if t >= horizon:
                break
            self._seen.pop(first)


class QueryLedger:
    """What this party accepted in the last 24 hours, at its own clock: applicants per
    requester (the daily budgets) and scorings per applicant (the per-applicant limit)."""

    def __init__(self) -> None:
        self._log: dict[str, list[tuple[float, int]]] = {}
        self._applicants: dict[str, list[float]] = {}
        self._swept = 0.0

    def add(self, requester: str, ts: float, count: int) -> None:
        """Charge `count` applicants to `requester` at local time `ts`."""
        self._log.setdefault(requester, []).append((ts, count))

    def used(self, requester: str, now: float) -> int:
        """Applicants charged to `requester` in the 24 hours before `now`."""
        recent = [(t, c) for t, c in self._log.get(requester, []) if t > now - DAY]
        self._log[requester] = recent
        return sum(c for _, c in recent)

    def add_applicants(self, ids: Iterable[str], ts: float) -> None:
        """Count one scoring of each of `ids` at local time `ts`."""
        for a in ids:
            self._applicants.setdefault(a, []).append(ts)
        if ts - self._swept > SWEEP:
            self._sweep(ts)

    def applicant_uses(self, applicant: str, now: float) -> int:
        """How often `applicant` was scored in the 24 hours before `now`."""
        times = self._applicants.get(applicant)
        if not times:
            return 0
        recent = [t for t in times if t > now - DAY]
        if recent:
            self._applicants[applicant] = recent
        else:
            del self._applicants[applicant]
        return len(recent)

    def _sweep(self, now: float) -> None:
        self._swept = now
        old = [a for a, times in self._applicants.items() if max(times) <= now - DAY]
        for a in old:
            del self._applicants[a]


def record_accepted(
    req: Request, nonces: NonceCache, ledger: QueryLedger, *, now: float | None = None
) -> None:
    """Remember an accepted request: its nonce, its charge to the requester's daily budget
    and (inline ids) each applicant's scoring, all at this party's clock `now`."""
    now = time.time() if now is None else now
    nonces.add(req.nonce, req.ts)
    ledger.add(req.requester, now, req.count)
    if req.ids is not None:
        ledger.add_applicants(req.ids, now)


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


def _fresh(req: Request, policy: Policy, nonces: NonceCache, now: float) -> Refusal | None:
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


def _model(
    req: Request, cons: Consortium, models: Mapping[tuple[str, str], Scorecard]
) -> Refusal | None:
    """This party holds the requested model, with the digest registered in the consortium."""
    model = models.get((req.model_id, req.mode))
    if model is None:
        return Refusal(f"no {req.mode}-mode model {req.model_id!r} here", why.MODEL)
    if model.digest() != req.model_digest:
        return Refusal(f"model {req.model_id!r} here has another digest than requested", why.MODEL)
    known = cons.model(req.model_id)
    if known is None or known.digest != req.model_digest:
        return Refusal(
            f"model {req.model_id!r} with that digest is not registered in the consortium",
            why.MODEL,
        )
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
    reveal policy; freshness on this party's clock; the budgets in `ledger`; the model.
    On acceptance the caller charges it with `record_accepted`.
    """
    now = time.time() if now is None else now
    return (
        _shape(req)
        or _allowed(req, cons)
        or _fresh(req, cons.policy, nonces, now)
        or _within_budgets(req, cons.policy, ledger, now)
        or _model(req, cons, models)
    )
