"""One party's whole training session: align, bin, count, merge, gather statistics, fit, points.

Every party runs `train(mpc, setup, table)` with the same public `setup` and its own table, in
a started MPyC runtime whose pids follow `setup.parties`. What crosses, in order:

1. feature names of each party (public schema; excluded features never leave their owner);
2. PSI between the lender and each other party with features (align.py): the lender's request,
   the owner's answer, the intersection positions, each point to point;
3. candidate bin counts per feature (public), then the secure good and bad counts, each owner's
   revealed to it alone with DP noise (counts.py; the lender's own counts stay local);
4. every candidate feature's IV and whether it is kept, with the kept features' final bin
   counts (public: post-processing of the noisy counts);
5. the sufficient statistics A = X~^T X~, b = X~^T y of the kept WOE columns, to the model
   owner alone, noisy where they hold others' data (stats.py);
6. each owner's final bins and clipped WOE per bin to the model owner, which fits the
   coefficients (ssp.py), drops features whose coefficient is 0 and writes the model file
   (points.py); then the names of the features in the model (public).

The lender shuffles its rows first (secret permutation), so the positions an owner learns in
step 2 say nothing. DP: the run's budget `epsilon` (at ledger.DELTA) becomes zCDP rho, split by
privacy.Budget; with `epsilon=None` nothing is noised (--no-dp). With `regression="logistic"`
(--no-dp only) step 5 is instead the exact logistic fit of logistic.py, its coefficients to the
model owner alone.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from mpc_credit.errors import ModelError, SessionError, UsageError
from mpc_credit.scorecard.model import Scaling
from mpc_credit.training import align, privacy, ssp
from mpc_credit.training.bins import Candidates, onehot, propose
from mpc_credit.training.counts import Counts, CountSpec, check_labels, label_counts, local_counts
from mpc_credit.training.guardrails import bin_points
from mpc_credit.training.ledger import rho_for
from mpc_credit.training.logistic import LrSpec, Sigmoid
from mpc_credit.training.logistic import fit as logistic_fit
from mpc_credit.training.noise import Rng
from mpc_credit.training.points import (
    OwnerFeature,
    build_model,
    features_from_json,
    features_to_bytes,
    owner_feature,
)
from mpc_credit.training.stats import StatsSpec, sufficient_statistics
from mpc_credit.training.wire import parse, publish, send_to
from mpc_credit.training.woe import Binned, Monotone, merge

Regression = Literal["quadratic", "logistic"]
DEFAULT_SCALING = Scaling(20, 50, 600)


@dataclass(frozen=True)
class Options:
    """The run's public parameters."""

    name: str
    cutoff: int
    scaling: Scaling = DEFAULT_SCALING
    epsilon: float | None = None  # total budget of the run; None: no DP
    bins: int = 10
    monotone: Monotone = "auto"  # numeric features' trend, unless named in monotone_features
    monotone_features: tuple[tuple[str, str], ...] = ()  # (feature, trend) overrides
    exclude: tuple[str, ...] = ()  # features no party contributes (prohibited characteristics)
    min_share: float = 0.05
    min_iv: float = 0.02
    c: float = 1.0  # inverse ridge strength, as scikit-learn's C
    clip: float | None = None  # WOE clip B; None: privacy.clip_for(epsilon)
    regression: Regression = "quadratic"  # "logistic": the exact loss in MPC, --no-dp only
    newton_steps: int = 10  # logistic only
    polish_steps: int = 6  # logistic only
    sigmoid: Sigmoid = "poly"  # logistic only

    def woe_clip(self) -> float:
        return privacy.clip_for(self.epsilon) if self.clip is None else self.clip

    def trend(self, feature: str) -> Monotone:
        """The monotone trend asked for `feature`."""
        return dict(self.monotone_features).get(feature, self.monotone)  # type: ignore[return-value]


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
        o = self.options
        if o.regression == "logistic" and o.epsilon is not None:
            raise UsageError(
                "the exact logistic regression has no DP release: train with DP on the default "
                "quadratic regression, or with --no-dp"
            )
        if not (o.c > 0 and o.woe_clip() > 0):
            raise UsageError("--c and --woe-clip must be positive numbers")
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
    kept: list[list[str]]  # public: the features in the model, by pid
    ivs: list[dict[str, float]] = field(default_factory=list)  # public: every candidate's IV
    coefficients: dict[str, float] = field(default_factory=dict)  # model owner: every feature's
    intercept: float | None = None  # model owner
    model: dict[str, Any] | None = None  # model owner
    seconds: dict[str, float] = field(default_factory=dict)


