"""GET /healthz, /readyz and /metrics: for the orchestrator and the monitoring, no credentials.

/healthz says the process serves. /readyz asks the daemon's status over the control socket:
200 when the daemon answers, is connected to its broker and sees every party online, else
503 with the reason (which party is not online, or that the daemon is not running). /metrics
is Prometheus text; the daemon's gauges are refreshed from its status at each scrape.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mpc_credit.api.problems import Problem
from mpc_credit.api.schemas import Health, Ready, problem_responses
from mpc_credit.api.services import services

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The server process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=problem_responses(503))
async def readyz(request: Request) -> JSONResponse:
    """Ready to decide: the daemon reachable, its broker connected, every party present."""
    svc = services(request)
    r = await svc.gateway.readiness(svc.parties)
    svc.metrics.observe_status(r.status)
    if not r.ready:
        raise Problem(503, "not-ready", r.reason, title="Not ready")
    party = svc.settings.party.party
    return JSONResponse({"status": "ready", "party": party, "parties": list(svc.parties)})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this server and its daemon."""
    svc = services(request)
    svc.metrics.observe_status(await svc.gateway.status())
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
