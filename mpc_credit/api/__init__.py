"""The HTTP API in front of an institution's own daemon: `mpc-credit serve`.

A lender's systems (loan origination, a decision engine) ask for decisions over HTTP instead of
running the `score` command. The server is the requester side only: it holds no key, no data
and no MPC code; every call becomes one operation on the party daemon's local control socket
(`mpc_credit.consortium.requester`), exactly what `mpc-credit score` sends, and the daemon
signs, publishes and runs the session with the other institutions.

Why FastAPI on uvicorn: the OpenAPI document (`/openapi.json`, `/docs`) comes from the same
pydantic models that validate every request, so the contract a bank's integration team reads
is the one the server enforces (strict types, bounds, unknown fields refused), and it is the
Python web stack a bank's engineers most likely already run, review and patch. uvicorn is its
ordinary ASGI server and takes the TLS options (certificate, key, client CA) directly.

Modules, one concept each: `settings` (what a server instance runs with), `tokens` (who may
call: hashed bearer tokens in `serve-tokens.json`), `auth` (the caller of a request),
`ratelimit`, `gateway` (the one way to the daemon), `catalog` (the models), `upload` and
`batches` (batch jobs), `schemas` (request and response bodies), `problems` (RFC 9457 errors),
`metrics`, `access_log`, `bodylimit`, `instrument` (metrics and access log per call),
`services` (what the routes share), `routes/` (one module per resource), `tlsident` (a client
certificate's name), `app` (the ASGI app) and `server` (uvicorn). docs/api.md describes the API.
"""

from __future__ import annotations
