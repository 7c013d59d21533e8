"""One party's side of a scoring session: arrays in, the protocol, what this party learned.

The engine takes a `SessionSpec` (who, with whom, what to reveal to whom; no file paths)
and the party's already loaded model, id list and table: `assemble` validates them before
any connection is made, so bad input fails every party before the MPC starts; `execute`
then runs the protocol batch by batch and returns what this party learned. Reading files
is the caller's job (`mpc_credit.local.worker` for one-shot processes, the daemon's tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_credit.engine.exchange import id_list_size
from mpc_credit.engine.inputs import ModelInputs, model_inputs, owner_inputs
from mpc_credit.engine.links import LinkLimits
from mpc_credit.engine.plan import Plan, make_plan
from mpc_credit.engine.protocol import score_batch, widest_share_array
from mpc_credit.engine.sharewire import encoded_size
from mpc_credit.errors import ModelError, UsageError
from mpc_credit.scorecard.data import Column, OwnerTable
from mpc_credit.scorecard.model import Scorecard
from mpc_credit.scorecard.reveal import Result
from mpc_credit.vocabulary import Mode, Reveal

DEFAULT_BATCH = 10_000
REASONS_BATCH = 5_000  # the top-k network keeps ~60 secure values per applicant alive


def default_batch(reveal: Reveal) -> int:
    """Applicants per secure batch: bounds each party's memory (~0.6 GB at the defaults)."""
    return REASONS_BATCH if reveal == "reasons" else DEFAULT_BATCH


@dataclass(frozen=True)
class SessionSpec:
    """One party's view of one session: the parties in pid order and the roles."""

    session_id: str
    party: str
    parties: tuple[str, ...]
    mode: Mode
    reveal: Reveal
    receiver: str
    model_owner: str
    batch: int = 0  # 0: default_batch(reveal)

    @property
    def pid(self) -> int:
        return self.parties.index(self.party)


@dataclass(frozen=True)
class Prepared:
    """A party's validated local state, ready for the secure part."""

    spec: SessionSpec
    model: Scorecard
    plan: Plan
    ids: list[str]
    columns: dict[str, Column] | None  # own columns in request order; None for a helper
    model_inputs: ModelInputs | None


def assemble(
    spec: SessionSpec, model: Scorecard, ids: list[str], table: OwnerTable | None
) -> Prepared:
    """A party's session state from its already loaded model and table."""
    plan = _plan(spec, model)
    mine: ModelInputs | None = None
    if spec.mode == "secret" and spec.party == spec.model_owner:
        if not model.has_points:
            raise ModelError(f"{model.source}: the model owner needs the full model in secret mode")
        mine = model_inputs(model, plan)
    columns = None
    if spec.party in plan.owners:
        if table is None:
            raise UsageError(f"party {spec.party} owns features but was given no data file")
        columns = table.select(ids)
    return Prepared(spec, model, plan, ids, columns, mine)


def session_limits(mpc: Any, spec: SessionSpec, model: Scorecard, count: int) -> LinkLimits:
    """What each peer may make this party hold in a session of `count` applicants: the
    links' limits for its largest honest message, the widest share array of one batch
    (field elements of the batch's secure integers, in 64-bit limbs) or the id list."""
    plan = _plan(spec, model)
    n = min(count, spec.batch or default_batch(spec.reveal))
    bits = int(mpc.SecInt(plan.int_bits).field.order).bit_length()
    shares = encoded_size(widest_share_array(plan, n), (bits + 63) // 64)
    return LinkLimits.for_session(max(shares, id_list_size(count)))


def _plan(spec: SessionSpec, model: Scorecard) -> Plan:
    return make_plan(
        model,
        spec.parties,
        mode=spec.mode,
        reveal=spec.reveal,
        receiver=spec.receiver,
        model_owner=spec.model_owner,
    )


def _slice(columns: dict[str, Column], lo: int, hi: int) -> dict[str, Column]:
    return {k: v[lo:hi] for k, v in columns.items()}


async def execute(prep: Prepared, mpc: Any) -> Result | None:
    """Run the secure protocol over all batches; the receiver gets the Result."""
    spec, plan = prep.spec, prep.plan
    n = len(prep.ids)
    me = plan.owners.index(spec.party) if spec.party in plan.owners else None
    parts = []
    size = spec.batch or default_batch(spec.reveal)
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        held = {}
        if me is not None and prep.columns is not None:
            held[me] = owner_inputs(prep.model, plan, me, _slice(prep.columns, lo, hi))
        parts.append(await score_batch(mpc, plan, hi - lo, held, prep.model_inputs))
    if spec.party != spec.receiver:
        assert all(p is None for p in parts), "a non-receiver must learn nothing"
        return None
    values = np.vstack(parts) if parts else np.zeros((0, 1), dtype=np.int64)
    names = tuple(f.name for f in prep.model.features)
    model = prep.model
    return Result(spec.reveal, tuple(prep.ids), values, names, model.scaling, model.reasons())
