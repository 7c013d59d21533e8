"""What the routes share: one object on `app.state`, built once per app by `app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mpc_credit.api.access_log import AccessLog
from mpc_credit.api.auth import Authenticator, Caller
from mpc_credit.api.batches import BatchStore
from mpc_credit.api.catalog import Catalog
from mpc_credit.api.gateway import DaemonGateway
from mpc_credit.api.metrics import Metrics
from mpc_credit.api.settings import ServeSettings


@dataclass
class Services:
    settings: ServeSettings
    parties: tuple[str, ...]  # the consortium's parties (readyz wants every one online)
    catalog: Catalog
    gateway: DaemonGateway
    batches: BatchStore
    auth: Authenticator
    metrics: Metrics
    access: AccessLog


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


_bearer = HTTPBearer(auto_error=False, description="a token from `mpc-credit serve token`")


def caller(
    request: Request,
    _doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],  # OpenAPI only
) -> Caller:
    """The authenticated caller within its rate limit (401/429 problems otherwise)."""
    return services(request).auth.admit(request)


CallerDep = Annotated[Caller, Depends(caller)]