async def train(mpc: Any, setup: Setup, table: Table, rng: Rng | None = None) -> Outcome:
    """Run this party's side of the training session."""
    setup.check()
    me, names, opts = mpc.pid, list(setup.parties), setup.options
    lender, owner = names.index(setup.lender), names.index(setup.model_owner)
    clock = _Clock()
    columns = {k: v for k, v in table.columns.items() if k not in opts.exclude}
    labels = None
    ids = list(table.ids)
    rows = np.zeros(0, dtype=np.int64)
    if me == lender:  # the lender's rows in a secret order: row i is its table row rows[i]
        rows = _secret_permutation(len(ids))
        ids = [ids[i] for i in rows]
        labels = check_labels(table.labels, len(rows))[rows]
    features = await publish(mpc, list(columns), names, "feature list")
    rows = await _align(mpc, lender, ids, features, names, rows)
    n = int((await publish(mpc, len(rows), names, "row count"))[lender])
    if len(rows) not in (0, n):
        raise SessionError(f"party {names[lender]} announced {n} rows, not the {len(rows)} aligned")
    rows = rows if len(rows) else np.full(n, -1, dtype=np.int64)
    clock.lap("alignment")
    cands = [_propose(name, col, rows, opts.bins) for name, col in columns.items()]
    x = np.hstack([onehot(c, columns[c.name], rows) for c in cands]) if cands else None
    widths = await publish(mpc, [c.n_bins for c in cands], names, "bin counts")
    counts = await _counts(mpc, setup, n, widths, x, labels, rng)
    binned = _merged(cands, counts, opts)
    kept = [b for b in binned if b.kept]
    clock.lap("binning")
    public = await publish(mpc, [[b.cand.name, b.iv, b.kept] for b in binned], names, "IVs")
    ncols = [sum(1 for f in p if f[2]) for p in public]
    if sum(ncols) == 0:
        raise SessionError(f"no feature reaches the IV threshold {opts.min_iv}")
    clip = opts.woe_clip()
    woe = _woe_units(kept, cands, x, clip)
    coef = await _regression(mpc, setup, n, ncols, woe, labels, rng)
    clock.lap("regression")
    mine = [owner_feature(names[me], b, clip) for b in kept]
    model, coefficients, in_model = await _collect(mpc, owner, mine, names, setup, coef)
    in_model = (await publish(mpc, in_model, names, "model features"))[owner]
    clock.lap("points")
    return Outcome(
        rows=n,
        known=int((rows >= 0).sum()),
        binning=binned,
        kept=in_model,
        ivs=[{str(f[0]): float(f[1]) for f in p} for p in public],
        coefficients=coefficients,
        intercept=None if coef is None else coef.intercept,
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
    client, request = None, None
    if me == lender:
        client, request = await asyncio.to_thread(align.LenderSide.start, ids)
    owners = [o for o in range(len(names)) if o != lender and features[o]]
    requests = [await send_to(mpc, request, lender, o) for o in owners]
    found = {}
    for o, req in zip(owners, requests):
        answer = None
        if me == o:  # refused before any work when over align.request_limit(len(ids))
            align.check_request_size(req, len(ids))
            setup, response, n = await asyncio.to_thread(align.owner_answer, ids, req)
            answer = len(setup).to_bytes(4, "little") + setup + response
        answer = await send_to(mpc, answer, o, lender)
        if me == lender:
            found[o] = await asyncio.to_thread(_lender_positions, client, answer)
    for o in owners:
        positions = await send_to(mpc, found.get(o), lender, o)
        if me == o:
            aligned = await asyncio.to_thread(align.owner_alignment, ids, n, positions)
            rows = aligned.owner_rows
    return rows


def _lender_positions(client: align.LenderSide, answer: bytes | None) -> bytes:
    """Steps 2 and 3 at the lender, off the event loop: the positions message for one owner."""
    if not isinstance(answer, bytes) or len(answer) < 4:
        raise SessionError("alignment: an owner's PSI answer is malformed")
    k = int.from_bytes(answer[:4], "little")
    if k > len(answer) - 4:
        raise SessionError("alignment: an owner's PSI answer is malformed")
    return client.positions(client.intersect(answer[4 : 4 + k], answer[4 + k :]))


def _propose(name: str, column: np.ndarray, rows: np.ndarray, bins: int) -> Candidates:
    """Candidate bins from this party's values of the aligned rows it knows."""
    return propose(name, np.asarray(column)[rows[rows >= 0]], max_bins=bins)


def _fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(2**20)


async def _counts(
    mpc: Any,
    setup: Setup,
    n: int,
    widths: list[Any],
    x: np.ndarray | None,
    labels: np.ndarray | None,
    rng: Rng | None,
) -> Counts | None:
    """This party's good and bad counts: the owners' from the MPC, the lender's its own."""
    names = list(setup.parties)
    lender, owner = names.index(setup.lender), names.index(setup.model_owner)
    exact_lender = lender == owner  # its counts reach no one else
    rho = setup.rho()
    sigma2 = None
    if rho is not None:
        noised = sum(len(w) for pid, w in enumerate(widths) if pid != lender or not exact_lender)
        sigma2 = _fraction(privacy.count_sigma2(noised, privacy.Budget(rho).counts))
    secure = [0 if pid == lender else sum(w) for pid, w in enumerate(widths)]
    mine = x if mpc.pid != lender else None
    got = await label_counts(mpc, CountSpec(n, lender, secure, sigma2), mine, labels, rng)
    if mpc.pid == lender and x is not None:
        return local_counts(x, labels, None if exact_lender else sigma2, rng)
    return got


def _merged(cands: list[Candidates], counts: Counts | None, opts: Options) -> list[Binned]:
    if counts is None:
        return []
    total, bad = counts.clipped()
    out, start = [], 0
    for c in cands:
        stop = start + c.n_bins
        out.append(
            merge(
                c,
                total[start:stop],
                bad[start:stop],
                monotone=opts.trend(c.name),
                min_share=opts.min_share,
                min_iv=opts.min_iv,
            )
        )
        start = stop
    return out


def _woe_units(
    kept: list[Binned], cands: list[Candidates], x: Any, clip: float
) -> np.ndarray | None:
    """This party's kept WOE columns, clipped, in integer units of 2^-WOE_BITS."""
    if not kept:
        return None
    starts = np.cumsum([0] + [c.n_bins for c in cands])
    index = {c.name: i for i, c in enumerate(cands)}
    cols = []
    for b in kept:
        i = index[b.cand.name]
        cols.append(x[:, starts[i] : starts[i + 1]] @ privacy.woe_units(b.candidate_woe(), clip))
    return np.stack(cols, axis=1)


def _stats_spec(setup: Setup, n: int, ncols: list[int]) -> tuple[StatsSpec, float]:
    """The statistics' public spec and the sd of A's noise (WOE units; 0 without DP)."""
    names = list(setup.parties)
    lender, owner = names.index(setup.lender), names.index(setup.model_owner)
    rho = setup.rho()
    if rho is None:
        return StatsSpec(n, lender, owner, ncols), 0.0
    budget = privacy.Budget(rho)
    d_own = ncols[owner]
    da, db = privacy.stats_sensitivity(
        sum(ncols) - d_own, d_own, setup.options.woe_clip(), lender == owner
    )
    va, vb = privacy.gaussian_sigma2(da, budget.a), privacy.gaussian_sigma2(db, budget.b)
    unit = 2**privacy.WOE_BITS
    spec = StatsSpec(n, lender, owner, ncols, _fraction(va * unit**4), _fraction(vb * unit**2))
    return spec, va**0.5


async def _regression(
    mpc: Any,
    setup: Setup,
    n: int,
    ncols: list[int],
    woe: np.ndarray | None,
    labels: np.ndarray | None,
    rng: Rng | None,
) -> ssp.Fit | None:
    """The coefficients and intercept, at the model owner alone (None elsewhere)."""
    names, o = list(setup.parties), setup.options
    lender, owner = names.index(setup.lender), names.index(setup.model_owner)
    if o.regression == "logistic":
        lr = LrSpec(n, lender, owner, ncols, o.c, o.woe_clip(), o.newton_steps, o.polish_steps,
                    o.sigmoid)  # fmt: skip
        floats = None if woe is None else woe / 2**privacy.WOE_BITS
        return await logistic_fit(mpc, lr, floats, labels)
    spec, noise_sd = _stats_spec(setup, n, ncols)
    stats = await sufficient_statistics(mpc, spec, woe, labels, rng)
    if stats is None:
        return None
    return ssp.fit(stats.a, stats.b, n, o.c, noise_sd, spec.noisy_features())


async def _collect(
    mpc: Any,
    owner: int,
    mine: list[OwnerFeature],
    names: list[str],
    setup: Setup,
    fit: ssp.Fit | None,
) -> tuple[dict[str, Any] | None, dict[str, float], list[list[str]] | None]:
    """Every party's features to the model owner, which builds the model file.

    Returns, at the model owner: the model, every kept feature's coefficient, and the model's
    features by pid. A feature whose points round to the same value in every bin (its
    coefficient 0 or nearly) changes no ranking: it is left out, its share of the intercept
    going to the others.
    """
    gathered: list[OwnerFeature] = []
    for pid in range(len(names)):
        data = features_to_bytes(mine) if pid == mpc.pid else None
        got = await send_to(mpc, data, pid, owner)
        if mpc.pid == owner:
            gathered += features_from_json(parse(got, "feature bins", names[pid]), names[pid])
    if mpc.pid != owner:
        return None, {}, None
    assert fit is not None
    if len(gathered) != len(fit.coefficients):
        raise SessionError("the owners' features do not match the regression's columns")
    coefficients = {f.name: float(c) for f, c in zip(gathered, fit.coefficients)}
    used = [(f, c) for f, c in zip(gathered, fit.coefficients) if c != 0]
    o = setup.options
    while True:
        if not used:
            raise SessionError("every coefficient is 0: no feature separates good from bad here")
        try:
            model = build_model(o.name, o.scaling, o.cutoff, fit.intercept, used)
        except ModelError as exc:
            raise SessionError(f"the owners' features do not form a valid model: {exc}") from None
        flat = {f["name"] for f in model["features"] if len(set(bin_points(f))) == 1}
        if not flat:
            break
        used = [(f, c) for f, c in used if f.name not in flat]  # same points in every bin
    by_pid = [[f.name for f, _ in used if f.owner == p] for p in names]
    return model, coefficients, by_pid
