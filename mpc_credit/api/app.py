"""The ASGI app of `mpc-credit serve`: routes, errors, limits and instrumentation together.

`create_app(settings)` reads the party's configuration and the consortium file once, opens
the token file and the access log, and returns a FastAPI app whose only way to the daemon is
its control socket. Tests run it in process (httpx's ASGI transport, schemathesis); `server`
runs it under uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mpc_credit import __version__
from mpc_credit.api import problems
from mpc_credit.api.access_log import AccessLog
from mpc_credit.api.auth import Authenticator
from mpc_credit.api.batches import BatchStore
from mpc_credit.api.bodylimit import BodyLimit
from mpc_credit.api.catalog import Catalog
from mpc_credit.api.gateway import DaemonGateway
from mpc_credit.api.instrument import Instrument
from mpc_credit.api.metrics import Metrics
from mpc_credit.api.ratelimit import RateLimiter
from mpc_credit.api.routes import batches, decisions, health, models
from mpc_credit.api.services import Services
from mpc_credit.api.settings import BATCH_BODY, DECISION_BODY, OTHER_BODY, ServeSettings
from mpc_credit.api.tokens import TokenStore
from mpc_credit.consortium.config import load_consortium

DESCRIPTION = """\
Credit decisions for this institution, computed with the other institutions of the consortium
by secure multi-party computation. Every call goes to this institution's own party daemon;
only this institution receives the results. Errors are RFC 9457 problem details.
"""


def body_limit(method: str, path: str) -> int:
    """The largest request body a route takes (`settings`)."""
    if path == "/v1/decisions":
        return DECISION_BODY
    if path == "/v1/batches":
        return BATCH_BODY
    return OTHER_BODY


def create_app(settings: ServeSettings) -> FastAPI:
    cfg = settings.party
    cons = load_consortium(cfg.consortium_file)
    metrics = Metrics()
    gateway = DaemonGateway(
        cfg,
        metrics,
        max_inflight=settings.max_inflight,
        status_timeout=settings.status_timeout,
    )
    svc = Services(
        settings=settings,
        parties=cons.names,
        catalog=Catalog(cfg, cons),
        gateway=gateway,
        batches=BatchStore(
            gateway,
            metrics,
            max_jobs=settings.max_jobs,
            ttl=settings.job_ttl,
            timeout=settings.batch_timeout,
        ),
        auth=Authenticator(TokenStore(settings.tokens_file), RateLimiter()),
        metrics=metrics,
        access=AccessLog(settings.access_log),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await svc.batches.close()

    app = FastAPI(
        title=f"mpc-credit API ({cfg.party})",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = svc
    problems.install(app)
    for r in (decisions.router, batches.router, models.router, health.router):
        app.include_router(r)
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(Instrument, metrics=metrics, access=svc.access)
    return app
