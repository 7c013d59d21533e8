"""The server's one way to the daemon: its local control socket, as `mpc-credit score` uses it.

Each call is one connection to the Unix socket with one operation (the socket's protocol:
a request line, progress lines, one answer), through `mpc_credit.consortium.requester`, with
the party's configuration read once at start-up rather than per call. A connection costs
tens of microseconds on loopback (`scripts/bench_api.py` measures the whole path), so nothing
is pooled. At most `max_inflight` sessions are at the daemon at once: the daemon runs one
session at a time and refuses past its queue (16), so the server holds the rest back in order
instead of turning a burst into refusals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mpc_credit.api.metrics import Metrics
from mpc_credit.api.problems import Problem
from mpc_credit.consortium.config import PartyConfig
from mpc_credit.consortium.requester import ScoreOutcome, daemon_status, score_request
from mpc_credit.errors import MpcCreditError, SessionError


@dataclass(frozen=True)
class Readiness:
    """Whether a decision can be had now, and if not why (one line)."""

    ready: bool
    reason: str
    status: dict[str, Any] | None


class DaemonGateway:
    """Scoring and status through the daemon of party `cfg`."""

    def __init__(
        self, cfg: PartyConfig, metrics: Metrics, *, max_inflight: int, status_timeout: float
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.status_timeout = status_timeout
        self._slots = asyncio.Semaphore(max_inflight)

    def unavailable(self) -> Problem:
        return Problem(
            503,
            "daemon-unavailable",
            f"party {self.cfg.party}'s daemon is not running "
            f"(no control socket {self.cfg.control_socket.name})",
            kind="failed",
        )

    async def score(
        self,
        ids: Sequence[str],
        *,
        reveal: str,
        mode: str,
        model_id: str | None,
        timeout: float,
        progress: Callable[[str], None] | None = None,
    ) -> ScoreOutcome:
        """The daemon's result for `ids`; MpcCreditError (the daemon's) or a 503 Problem."""
        if not self.cfg.control_socket.exists():
            raise self.unavailable()
        self.metrics.waiting.inc()
        try:
            await self._slots.acquire()
        finally:
            self.metrics.waiting.dec()
        self.metrics.inflight.inc()
        t0 = time.perf_counter()
        try:
            out = await score_request(
                self.cfg,
                ids,
                reveal=reveal,
                mode=mode,
                model_id=model_id,
                timeout=timeout,
                progress=progress,
            )
        except SessionError:
            if not self.cfg.control_socket.exists():
                raise self.unavailable() from None
            raise
        finally:
            self._slots.release()
            self.metrics.inflight.dec()
        self.metrics.session_latency.labels(reveal).observe(time.perf_counter() - t0)
        return out

    async def status(self) -> dict[str, Any] | None:
        """The daemon's status, None when it does not answer within the status timeout."""
        try:
            return await asyncio.wait_for(daemon_status(self.cfg), self.status_timeout)
        except (MpcCreditError, OSError, asyncio.TimeoutError, ValueError):
            return None

    async def readiness(self, parties: Sequence[str]) -> Readiness:
        """Ready when the daemon answers, is connected to the broker, is not draining, sees
        every party of `parties` online, and serves the registry's champion (its file matches
        the digest the registry signed)."""
        st = await self.status()
        if st is None:
            return Readiness(False, self.unavailable().detail, None)
        me = self.cfg.party
        if not st.get("connected"):
            return Readiness(False, f"party {me}'s daemon is not connected to the broker", st)
        if st.get("stopping"):
            return Readiness(False, f"party {me}'s daemon is shutting down", st)
        presence = st.get("presence") if isinstance(st.get("presence"), dict) else {}
        absent = [p for p in parties if presence.get(p) != "online"]
        if absent:
            states = ", ".join(f"{p} ({presence.get(p, 'never seen')})" for p in absent)
            return Readiness(False, f"party {states} not online", st)
        unserved = _champion_unserved(st)
        if unserved is not None:
            return Readiness(False, f"party {me} cannot serve the champion model: {unserved}", st)
        return Readiness(True, "ready", st)


def _champion_unserved(st: dict[str, Any]) -> str | None:
    """Why the daemon cannot serve the registry's champion (the model a request without one
    takes), from its status; None when it can (or the daemon does not say)."""
    models = st.get("models")
    if not isinstance(models, list):
        return None
    champion = next(
        (m for m in models if isinstance(m, dict) and m.get("status") == "champion"), None
    )
    if champion is not None and champion.get("offered"):
        return None
    problems = [p for p in st.get("model_problems", []) if isinstance(p, str)]
    return problems[0] if problems else "no champion model in service"
