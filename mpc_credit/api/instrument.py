"""Every call measured and, under /v1/, written to the access log (ASGI middleware).

Routes and error handlers leave what they know on the request's state (`reveal`,
`applicants`, `session`, `job`, `caller`; `outcome` and `reason` for a problem); this
middleware turns it, with the status and the time taken, into the metrics (by route template,
never the raw path) and one access log line.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mpc_credit.api.access_log import AccessLog
from mpc_credit.api.metrics import Metrics


class Instrument:
    def __init__(self, app: ASGIApp, metrics: Metrics, access: AccessLog) -> None:
        self.app, self.metrics, self.access = app, metrics, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500
            state = scope.setdefault("state", {})
            state.setdefault("outcome", "internal")
            raise
        finally:
            self._record(scope, status, time.perf_counter() - t0)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        outcome = "ok" if status < 400 else str(state.get("outcome", f"http-{status}"))
        reveal = str(state.get("reveal", ""))
        self.metrics.requests.labels(route, outcome, reveal).inc()
        self.metrics.latency.labels(route).observe(seconds)
        if state.get("reason"):
            self.metrics.refusals.labels(str(state["reason"])).inc()
        if not route.startswith("/v1/"):
            return
        caller = state.get("caller")
        client = scope.get("client")
        self.access.write(
            client=getattr(caller, "name", None),
            via=getattr(caller, "via", None),
            remote=client[0] if client else None,
            method=scope["method"],
            route=route,
            status=status,
            outcome=outcome,
            reveal=reveal or None,
            applicants=state.get("applicants"),
            session=state.get("session"),
            job=state.get("job"),
            ms=round(1000 * seconds, 1),
        )
