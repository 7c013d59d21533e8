"""A Python client of `mpc-credit serve`: `Client` (sync) and `AsyncClient` (async), on httpx.

    from mpc_credit.client import Client, RefusedError

    with Client("http://127.0.0.1:8080", token="mpcc_...") as api:
        print(api.ready())                                  # Readiness(ready=True, ...)
        d = api.decide("A0191")                             # DecisionResult
        print(d.applicant_id, d.decision)                   # A0191 approve
        out = api.decisions(["A0191", "A0922"], reveal="reasons")
        for r in out.results:                               # ReasonsResult, model in out.model
            for reason in r.reasons:                        # Reason(code, text)
                print(r.applicant_id, reason.code, reason.text)
        job = api.submit_batch(ids, reveal="decision")      # a batch job over many ids
        csv_text = api.batch_result(api.wait_batch(job.id).id)

Results are typed (`ScoreResult`, `DecisionResult`, `ReasonsResult` of `Reason`s, `PdResult`,
`Model`);
every error response becomes an `ApiError` subclass carrying the problem details
(`.status`, `.type`, `.title`, `.detail`, `.problem`). `AsyncClient` has the same methods as
coroutines. Mutual TLS: pass `verify=ctx`, an `ssl.SSLContext` with the server's CA and the
client's certificate (`ctx.load_cert_chain("client.crt", "client.key")`), and no token.
"""

from __future__ import annotations

from mpc_credit.client.aio import AsyncClient
from mpc_credit.client.errors import (
    ApiError,
    BadRequestError,
    ForbiddenError,
    GatewayTimeoutError,
    NotFoundError,
    RateLimitedError,
    RefusedError,
    SessionFailedError,
    UnauthorizedError,
    UnavailableError,
)
from mpc_credit.client.results import (
    BatchJob,
    DecisionResult,
    Decisions,
    Model,
    PdResult,
    Readiness,
    Reason,
    ReasonsResult,
    ScoreResult,
)
from mpc_credit.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequestError",
    "BatchJob",
    "Client",
    "DecisionResult",
    "Decisions",
    "ForbiddenError",
    "GatewayTimeoutError",
    "Model",
    "NotFoundError",
    "PdResult",
    "RateLimitedError",
    "Readiness",
    "Reason",
    "ReasonsResult",
    "RefusedError",
    "ScoreResult",
    "SessionFailedError",
    "UnauthorizedError",
    "UnavailableError",
]
