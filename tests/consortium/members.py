"""A consortium in memory for message and policy tests: the demo's three parties with fresh
Ed25519 keys and the demo model, no files (helper, holds no tests)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.config import (
    Consortium,
    ModelInfo,
    PartyInfo,
    Policy,
    RequesterPolicy,
)
from mpc_credit.consortium.messages import Request, new_request
from mpc_credit.consortium.signing import new_signing_key, public_b64
from mpc_credit.scorecard.model import Scorecard, load_model
from tests.conftest import MODEL, OWNERS

_MODEL = load_model(MODEL)


@dataclass(frozen=True)
class Members:
    """The public consortium and every party's private signing key."""

    cons: Consortium
    keys: dict[str, Ed25519PrivateKey]

    @property
    def models(self) -> dict[tuple[str, str], Scorecard]:
        """What a party holding the full model has, keyed as the daemon keys it."""
        return {(_MODEL.name, "shared"): _MODEL}

    def with_policy(self, **changes: Any) -> Members:
        return replace(self, cons=replace(self.cons, policy=replace(self.cons.policy, **changes)))

    def request(self, signer: str = "bank", **kw: Any) -> Request:
        """A request `signer` signs; keyword arguments as new_request's."""
        args: dict[str, Any] = dict(
            requester=signer,
            model_id=_MODEL.name,
            model_digest=_MODEL.digest(),
            mode="shared",
            reveal="score",
            ids=["A0191"],
            timeout=30.0,
        )
        args.update(kw)
        return new_request(self.keys[signer], **args)


def members(
    requesters: tuple[str, ...] = ("bank",), reveals: tuple[str, ...] = ("score", "decision")
) -> Members:
    keys = {n: new_signing_key() for n in OWNERS}
    parties = tuple(
        PartyInfo(n, i, "127.0.0.1", 12100 + 8 * i, 8, public_b64(keys[n]))
        for i, n in enumerate(OWNERS)
    )
    rule = RequesterPolicy(reveals)
    policy = Policy({r: rule for r in requesters})
    model = (ModelInfo(_MODEL.name, _MODEL.digest(), OWNERS[0]),)
    return Members(Consortium("demo", "mpc-credit/demo", parties, model, policy), keys)
