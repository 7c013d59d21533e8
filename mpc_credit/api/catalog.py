"""The models this party can request scores with, as the API describes them.

From what the party already knows: the consortium file (model ids, digests, owners, and the
reveal policies the consortium's policy allows this party as a requester) and this party's
own model files (its full model or its part: every part names all features and their owners,
public facts of the consortium; the points stay out of the API). Read once at start-up, like
the daemon reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpc_credit.api.problems import Problem
from mpc_credit.consortium.config import Consortium, PartyConfig
from mpc_credit.errors import MpcCreditError


@dataclass(frozen=True)
class FeatureView:
    name: str
    owner: str
    bins: int


@dataclass(frozen=True)
class ModelView:
    """A model as GET /v1/models shows it."""

    id: str
    digest: str
    owner: str
    name: str | None
    owners: tuple[str, ...]
    features: tuple[FeatureView, ...]
    reveal: tuple[str, ...]  # what the consortium's policy allows this party
    modes: tuple[str, ...]  # the modes this party holds the model (or its part) for


class Catalog:
    """The consortium's models as this party sees them; `resolve` picks a request's."""

    def __init__(self, cfg: PartyConfig, cons: Consortium) -> None:
        allowed = cons.policy.requesters.get(cfg.party)
        reveal = allowed.reveal if allowed is not None else ()
        self.models = tuple(_view(cfg, m.id, m.digest, m.owner, reveal) for m in cons.models)

    def get(self, model_id: str) -> ModelView:
        for m in self.models:
            if m.id == model_id:
                return m
        raise Problem(404, "unknown-model", f"model {model_id!r} is not in the consortium")

    def resolve(self, model_id: str | None) -> ModelView:
        """The model a request names, or the consortium's only one (422 when there are
        several and none is named, or the named one is unknown)."""
        if model_id is None:
            if len(self.models) != 1:
                several = "the consortium has several models; name one"
                raise Problem(422, "invalid-input", several, kind="input")
            return self.models[0]
        try:
            return self.get(model_id)
        except Problem:
            raise Problem(
                422, "invalid-input", f"model {model_id!r} is not in the consortium", kind="input"
            ) from None


def _view(
    cfg: PartyConfig, model_id: str, digest: str, owner: str, reveal: tuple[str, ...]
) -> ModelView:
    from mpc_credit.scorecard.model import load_model

    files = cfg.models.get(model_id, {})
    name: str | None = None
    features: tuple[FeatureView, ...] = ()
    for mode in ("shared", "secret"):
        path = files.get(mode)
        if path is None:
            continue
        try:
            model = load_model(path)
        except MpcCreditError:
            continue  # the daemon refuses to score with it and says why; the id stays listed
        name = model.name
        features = tuple(FeatureView(f.name, f.owner, f.n_bins) for f in model.features)
        break
    owners = tuple(dict.fromkeys(f.owner for f in features))
    return ModelView(model_id, digest, owner, name, owners, features, reveal, tuple(files))
