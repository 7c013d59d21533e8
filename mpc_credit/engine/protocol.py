"""The secure scorecard protocol: secret inputs in, the receiver's revealed matrix out.

Free of I/O: it takes an MPyC runtime, the public plan and this process's inputs, and
returns the revealed values at the receiver (None everywhere else).

shared:  score = intercept + sum over owners of each owner's secret partial score.
secret:  score = X @ p + intercept, X the owners' secret one-hot bins (each feature's
         last bin left out: it is 1 minus the others), p the model owner's secret point
         differences to that bin, folded with the last bins' points into the intercept.
decision = [score - cutoff >= 0], one comparison of `plan.cmp_bits` bits.
reasons  = the top-4 reason labels by a secure comparator network, zeroed by the decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mpc_credit.engine.inputs import ModelInputs, OwnerInputs
from mpc_credit.engine.plan import Plan
from mpc_credit.engine.topk import apply_secure, compile_topk
from mpc_credit.scorecard.reveal import N_REASONS


def _share_by_owner(
    mpc: Any,
    secint: Any,
    plan: Plan,
    held: Mapping[int, OwnerInputs],
    pick: Callable[[OwnerInputs], np.ndarray],
    shape: Callable[[int], tuple[int, ...]],
) -> list[Any]:
    """Each owner secret-shares its array; everyone else passes a same-shaped placeholder."""
    shared = []
    for o, pid in enumerate(plan.owner_pids):
        x = pick(held[o]) if o in held else np.zeros(shape(o), dtype=np.int64)
        shared.append(mpc.input(secint.array(x), senders=pid))
    return shared


def _share_model(mpc: Any, secint: Any, plan: Plan, model: ModelInputs | None) -> Any:
    """The model owner shares [point, key, label deltas | key, label bases | intercept]."""
    width, f = plan.onehot_total, plan.n_features
    if model is None:
        vec = np.zeros(3 * width + 2 * f + 1, dtype=np.int64)
    else:
        parts = (model.points, model.keys, model.labels, model.key_base, model.label_base)
        vec = np.concatenate([*parts, [model.intercept]])
    return mpc.input(secint.array(vec.astype(np.int64)), senders=plan.pid(plan.model_owner))


def widest_share_array(plan: Plan, n: int) -> int:
    """Elements of the largest share array a batch of n applicants sends (an upper bound):
    an owner's input rows, the model owner's vector, or a secure comparison's random bits
    (bits + 1 per compared value, MPyC's `np_sgn`) over a whole batch or a top-k layer."""
    owners = range(len(plan.owners))
    if plan.mode == "secret":
        row = max((plan.onehot_width(o) for o in owners), default=1)
    elif plan.reveal == "reasons":
        row = 1 + 2 * max((plan.run_length(o) for o in owners), default=0)
    else:
        row = 1  # a partial score
    if plan.reveal in ("decision", "reasons"):
        row = max(row, plan.cmp_bits + 1)
    if plan.reveal == "reasons":
        top = (plan.key_bits + 1) * _widest_layer(plan)
        row = max(row, top, 2 * plan.n_features, 1 + N_REASONS)
    model = 3 * plan.onehot_total + 2 * plan.n_features + 1 if plan.mode == "secret" else 0
    return max(n * row, model)


def _widest_layer(plan: Plan) -> int:
    """Comparators in the largest layer of the session's top-k network."""
    net = compile_topk(_runs(plan), N_REASONS)
    return max((len(layer) for layer in net.layers), default=0)


def _runs(plan: Plan) -> list[int]:
    """The sorted runs the top-k network merges: each owner's reason candidates (shared
    mode), each feature alone (secret mode)."""
    if plan.mode == "shared":
        return [plan.run_length(o) for o in range(len(plan.owners))]
    return [1] * plan.n_features


async def score_batch(
    mpc: Any,
    plan: Plan,
    n: int,
    held: Mapping[int, OwnerInputs],
    model: ModelInputs | None = None,
) -> np.ndarray | None:
    """Score one batch of n applicants; the receiver gets an (n, c) int64 matrix.

    `held` maps owner index (in plan.owners) to that owner's inputs, for the owners
    this process is; `model` is given at the model owner in secret mode.
    """
    secint = mpc.SecInt(plan.int_bits)
    reasons = plan.reveal == "reasons"
    if plan.mode == "shared":
        score, keys, labels = _shared(mpc, secint, plan, n, held, reasons)
    else:
        score, keys, labels = _secret(mpc, secint, plan, n, held, model, reasons)
    if plan.reveal in ("score", "pd"):
        result = score.reshape(n, 1)
    else:
        approve = 1 - mpc.np_sgn(score - plan.cutoff, l=plan.cmp_bits, LT=True)
        result = approve.reshape(n, 1)
        if reasons:
            result = np.hstack([result, _reason_labels(mpc, secint, plan, keys, labels, approve)])
    out = await mpc.output(result, receivers=[plan.pid(plan.receiver)])
    if out is None:
        return None
    return np.asarray(out, dtype=np.int64).reshape(n, -1)


def _shared(
    mpc: Any, secint: Any, plan: Plan, n: int, held: Mapping[int, OwnerInputs], reasons: bool
) -> tuple[Any, Any, Any]:
    if not reasons:
        parts = _share_by_owner(mpc, secint, plan, held, lambda x: x.partial, lambda o: (n,))
        return sum(parts[1:], parts[0]) + (plan.intercept or 0), None, None

    def pack(x: OwnerInputs) -> np.ndarray:
        return np.hstack([x.partial[:, None], x.keys, x.labels])

    packs = _share_by_owner(
        mpc, secint, plan, held, pack, lambda o: (n, 1 + 2 * plan.run_length(o))
    )
    score = sum((p[:, 0] for p in packs[1:]), packs[0][:, 0]) + (plan.intercept or 0)
    runs = [plan.run_length(o) for o in range(len(plan.owners))]
    keys = np.hstack([p[:, 1 : 1 + r] for p, r in zip(packs, runs)])
    labels = np.hstack([p[:, 1 + r :] for p, r in zip(packs, runs)])
    return score, keys, labels


def _secret(
    mpc: Any,
    secint: Any,
    plan: Plan,
    n: int,
    held: Mapping[int, OwnerInputs],
    model: ModelInputs | None,
    reasons: bool,
) -> tuple[Any, Any, Any]:
    onehots = _share_by_owner(
        mpc, secint, plan, held, lambda x: x.onehot, lambda o: (n, plan.onehot_width(o))
    )
    x = np.hstack(onehots) if len(onehots) > 1 else onehots[0]
    vec = _share_model(mpc, secint, plan, model)
    width, nf = plan.onehot_total, plan.n_features
    score = x @ vec[:width] + vec[-1]
    if not reasons:
        return score, None, None
    # Per feature: its one-hot block times that block's (key, label) deltas, plus its base.
    kl = np.stack([vec[width : 2 * width], vec[2 * width : 3 * width]], axis=1)
    base = np.stack(
        [vec[3 * width : 3 * width + nf], vec[3 * width + nf : 3 * width + 2 * nf]], axis=1
    )
    cols = []
    start = 0
    for g in plan.onehot_order():
        stop = start + plan.n_bins[g] - 1
        cols.append(x[:, start:stop] @ kl[start:stop])
        start = stop
    both = np.stack(cols, axis=1) + base  # (n, F, 2)
    return score, both[:, :, 0], both[:, :, 1]


def _reason_labels(mpc: Any, secint: Any, plan: Plan, keys: Any, labels: Any, approve: Any) -> Any:
    """(n, 4) labels of the costliest features, 0 where none or where approved."""
    net = compile_topk(_runs(plan), N_REASONS)
    top = apply_secure(mpc, net, keys, labels, plan.key_bits)
    n = approve.shape[0]
    real = [c for c in top if c is not None]  # outputs with nothing behind them come last
    masked = np.stack(real, axis=1) * (1 - approve).reshape(n, 1)
    if len(real) == N_REASONS:
        return masked
    return np.hstack([masked, secint.array(np.zeros((n, N_REASONS - len(real)), dtype=np.int64))])
