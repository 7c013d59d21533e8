"""What one party remembers of the requests it accepted: nonces, budgets used, applicants scored.

All times are this party's own clock at acceptance (or the time its audit log recorded), never
the time a request claims, so a request cannot date itself out of a budget. `restore` rebuilds
the memory from the audit log after a restart: no replay window opens, no budget resets.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from mpc_credit.consortium.messages import Request

DAY = 86_400.0
SWEEP = 3_600.0  # seconds between sweeps of applicants no longer counted
CHARGED = ("accepted", "done", "aborted")  # audit outcomes of sessions a party accepted
APPLICANTS = "applicants"  # audit outcome of a batch's ids, recorded once they arrived


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


def restore(
    records: Iterable[Mapping[str, Any]],
    nonces: NonceCache,
    ledger: QueryLedger,
    *,
    now: float | None = None,
) -> None:
    """Rebuild the nonces and the ledger from this party's audit records, oldest first.

    Per record it reads `ts` (the local time the party wrote it), `outcome`, `session`,
    `requester`, `count`, `nonce`, `request_ts` and `ids`. Every nonce of the last window is
    remembered (one with an unreadable time too: fail closed); a session with an outcome in
    CHARGED is charged once, at its first such record's time, and its ids are counted once:
    inline ids from its first record that lists them, a batch's from every APPLICANTS record
    (one per part of the batch). Malformed records are skipped.
    """
    now = time.time() if now is None else now
    horizon = now - 2 * nonces.window - 60
    charged: dict[str, float] = {}
    counted: set[str] = set()
    for rec in records:
        nonce, sent = rec.get("nonce"), _time(rec.get("request_ts"))
        if isinstance(nonce, str) and (sent is None or sent >= horizon):
            nonces.add(nonce, now if sent is None else sent)
        session, at = rec.get("session"), _time(rec.get("ts"))
        if not isinstance(session, str) or at is None:
            continue
        if at <= now - DAY:
            continue
        requester, count = rec.get("requester"), rec.get("count")
        if (
            rec.get("outcome") in CHARGED
            and session not in charged
            and isinstance(requester, str)
            and type(count) is int
        ):
            charged[session] = at
            ledger.add(requester, at, count)
        ids = rec.get("ids")
        part = rec.get("outcome") == APPLICANTS
        if session in charged and (part or session not in counted) and isinstance(ids, list):
            if not part:
                counted.add(session)
            ledger.add_applicants((a for a in ids if isinstance(a, str)), charged[session])


def _time(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else None
