"""GET /v1/models and /v1/models/{id}: the model versions this party can request scores with,
live from its daemon's registry."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from mpc_credit.api.catalog import ModelView
from mpc_credit.api.schemas import ModelInfo, ModelList, problem_responses
from mpc_credit.api.services import CallerDep, services

router = APIRouter(tags=["models"])


def _info(m: ModelView) -> ModelInfo:
    return ModelInfo.model_validate(asdict(m))


@router.get("/v1/models", response_model=ModelList, responses=problem_responses(401, 429))
async def list_models(request: Request, who: CallerDep) -> ModelList:
    """Every model version in service, champion first: ID@VERSION, status, digest, features and
    owners, the reveal policies allowed, the modes this party serves it in now."""
    return ModelList(models=[_info(m) for m in await services(request).catalog.models()])


@router.get(
    "/v1/models/{model_id}", response_model=ModelInfo, responses=problem_responses(401, 404, 429)
)
async def get_model(model_id: str, request: Request, who: CallerDep) -> ModelInfo:
    """One version by `ID@VERSION`, or by `ID`: its version in the strongest role."""
    return _info(await services(request).catalog.get(model_id))
