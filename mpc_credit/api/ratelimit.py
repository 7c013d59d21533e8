"""Per-client rate limits: a token bucket per client name, in memory.

A client may make `rate_per_minute` calls in a burst and then that many per minute, spread
evenly (the bucket refills continuously). One server process holds the buckets; a restart
refills them, which is acceptable because the consortium's own daily budget (charged by every
party at its own clock) is the limit that counts for privacy; this one protects the daemon's
queue and the other institutions from a runaway client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    level: float
    stamp: float


class RateLimiter:
    """`take(name, rate)`: 0 when the call may go ahead, else the seconds until it may."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def take(self, name: str, rate_per_minute: int, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        cap = float(rate_per_minute)
        b = self._buckets.get(name)
        if b is None:
            b = self._buckets[name] = _Bucket(cap, t)
        b.level = min(cap, b.level + (t - b.stamp) * cap / 60.0)
        b.stamp = t
        if b.level >= 1.0:
            b.level -= 1.0
            return 0.0
        return (1.0 - b.level) * 60.0 / cap
