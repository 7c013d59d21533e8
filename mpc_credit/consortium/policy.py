"""The consortium policy as one party enforces it: nonces, daily budgets, request checks.

Every party checks every request on its own, against the public consortium file and its own
clock and history; no party trusts another's word that a request is allowed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.messages import REQUEST_LABEL, SESSION_ID, Request, ids_digest
from mpc_credit.consortium.signing import verify
from mpc_credit.vocabulary import MODES, REVEALS

if TYPE_CHECKING:
    from mpc_credit.scorecard.model import Scorecard


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


DAY = 86_400.0


class QueryLedger:
    """Applicants each requester had scored (sessions accepted) in the last 24 hours."""

    def __init__(self) -> None:
        self._log: dict[str, list[tuple[float, int]]] = {}

    def add(self, requester: str, ts: float, count: int) -> None:
        self._log.setdefault(requester, []).append((ts, count))

    def used(self, requester: str, now: float) -> int:
        recent = [(t, c) for t, c in self._log.get(requester, []) if t > now - DAY]
        self._log[requester] = recent
        return sum(c for _, c in recent)


def check_request(
    req: Request,
    cons: Consortium,
    models: Mapping[tuple[str, str], Scorecard],
    nonces: NonceCache,
    *,
    ledger: QueryLedger | None = None,
    now: float | None = None,
) -> str | None:
    """Why this party refuses `req` (one line), or None if it accepts it.

    Checked in order: known requester, signature, consortium policy (reveal policy,
    batch size, the requester's daily budget in `ledger`), freshness (nonce,
    timestamp window, deadline), shape, and that this party holds the model digest.
    """
    now = time.time() if now is None else now
    if req.requester not in cons.names:
        return f"unknown requester {req.requester!r}"
    pub = cons.party(req.requester).public_key
    if not verify(REQUEST_LABEL, req.body(), pub):
        return f"bad signature on the request from {req.requester!r}"
    rule = cons.policy.requesters.get(req.requester)
    if rule is None:
        return f"the consortium policy does not allow {req.requester!r} to request scores"
    if req.reveal not in REVEALS or req.reveal not in rule.reveal:
        return (
            f"the consortium policy does not allow {req.requester!r} reveal policy {req.reveal!r}"
        )
    if req.receiver != req.requester:
        return "the receiver must be the requester itself"
    if req.count > rule.max_batch:
        return f"batch of {req.count} exceeds the policy's maximum of {rule.max_batch}"
    if rule.daily_budget is not None and ledger is not None:
        used = ledger.used(req.requester, now)
        if used + req.count > rule.daily_budget:
            return (
                f"{req.requester!r} has had {used} applicants scored in the last 24 hours; "
                f"{req.count} more exceed the daily budget of {rule.daily_budget}"
            )
    if nonces.seen(req.nonce):
        return "replayed request (nonce seen before)"
    window = cons.policy.timestamp_window
    if abs(now - req.ts) > window:
        off = now - req.ts
        return f"request timestamp is {off:+.0f} s off this party's clock (window {window:.0f} s)"
    if req.deadline <= now:
        return "the request's deadline has passed"
    if req.deadline - req.ts > cons.policy.max_session_seconds:
        return f"deadline beyond the policy's {cons.policy.max_session_seconds:.0f} s"
    if not SESSION_ID.match(req.session):
        return "malformed session id"
    if req.mode not in MODES:
        return f"unknown mode {req.mode!r}"
    if req.count < 1:
        return "no applicants requested"
    if req.ids is not None and (
        len(req.ids) != req.count or ids_digest(req.ids) != req.batch_digest
    ):
        return "the applicant ids do not match the request's count and digest"
    model = models.get((req.model_id, req.mode))
    if model is None:
        return f"no {req.mode}-mode model {req.model_id!r} here"
    if model.digest() != req.model_digest:
        return f"model {req.model_id!r} here has another digest than requested"
    known = cons.model(req.model_id)
    if known is None or known.digest != req.model_digest:
        return f"model {req.model_id!r} with that digest is not registered in the consortium"
    return None
