"""POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches/{id}/result: batch jobs.

The upload is the request body itself (CSV, plain id list or JSON lines, see `upload`), the
reveal policy, model and mode are query parameters: no multipart parsing, and the body limit
(16 MiB) applies to the ids alone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from mpc_credit.api.auth import allow
from mpc_credit.api.problems import Problem
from mpc_credit.api.schemas import BatchState, Mode, Reveal, problem_responses
from mpc_credit.api.services import CallerDep, services
from mpc_credit.api.upload import MEDIA_TYPES, media_type, parse_ids

router = APIRouter(tags=["batches"])
QUERY = frozenset({"reveal", "model", "mode"})
UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "description": "applicant ids: text/csv with the header applicant_id, text/plain one "
        'id per line, or application/x-ndjson lines {"applicant_id": ID}; at most 100,000',
        "content": {m: {"schema": {"type": "string"}} for m in MEDIA_TYPES},
    }
}


@router.post(
    "/v1/batches",
    status_code=202,
    response_model=BatchState,
    responses=problem_responses(400, 401, 403, 413, 415, 422, 429),
    openapi_extra=UPLOAD_DOC,
    summary="Start a batch job over uploaded applicant ids",
)
async def create_batch(
    request: Request,
    who: CallerDep,
    reveal: Reveal = "decision",
    model: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    mode: Mode = "shared",
) -> JSONResponse:
    """Upload applicant ids; the job runs one session over all of them. 202 with its id and
    a `Location` to poll."""
    svc = services(request)
    unknown = sorted(set(request.query_params) - QUERY)
    if unknown:
        raise Problem(422, "invalid-input", f"unknown query parameter {unknown[0][:40]!r}")
    request.state.reveal = reveal
    allow(who, reveal)
    kind = media_type(request.headers.get("content-type"))
    ids = parse_ids(await request.body(), kind)
    request.state.applicants = len(ids)
    view = await svc.catalog.resolve(model)
    if not svc.settings.party.control_socket.exists():
        raise svc.gateway.unavailable()
    job = svc.batches.submit(who.name, ids, reveal, mode, view)
    request.state.job = job.id
    return JSONResponse(job.view(), status_code=202, headers={"Location": f"/v1/batches/{job.id}"})


@router.get(
    "/v1/batches/{job_id}", response_model=BatchState, responses=problem_responses(401, 404, 429)
)
async def get_batch(job_id: str, request: Request, who: CallerDep) -> JSONResponse:
    """The job's state: queued, running (with the daemon's latest progress line), done (with
    the result's URL) or failed (with the problem)."""
    return JSONResponse(services(request).batches.get(who.name, job_id).view())


@router.get(
    "/v1/batches/{job_id}/result",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "the CSV `score --out` writes"},
        **problem_responses(401, 404, 409, 429),
    },
)
async def get_batch_result(job_id: str, request: Request, who: CallerDep) -> StreamingResponse:
    """The result as CSV: `applicant_id,<reveal columns>`, rows in upload order."""
    job = services(request).batches.get(who.name, job_id)
    request.state.reveal = job.reveal
    if job.state != "done":
        why = f"; {job.error.detail}" if job.error is not None else ""
        raise Problem(409, "not-ready", f"the job is {job.state}{why}", title="Result not ready")
    request.state.session = job.outcome.session if job.outcome else None
    return StreamingResponse(
        job.csv_chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="batch-{job.id}.csv"'},
    )
