"""The public plan of a scoring session: who holds what, and how wide every value is.

Every party derives the same plan from its model part, so the shapes of the secret
inputs (and of the placeholders for other parties' inputs) agree without talking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mpc_credit.errors import UsageError
from mpc_credit.scorecard.model import Scorecard
from mpc_credit.scorecard.reveal import N_REASONS
from mpc_credit.vocabulary import Mode, Reveal

MIN_PARTIES = 3


def signed_bits(bound: int) -> int:
    """Bit length l with -2^(l-1) <= x < 2^(l-1) for every |x| <= bound."""
    return max(1, int(bound).bit_length()) + 1


@dataclass(frozen=True)
class Plan:
    """Public facts of one session, identical at every party."""

    mode: Mode
    reveal: Reveal
    parties: tuple[str, ...]  # party names in pid order
    owners: tuple[str, ...]  # feature owners, in pid order
    owner_features: tuple[tuple[int, ...], ...]  # global feature indices per owner
    n_bins: tuple[int, ...]  # per global feature
    receiver: str
    model_owner: str
    intercept: int | None  # public in shared mode only
    cutoff: int
    score_range: tuple[int, int]
    max_cost: int
    seats: tuple[int, ...] | None = None  # runtime pid of each party; None: its position

    @property
    def n_features(self) -> int:
        return len(self.n_bins)

    def pid(self, party: str) -> int:
        """The MPyC party id that acts for `party`."""
        i = self.parties.index(party)
        return i if self.seats is None else self.seats[i]

    @property
    def owner_pids(self) -> tuple[int, ...]:
        return tuple(self.pid(o) for o in self.owners)

    def onehot_order(self) -> list[int]:
        """Global feature indices in one-hot column order: by owner, then model order."""
        return [f for feats in self.owner_features for f in feats]

    def onehot_width(self, owner: int) -> int:
        """One-hot columns an owner shares: every bin but each feature's last (missing)."""
        return sum(self.n_bins[f] - 1 for f in self.owner_features[owner])

    @property
    def onehot_total(self) -> int:
        return sum(self.onehot_width(o) for o in range(len(self.owners)))

    def run_length(self, owner: int) -> int:
        """How many locally ranked reason candidates an owner shares in shared mode."""
        return min(N_REASONS, len(self.owner_features[owner]))

    @property
    def cmp_bits(self) -> int:
        """Bits for score >= cutoff: |score - cutoff| over the model's score range."""
        lo, hi = self.score_range
        return signed_bits(max(abs(lo - self.cutoff), abs(hi - self.cutoff)))

    @property
    def key_bits(self) -> int:
        """Bits for comparing reason keys: cost * F + (F - 1 - f) in shared mode; in
        secret mode the model owner's ranks of those keys, below the number of bins."""
        if self.mode == "secret":
            return signed_bits(sum(self.n_bins))
        return signed_bits((self.max_cost + 1) * self.n_features)

    @property
    def int_bits(self) -> int:
        """Bit length of the secure integer type: holds scores, keys and labels."""
        lo, hi = self.score_range
        return max(self.cmp_bits, self.key_bits, signed_bits(max(abs(lo), abs(hi)))) + 1


def make_plan(
    model: Scorecard,
    parties: Sequence[str],
    *,
    mode: Mode,
    reveal: Reveal,
    receiver: str,
    model_owner: str,
    seats: Sequence[int] | None = None,
) -> Plan:
    """Check the session's parties against the model and fix the public plan.

    `seats` lets one runtime act for several parties (all seats 0 in a one-process test).
    """
    parties = tuple(parties)
    if len(set(parties)) != len(parties):
        raise UsageError(f"a party is named twice: {', '.join(parties)}")
    if len(parties) < MIN_PARTIES:
        raise UsageError(
            f"{len(parties)} parties given; honest-majority MPC needs at least {MIN_PARTIES}"
        )
    for o in model.owners:
        if o not in parties:
            raise UsageError(f"model owner {o!r} is not among the parties ({', '.join(parties)})")
    for who, name in (("receiver", receiver), ("model owner", model_owner)):
        if name not in parties:
            raise UsageError(f"{who} {name!r} is not among the parties ({', '.join(parties)})")
    owners = tuple(p for p in parties if p in model.owners)
    feats = tuple(tuple(i for i, f in enumerate(model.features) if f.owner == o) for o in owners)
    return Plan(
        mode=mode,
        reveal=reveal,
        parties=parties,
        owners=owners,
        owner_features=feats,
        n_bins=tuple(f.n_bins for f in model.features),
        receiver=receiver,
        model_owner=model_owner,
        intercept=model.intercept if mode == "shared" else None,
        cutoff=model.cutoff,
        score_range=model.score_range(),
        max_cost=model.max_cost(),
        seats=None if seats is None else tuple(seats),
    )
