"""GET /v1/models and /v1/models/{id}: the models this party can request scores with."""

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
    """Every model of the consortium: features and owners, digest, reveal policies allowed."""
    return ModelList(models=[_info(m) for m in services(request).catalog.models])


@router.get(
    "/v1/models/{model_id}", response_model=ModelInfo, responses=problem_responses(401, 404, 429)
)
async def get_model(model_id: str, request: Request, who: CallerDep) -> ModelInfo:
    """One model by id."""
    return _info(services(request).catalog.get(model_id))
