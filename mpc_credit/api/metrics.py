"""Prometheus metrics of one server: its calls, its sessions and what the daemon reports.

Own registry per app (tests build several apps in one process). Labels stay bounded: the
route template (not the path), the outcome (`ok` or the problem's type slug), the reveal
policy, the refusal category (`problems.reason_label`). The daemon's gauges (connected,
parties online, its queue, this party's daily budget used and left when the policy sets one)
are read from its `status` operation when /metrics is scraped.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

NS = "mpc_credit_api"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    """The server's metrics, in their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{NS}_requests",
            "HTTP calls by route, outcome (ok or the problem type) and reveal policy",
            ["route", "outcome", "reveal"],
            registry=r,
        )
        self.latency = Histogram(
            f"{NS}_request_seconds",
            "HTTP call latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.session_latency = Histogram(
            f"{NS}_session_seconds",
            "Time from the daemon's control socket to its result, by reveal policy",
            ["reveal"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.applicants = Counter(
            f"{NS}_applicants", "Applicants with a result, by reveal policy", ["reveal"], registry=r
        )
        self.refusals = Counter(
            f"{NS}_refusals",
            "Calls refused, by reason (the consortium's categories and the server's own)",
            ["reason"],
            registry=r,
        )
        self.waiting = Gauge(
            f"{NS}_sessions_waiting",
            "Sessions this server holds back until one of its in-flight slots frees",
            registry=r,
        )
        self.inflight = Gauge(
            f"{NS}_sessions_inflight", "Sessions this server has at the daemon", registry=r
        )
        self.jobs = Gauge(f"{NS}_batch_jobs", "Batch jobs by state", ["state"], registry=r)
        d = "mpc_credit_daemon"
        self.daemon_up = Gauge(f"{d}_up", "1 when the daemon answered its status", registry=r)
        self.daemon_connected = Gauge(
            f"{d}_broker_connected", "1 when the daemon is connected to the broker", registry=r
        )
        self.parties_online = Gauge(
            f"{d}_parties_online", "Parties the daemon sees online", registry=r
        )
        self.daemon_queued = Gauge(f"{d}_sessions_queued", "Sessions in its queue", registry=r)
        self.daemon_busy = Gauge(f"{d}_busy", "1 while it runs a session", registry=r)
        self.budget_used = Gauge(
            f"{d}_daily_budget_used",
            "Applicants this party (as requester) had scored in the last 24 hours",
            ["party"],
            registry=r,
        )
        self.budget_left = Gauge(
            f"{d}_daily_budget_left",
            "Applicants this party may still have scored in the last 24 hours' window "
            "(absent when the policy sets no daily budget)",
            ["party"],
            registry=r,
        )

    def observe_status(self, status: dict[str, Any] | None) -> None:
        """Set the daemon's gauges from its status (None: it did not answer)."""
        self.daemon_up.set(0 if status is None else 1)
        if status is None:
            return
        presence = status.get("presence")
        online = sum(v == "online" for v in presence.values()) if isinstance(presence, dict) else 0
        self.daemon_connected.set(1 if status.get("connected") else 0)
        self.parties_online.set(online)
        self.daemon_queued.set(_number(status.get("queued")))
        self.daemon_busy.set(1 if status.get("busy") else 0)
        budget, party = status.get("budget"), str(status.get("party", ""))
        if isinstance(budget, dict) and party:
            used = _number(budget.get("used"))
            self.budget_used.labels(party).set(used)
            daily = budget.get("daily")
            if isinstance(daily, int) and not isinstance(daily, bool):
                self.budget_left.labels(party).set(max(0, daily - used))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0
