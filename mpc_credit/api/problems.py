"""Errors as RFC 9457 problem details (`application/problem+json`), never a traceback.

Every failure a caller can cause or meet has a status and a `type` URI of its own
(`urn:mpc-credit:problem:SLUG`), a short `title`, a one-line `detail` and, for a failure the
daemon reported, its `kind` (the CLI's error categories, `mpc_credit.errors`) and for a refusal
its `reason` (the public refusal category). The mapping follows the CLI's exit codes:

  input (exit 2)    400 malformed body, 413 too large, 415 wrong media type, 422 invalid
  refused (exit 4)  403, or 429 when the refusal is a quota (daily budget, per-applicant
                    limit, the daemon's queue full) and the caller may retry later
  failed (exit 3)   502 (the session failed at some party), 503 (this party's daemon is
                    not running, or not connected)
  timeout (exit 5)  504

and the server's own: 401 no or bad credentials, 403 a reveal policy the client may not use,
429 its rate limit, 404 no such route, job or model, 405, 409 a batch result not ready.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mpc_credit.consortium import reasons
from mpc_credit.errors import MpcCreditError, RefusedError

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:mpc-credit:problem:"

# refusal categories that mean "not now" rather than "never": 429
QUOTA = frozenset({reasons.DAILY_BUDGET, reasons.PER_APPLICANT, "too many sessions queued"})
KNOWN_REASONS = frozenset(
    {
        reasons.UNKNOWN_REQUESTER,
        reasons.BAD_SIGNATURE,
        reasons.NOT_ALLOWED,
        reasons.BATCH_TOO_LARGE,
        reasons.REPLAYED,
        reasons.CLOCK,
        reasons.DEADLINE,
        reasons.MALFORMED,
        reasons.MODEL,
        reasons.NO_TRAINING_DATA,
        "shutting down",
        *QUOTA,
    }
)
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class Problem(Exception):
    """An HTTP error response in problem+json; `extra` members go into the document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(
            self.document(instance),
            status_code=self.status,
            headers=self.headers,
            media_type=MEDIA_TYPE,
        )


def reason_label(reason: str | None) -> str:
    """A refusal's category as a bounded label: a known category, or `other`."""
    if reason is None:
        return "unknown"
    if reason.startswith("privacy budget exceeded"):
        return "privacy budget exceeded"
    return reason if reason in KNOWN_REASONS else "other"


def from_error(exc: MpcCreditError) -> Problem:
    """The problem for an error of the CLI's categories (what the daemon or a check raised)."""
    detail = str(exc)
    if isinstance(exc, RefusedError):
        label = reason_label(exc.reason)
        status = 429 if label in QUOTA else 403
        return Problem(status, "refused", detail, title="Refused", kind="refused", reason=label)
    if exc.kind == "timeout":
        return Problem(504, "timeout", detail, title="Session deadline passed", kind="timeout")
    if exc.kind == "failed":
        return Problem(502, "session-failed", detail, title="Session failed", kind="failed")
    return Problem(422, "invalid-input", detail, title="Invalid input", kind="input")


def respond(request: Request, p: Problem) -> JSONResponse:
    """`p` as the response to `request`, its type and reason noted for the metrics and the
    access log (`instrument`)."""
    request.state.outcome = p.slug
    if isinstance(p.extra.get("reason"), str):
        request.state.reason = p.extra["reason"]
    return p.response(request.url.path)


def install(app: FastAPI) -> None:
    """Make every error of `app` a problem document."""

    async def problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return respond(request, exc)

    async def mpc_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MpcCreditError)
        return respond(request, from_error(exc))

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [_field_error(e) for e in exc.errors()[:20]]
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}"
        if malformed:
            p = Problem(400, "malformed-body", detail, errors=errors)
        else:
            p = Problem(422, "invalid-input", detail, title="Invalid input", errors=errors)
        return respond(request, p)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        headers = dict(exc.headers or {})
        return respond(request, Problem(exc.status_code, slug, detail, headers=headers))

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("mpc_credit.api").error(
            "internal error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc
        )
        p = Problem(500, "internal", f"internal error ({type(exc).__name__})")
        return respond(request, p)

    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(MpcCreditError, mpc_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal)


def _field_error(e: Any) -> dict[str, str]:
    """A validation error without the input it was about (which may be long or personal)."""
    if e.get("type") == "json_invalid":
        at = e.get("loc", ())[-1:]
        where = f" at character {at[0]}" if at and isinstance(at[0], int) else ""
        return {"field": "body", "message": f"not valid JSON{where}"}
    loc = [str(x) for x in e.get("loc", ()) if x != "body"] or ["body"]
    return {"field": ".".join(loc)[:200], "message": str(e.get("msg", "invalid"))[:200]}
