"""One party's whole training session: align, bin, count, merge, regress, score points.

Every party runs `train(mpc, setup, table)` with the same public `setup` and its own table, in
a started MPyC runtime whose pids follow `setup.parties`. What crosses, in order:

1. feature names of each party (public schema);
2. PSI between the lender and each other party with features (align.py): the lender's request,
   the owner's answer, the intersection positions, each point to point;
3. candidate bin counts per feature (public), then the secure bad counts, each owner's revealed
   to it alone with DP noise (counts.py);
4. kept feature names and their final bin counts (public);
5. the regression (logistic.py): coefficients to their owners, the intercept to the lender and
   the model owner;
6. each owner's final bins and woe * coefficient per bin to the model owner, which writes the
   model file (points.py).

The lender shuffles its rows first (secret permutation), so the positions an owner learns in
step 2 say nothing. DP: the run's budget `epsilon` (at ledger.DELTA) becomes zCDP rho, half for
the counts and half for the coefficients; with `epsilon=None` nothing is noised (--no-dp).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpc_credit.errors import ModelError, SessionError, UsageError
from mpc_credit.scorecard.model import Scaling
from mpc_credit.training import align
from mpc_credit.training.bins import Candidates, onehot, propose
from mpc_credit.training.counts import CountSpec, bad_counts, check_labels, count_sigma2
from mpc_credit.training.ledger import rho_for
from mpc_credit.training.logistic import LrSpec, Sigmoid, fit
from mpc_credit.training.noise import Rng
from mpc_credit.training.points import (
    OwnerFeature,
    build_model,
    features_from_json,
    features_to_bytes,
    owner_feature,
)
from mpc_credit.training.wire import parse, publish, send_to
from mpc_credit.training.woe import Binned, Monotone, merge

DEFAULT_SCALING = Scaling(20, 50, 600)


@dataclass(frozen=True)
class Options:
    """The run's public parameters."""

    name: str
    cutoff: int
    scaling: Scaling = DEFAULT_SCALING
    epsilon: float | None = None  # total budget of the run; None: no DP
    bins: int = 10
    monotone: Monotone = "auto"
    min_share: float = 0.05
    min_iv: float = 0.02
    c: float = 1.0
    clip: float = 4.0
    newton_steps: int = 10
    polish_steps: int = 6
    sigmoid: Sigmoid = "poly"  # "linear": quadratic model, for large n without DP


@dataclass(frozen=True)
class Setup:
    """Who is who: party names by pid, the lender (label holder) and the model owner."""

    parties: tuple[str, ...]
    lender: str
    model_owner: str
    options: Options

    def check(self) -> None:
        if len(self.parties) < 3:
            raise UsageError(
                f"training needs at least 3 parties (honest majority), not {len(self.parties)}"
            )
        if self.options.sigmoid == "linear" and self.options.epsilon is not None:
            raise UsageError("the linear sigmoid has no DP bound: train with DP on the polynomial")
        for role in (self.lender, self.model_owner):
            if role not in self.parties:
                raise UsageError(f"{role!r} is not one of the parties {', '.join(self.parties)}")

    def rho(self) -> float | None:
        """The run's zCDP budget, or None without DP."""
        e = self.options.epsilon
        return None if e is None else rho_for(e)


@dataclass
class Table:
    """A party's own data: ids, feature columns (float with NaN, or object with None), labels."""

    ids: Sequence[str]
    columns: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None  # the lender's, aligned with ids


@dataclass
class Outcome:
    """What this party holds after the run."""

    rows: int  # the lender's training rows
    known: int  # of these, rows this party knows
    binning: list[Binned]  # this party's features, kept or not
    coefficients: dict[str, float]  # this party's kept features
    kept: list[list[str]]  # public: kept feature names by pid
    intercept: float | None = None  # lender and model owner
    model: dict[str, Any] | None = None  # model owner
    seconds: dict[str, float] = field(default_factory=dict)


