"""The client's errors: one type per kind of failure, each carrying the problem details.

The type follows the status (and for 403/429 whether the consortium refused: the problem's
`kind` is `refused`), so a caller catches what it can act on: `RateLimitedError` (wait
`retry_after` seconds), `RefusedError` (a party or the policy said no; `reason` names the
category), `UnavailableError` (the daemon is down or not ready), `SessionFailedError`,
`GatewayTimeoutError`, `BadRequestError` (fix the request), `UnauthorizedError`,
`ForbiddenError`, `NotFoundError`.
"""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """An error response of the API, or a response that is not what the API sends."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.kind = problem.get("kind")
        self.reason = problem.get("reason")
        super().__init__(f"{status} {self.title}: {self.detail}")


class BadRequestError(ApiError):
    """400, 413, 415, 422: the request is malformed, too large or invalid."""


class UnauthorizedError(ApiError):
    """401: no token, or not a valid one."""


class ForbiddenError(ApiError):
    """403: this client may not ask for that (a reveal policy it was not given)."""


class NotFoundError(ApiError):
    """404: no such model or batch job (of this client)."""


class RefusedError(ApiError):
    """403/429 from the consortium: a party or the policy refused (`reason`: the category)."""


class RateLimitedError(ApiError):
    """429: over this client's rate limit (or a quota); retry after `retry_after` seconds."""

    retry_after: float | None = None


class SessionFailedError(ApiError):
    """502: the MPC session failed at some party."""


class UnavailableError(ApiError):
    """503: this institution's daemon is not running or not ready."""


class GatewayTimeoutError(ApiError):
    """504: the session's deadline passed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitedError,
    502: SessionFailedError,
    503: UnavailableError,
    504: GatewayTimeoutError,
}


def error_of(response: httpx.Response) -> ApiError:
    """The error for a non-2xx response (its problem document, or a stand-in for one)."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        doc = {"title": response.reason_phrase, "detail": response.text[:200]}
    err = problem_error(response.status_code, doc)
    retry = response.headers.get("retry-after", "")
    if isinstance(err, RateLimitedError) and retry.isdigit():
        err.retry_after = float(retry)
    return err


def problem_error(status: int, doc: dict[str, Any]) -> ApiError:
    """The error type for a problem document of this status (also a failed batch job's)."""
    cls = _BY_STATUS.get(status, ApiError)
    if doc.get("kind") == "refused" and status in (403, 429):
        cls = RefusedError
    return cls(status, doc)
