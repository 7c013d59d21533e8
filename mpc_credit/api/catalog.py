"""The model versions this party can request scores with, as the API describes them.

Read live from the party's daemon (the `models` operation of its control socket), so a
version published, approved, promoted or retired shows without restarting the server: each
version in service as `ID@VERSION` with its digest, status, owner and feature owners, its
features' names, owners and bin counts (public facts every part holds; the points stay out
of the API), the reveal policies the consortium allows this party that the version serves,
and the modes this party's daemon can serve it in now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpc_credit.api.problems import Problem
from mpc_credit.consortium.config import Consortium, PartyConfig
from mpc_credit.consortium.control import MODELS, ControlRequest
from mpc_credit.consortium.requester import registry_op
from mpc_credit.errors import MpcCreditError

STATUS_RANK = {"champion": 0, "challenger": 1, "candidate": 2}


@dataclass(frozen=True)
class FeatureView:
    name: str
    owner: str
    bins: int


@dataclass(frozen=True)
class ModelView:
    """A model version as GET /v1/models shows it."""

    id: str  # ID@VERSION
    digest: str
    owner: str
    name: str  # the model's id, without its version
    version: int
    status: str
    owners: tuple[str, ...]
    features: tuple[FeatureView, ...]
    reveal: tuple[str, ...]  # what the consortium's policy allows this party, and it serves
    modes: tuple[str, ...]  # the modes this party's daemon serves it in now


class Catalog:
    """The registry's versions in service as this party's daemon sees them."""

    def __init__(self, cfg: PartyConfig, cons: Consortium, timeout: float = 5.0) -> None:
        self.cfg, self.timeout = cfg, timeout
        allowed = cons.policy.requesters.get(cfg.party)
        self.allowed = allowed.reveal if allowed is not None else ()

    async def models(self) -> tuple[ModelView, ...]:
        """Every version in service, champion first; 503 when the daemon does not answer."""
        try:
            answer = await registry_op(self.cfg, ControlRequest(MODELS), timeout=self.timeout)
        except MpcCreditError:
            raise Problem(
                503,
                "daemon-unavailable",
                f"party {self.cfg.party}'s daemon does not answer; no models to list",
                kind="failed",
            ) from None
        rows = [r for r in answer.get("models", []) if r.get("in_service")]
        rows.sort(key=lambda r: (STATUS_RANK.get(r["status"], 3), r["id"], -r["version"]))
        return tuple(self._view(r) for r in rows)

    async def get(self, model_id: str) -> ModelView:
        """`ID@VERSION`, or `ID`: its version in the strongest role (404 when none)."""
        for m in await self.models():
            if model_id in (m.id, m.name):
                return m
        raise Problem(404, "unknown-model", f"model {model_id!r} is not in service")

    async def resolve(self, model_id: str | None) -> ModelView:
        """The version a batch names (`ID@VERSION` or `ID`), or the champion; 422 if none."""
        found = [
            m
            for m in await self.models()
            if (model_id is None and m.status == "champion") or model_id in (m.id, m.name)
        ]
        if not found:
            what = (
                "no champion model is in service"
                if model_id is None
                else (f"model {model_id!r} is not in service")
            )
            raise Problem(422, "invalid-input", what, kind="input")
        return found[0]

    def _view(self, row: dict[str, Any]) -> ModelView:
        features = tuple(
            FeatureView(str(f["name"]), str(f["owner"]), int(f["bins"]))
            for f in row.get("features", [])
        )
        return ModelView(
            id=str(row["model"]),
            digest=str(row["digest"]),
            owner=str(row["owner"]),
            name=str(row["id"]),
            version=int(row["version"]),
            status=str(row["status"]),
            owners=tuple(dict.fromkeys(f.owner for f in features)),
            features=features,
            reveal=tuple(r for r in self.allowed if r in row.get("reveal", ())),
            modes=tuple(row.get("offered", ())),
        )
