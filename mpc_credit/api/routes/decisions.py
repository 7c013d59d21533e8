"""POST /v1/decisions: a result for a few applicants now, one MPC session per call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mpc_credit.api.auth import allow
from mpc_credit.api.schemas import DecisionRequest, DecisionResponse, problem_responses
from mpc_credit.api.services import CallerDep, services

router = APIRouter(tags=["decisions"])


@router.post(
    "/v1/decisions",
    response_model=DecisionResponse,
    responses=problem_responses(400, 401, 403, 413, 422, 429, 502, 503, 504),
    summary="Score, decide or explain applicants through the consortium",
)
async def decide(body: DecisionRequest, request: Request, who: CallerDep) -> JSONResponse:
    """Ask this party's daemon for the applicants' results under a reveal policy.

    Only this institution receives the result. The records are in request order, with the
    fields of `mpc-credit score --json`. The response's `X-Session-Id` header names the
    session in every party's audit log.
    """
    svc = services(request)
    request.state.reveal = body.reveal
    request.state.applicants = len(body.applicants)
    allow(who, body.reveal)
    out = await svc.gateway.score(  # the daemon resolves the model: the registry's champion,
        body.applicants,  # an id's version in service, or ID@VERSION
        reveal=body.reveal,
        mode=body.mode,
        model_id=body.model,
        timeout=svc.settings.session_timeout,
    )
    request.state.session = out.session
    svc.metrics.applicants.labels(body.reveal).inc(len(body.applicants))
    model = {"id": out.model, "digest": out.model_digest}  # the version it came from
    doc = {"model": model, "results": out.result.records()}
    return JSONResponse(doc, headers={"X-Session-Id": out.session})
