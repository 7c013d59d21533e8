"""Stalls: who left a session waiting, and whose requests are refused for it; pure, no I/O.

A session stalls when, `policy.connect_seconds` after it became a party's current one, some
party has not acknowledged it or not joined its MPC links: it aborts everywhere naming them
(runner.py). Each party keeps, per party, how many sessions stalled on it (`party status`
shows them), and per requester the times of its own sessions it stalled itself: a requester
with `policy.max_stalls` of those in the last `STALL_WINDOW` seconds has its new requests
refused until the oldest of them leaves the window (`refusal`). The audit's `aborted` line
names the stallers (`stalled`), so a restart rebuilds the book from the log (`restore`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mpc_credit.consortium.reasons import Refusal, stalled

STALL_WINDOW = 600.0  # seconds in which a requester's stalls count


def refusal(requester: str, times: Sequence[float], max_stalls: int, now: float) -> Refusal | None:
    """Refuse a requester that stalled `max_stalls` of its own sessions in the last window."""
    recent = [t for t in times if now - t < STALL_WINDOW]
    if len(recent) < max_stalls:
        return None
    minutes = round(STALL_WINDOW / 60)
    text = stalled(requester, len(recent), minutes)
    return Refusal(f"{text}; refused for {STALL_WINDOW - (now - min(recent)):.0f} s more", text)


class StallBook:
    """Per party, the sessions that stalled on it; per requester, when its own stalled."""

    def __init__(self, keep: int = 64) -> None:
        self.counts: Counter[str] = Counter()
        self._own: dict[str, deque[float]] = {}
        self._keep = keep

    def record(self, requester: str, stallers: Iterable[str], now: float) -> None:
        """A session of `requester` aborted because `stallers` did not connect in time."""
        names = set(stallers)
        self.counts.update(names)
        if requester in names:
            self._own.setdefault(requester, deque(maxlen=self._keep)).append(now)

    def times(self) -> Mapping[str, Sequence[float]]:
        """Per requester, when its own sessions stalled on it (newest last)."""
        return self._own

    def restore(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild from audit records (`audit.iter_records`): `aborted` lines naming the
        `stalled` parties, at their line's time."""
        for r in records:
            names, ts = r.get("stalled"), r.get("ts")
            if r.get("outcome") == "aborted" and isinstance(names, list):
                when = float(ts) if type(ts) in (int, float) else 0.0
                self.record(str(r.get("requester")), map(str, names), when)
