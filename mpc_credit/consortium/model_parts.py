"""A model's parts for the consortium's parties, and what a publish record says about them.

The model owner keeps the full model; every other party receives one part per mode the
model serves (`Scorecard.split`: a feature owner its own features' bins, with their points
only in `shared` mode; a party without features, the public shape only). A publish record
lists the SHA-256 of each part's canonical JSON, so a receiver checks the part it got
against what the owner signed before it stores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mpc_credit.consortium.config import Consortium
from mpc_credit.scorecard.model import Scorecard, canonical_digest, to_dict
from mpc_credit.vocabulary import Mode


def part_digest(part: Scorecard) -> str:
    """SHA-256 hex of a part's canonical JSON (what a publish record signs for it)."""
    return canonical_digest(to_dict(part))


def model_parts(
    model: Scorecard, cons: Consortium, owner: str, modes: Sequence[Mode]
) -> dict[str, dict[str, Scorecard]]:
    """party -> mode -> its part, for every party of `cons` but the model owner."""
    return {
        party: {mode: model.split(party, mode, helper=party not in model.owners) for mode in modes}
        for party in cons.names
        if party != owner
    }


def publish_fields(
    model: Scorecard,
    cons: Consortium,
    *,
    owner: str,
    version: int,
    modes: Sequence[Mode],
    reveal: Sequence[str],
    status: str,
) -> dict[str, Any]:
    """The body of `owner`'s publish record for `model` as `version`."""
    parts = model_parts(model, cons, owner, modes)
    return {
        "model": model.name,
        "version": version,
        "digest": model.digest(),
        "owners": list(model.owners),
        "features": [f.name for f in model.features],
        "modes": list(modes),
        "reveal": list(reveal),
        "parts": {p: {m: part_digest(s) for m, s in per.items()} for p, per in parts.items()},
        "status": status,
    }