async def train(mpc: Any, setup: Setup, table: Table, rng: Rng | None = None) -> Outcome:
    """Run this party's side of the training session."""
    setup.check()
    me, names, opts = mpc.pid, list(setup.parties), setup.options
    lender, owner = names.index(setup.lender), names.index(setup.model_owner)
    clock = _Clock()
    labels = None
    ids = list(table.ids)
    rows = np.zeros(0, dtype=np.int64)
    if me == lender:  # the lender's rows in a secret order: row i is its table row rows[i]
        rows = _secret_permutation(len(ids))
        ids = [ids[i] for i in rows]
        labels = check_labels(table.labels, len(rows))[rows]
    features = await publish(mpc, list(table.columns), names, "feature list")
    rows = await _align(mpc, lender, ids, features, names, rows)
    n = int((await publish(mpc, len(rows), names, "row count"))[lender])
    if len(rows) not in (0, n):
        raise SessionError(f"party {names[lender]} announced {n} rows, not the {len(rows)} aligned")
    rows = rows if len(rows) else np.full(n, -1, dtype=np.int64)
    clock.lap("alignment")
    cands = [_propose(name, col, rows, opts.bins) for name, col in table.columns.items()]
    x = np.hstack([onehot(c, table.columns[c.name], rows) for c in cands]) if cands else None
    widths = await publish(mpc, [c.n_bins for c in cands], names, "bin counts")
    rho = setup.rho()
    sigma2 = None if rho is None else count_sigma2(sum(len(w) for w in widths), rho / 2)
    spec = CountSpec(n, lender, [sum(w) for w in widths], sigma2)
    bad = await bad_counts(mpc, spec, x, labels, rng)
    binned = _merged(cands, x, bad, opts)
    kept = [b for b in binned if b.kept]
    clock.lap("binning")
    public = await publish(mpc, [[b.cand.name, len(b.woe)] for b in kept], names, "kept features")
    columns = [len(k) for k in public]
    if sum(columns) == 0:
        raise SessionError(f"no feature reaches the IV threshold {opts.min_iv}")
    woe = _woe_columns(kept, cands, x)
    lr = LrSpec(
        n,
        lender,
        owner,
        columns,
        opts.c,
        opts.clip,
        opts.newton_steps,
        opts.polish_steps,
        None if rho is None else rho / 2,
        opts.sigmoid,
    )
    coef = await fit(mpc, lr, woe, labels, rng)
    clock.lap("regression")
    own = np.minimum(coef.own, 0.0)  # noise may flip a sign: clipping is post-processing
    mine = [owner_feature(names[me], b, float(c)) for b, c in zip(kept, own)]
    model = await _collect(mpc, owner, mine, names, setup, coef.intercept)
    clock.lap("points")
    return Outcome(
        rows=n,
        known=int((rows >= 0).sum()),
        binning=binned,
        coefficients={b.cand.name: float(c) for b, c in zip(kept, own)},
        kept=[[k[0] for k in p] for p in public],
        intercept=coef.intercept,
        model=model,
        seconds=clock.laps,
    )


class _Clock:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.t
        self.t = now


def _secret_permutation(n: int) -> np.ndarray:
    order = list(range(n))
    secrets.SystemRandom().shuffle(order)
    return np.array(order, dtype=np.int64)


async def _align(
    mpc: Any, lender: int, ids: list[str], features: list[Any], names: list[str], rows: np.ndarray
) -> np.ndarray:
    """This party's table row for each lender row (-1 unknown); the lender's are `rows`.

    The request goes to every owner first, so the owners compute their answers at the same
    time (each in its own process); the lender intersects each answer as it arrives.
    """
    me = mpc.pid
    client, request = align.LenderSide.start(ids) if me == lender else (None, None)
    owners = [o for o in range(len(names)) if o != lender and features[o]]
    requests = [await send_to(mpc, request, lender, o) for o in owners]
    found = {}
    for o, req in zip(owners, requests):
        answer = None
        if me == o:
            setup, response, n = align.owner_answer(ids, req)
            answer = len(setup).to_bytes(4, "little") + setup + response
        answer = await send_to(mpc, answer, o, lender)
        if me == lender:
            k = int.from_bytes(answer[:4], "little")
            found[o] = client.positions(client.intersect(answer[4 : 4 + k], answer[4 + k :]))
    for o in owners:
        positions = await send_to(mpc, found.get(o), lender, o)
        if me == o:
            rows = align.owner_alignment(ids, n, positions).owner_rows
    return rows


def _propose(name: str, column: np.ndarray, rows: np.ndarray, bins: int) -> Candidates:
    """Candidate bins from this party's values of the aligned rows it knows."""
    return propose(name, np.asarray(column)[rows[rows >= 0]], max_bins=bins)


def _merged(cands: list[Candidates], x: Any, bad: Any, opts: Options) -> list[Binned]:
    out, start = [], 0
    for c in cands:
        stop = start + c.n_bins
        total = x[:, start:stop].sum(axis=0)
        out.append(
            merge(
                c,
                total,
                bad[start:stop],
                monotone=opts.monotone,
                min_share=opts.min_share,
                min_iv=opts.min_iv,
            )
        )
        start = stop
    return out


def _woe_columns(kept: list[Binned], cands: list[Candidates], x: Any) -> np.ndarray | None:
    if not kept:
        return None
    starts = np.cumsum([0] + [c.n_bins for c in cands])
    index = {c.name: i for i, c in enumerate(cands)}
    cols = []
    for b in kept:
        i = index[b.cand.name]
        cols.append(x[:, starts[i] : starts[i + 1]] @ b.candidate_woe())
    return np.stack(cols, axis=1)


async def _collect(
    mpc: Any,
    owner: int,
    mine: list[OwnerFeature],
    names: list[str],
    setup: Setup,
    intercept: float | None,
) -> dict[str, Any] | None:
    """Every party's features to the model owner, which builds the model file."""
    gathered: list[OwnerFeature] = []
    for pid in range(len(names)):
        data = features_to_bytes(mine) if pid == mpc.pid else None
        got = await send_to(mpc, data, pid, owner)
        if mpc.pid == owner:
            gathered += features_from_json(parse(got, "feature points", names[pid]), names[pid])
    if mpc.pid != owner:
        return None
    assert intercept is not None
    o = setup.options
    try:
        return build_model(o.name, o.scaling, o.cutoff, intercept, gathered)
    except ModelError as exc:
        raise SessionError(f"the owners' features do not form a valid model: {exc}") from None
