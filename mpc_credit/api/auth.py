"""The caller of a request: a named client of `serve-tokens.json`, by bearer token or by the
common name of its TLS client certificate (when the server requires client certificates).

`caller(request)` is the routes' dependency: 401 (with `WWW-Authenticate: Bearer`) without
valid credentials, 429 (with `Retry-After`) past the client's rate limit. `allow(caller,
reveal)` is the per-client reveal check: 403 for a policy the client was not given, whatever
the consortium would allow the party.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi import Request

from mpc_credit.api.problems import Problem
from mpc_credit.api.ratelimit import RateLimiter
from mpc_credit.api.tokens import ApiClient, TokenStore


@dataclass(frozen=True)
class Caller:
    """Who is calling, and how they proved it (`token` or `certificate`)."""

    client: ApiClient
    via: str

    @property
    def name(self) -> str:
        return self.client.name


class Authenticator:
    """Finds the caller of a request and applies its rate limit."""

    def __init__(self, tokens: TokenStore, limiter: RateLimiter) -> None:
        self.tokens = tokens
        self.limiter = limiter

    def identify(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            client = self.tokens.by_token(token.strip()) if scheme.lower() == "bearer" else None
            if client is None:
                raise _unauthorized("the bearer token is not valid", "invalid_token")
            return Caller(client, "token")
        cn = getattr(request.state, "tls_client", None)
        if isinstance(cn, str):
            client = self.tokens.by_name(cn)
            if client is None:
                raise _unauthorized(f"client certificate {cn!r} names no client of this server")
            return Caller(client, "certificate")
        raise _unauthorized("credentials required: Authorization: Bearer TOKEN")

    def admit(self, request: Request) -> Caller:
        """The caller, within its rate limit; stored on the request for the access log."""
        caller = self.identify(request)
        request.state.caller = caller
        wait = self.limiter.take(caller.name, caller.client.rate_per_minute)
        if wait > 0:
            raise Problem(
                429,
                "rate-limited",
                f"client {caller.name!r} is over its rate limit of "
                f"{caller.client.rate_per_minute} calls per minute",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
                reason="rate limit",
            )
        return caller


def allow(caller: Caller, reveal: str) -> None:
    if reveal not in caller.client.reveal:
        raise Problem(
            403,
            "reveal-not-allowed",
            f"client {caller.name!r} may not request reveal policy {reveal!r} "
            f"(allowed: {', '.join(caller.client.reveal)})",
            reason="reveal not allowed for the client",
        )


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="mpc-credit"' + (f', error="{error}"' if error else "")
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})
