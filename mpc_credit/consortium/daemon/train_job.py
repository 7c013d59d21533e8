"""A training session at one party's daemon: its own conditions, its privacy ledger, the run.

The consortium policy (`policy.check_train`: who may train, freshness) is every party's; what
this module adds is the party's own word:

- `refusal(req)`: a training CSV is configured (party.toml `training_data`); a run without DP
  only if the party allows it (`allow_no_dp`, public reason "no-DP training not allowed": the
  consortium members' choice, not the requester's); fewer runs in its ledger over the last 24
  hours than `max_training_runs_per_day` (public reason naming the limit); and, with DP, the
  run fits the party's privacy budget (`privacy_budget`, epsilon at delta 1e-6, over the runs
  in its ledger `privacy_ledger`); the public reason of an over-budget refusal names the
  budget (the broker adds the party);
- `charge(req)`: the run's zCDP rho recorded in the ledger at acceptance, before the audit
  line and long before the run (an atomic, fsynced rewrite under the ledger's lock, checked
  again against the file as it is then, budget and run limit: another process may share the
  ledger): no crash loses
  a charge, and a run that fails once this party connected has spent it (its noise may have
  been released); `refund(req)` gives it back for a session aborted before this party
  connected (another party refused it): nothing was computed, so nothing was released. A run
  without DP is recorded too (rho null, dp false: this party's exact statistics went into it)
  and never refunded: the record says such a run was accepted, and the audit line says dp
  false;
- `run(mpc, s)`: the party's own CSV (the requester's with its label column: the requester is
  the lender and the model owner), less the job's excluded features and the consortium
  policy's prohibited ones (`session_options`: those columns are neither checked nor read into
  the run, so they never leave the party, whatever the job asks), then
  `training.session.train` over the session's connected runtime. The requester gets the
  model and the public facts (kept features by party, rows); any other party gets None.
  Nothing of it is logged or audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mpc_credit.consortium.config import Consortium, PartyConfig, load_consortium
from mpc_credit.consortium.daemon.session import Session
from mpc_credit.consortium.policy import exclusion
from mpc_credit.consortium.reasons import (
    NO_DP_NOT_ALLOWED,
    NO_TRAINING_DATA,
    REPLAYED,
    Refusal,
    over_budget,
    run_limit,
)
from mpc_credit.consortium.train_request import TrainJob, TrainRequest
from mpc_credit.errors import MpcCreditError, RefusedError, SessionError
from mpc_credit.training.ledger import Ledger, RunLimitReached, rho_for

if TYPE_CHECKING:
    from mpc_credit.training.session import Options, Table


@dataclass(frozen=True)
class Trained:
    """What the requester's daemon hands its command: the model and public facts."""

    model: dict[str, Any]
    kept: dict[str, list[str]]  # kept feature names by party (public)
    rows: int  # the lender's training rows

    def fields(self, party: str, ledger: Ledger, epsilon: float | None) -> dict[str, Any]:
        """The local client's `result` event."""
        return {
            "model": self.model,
            "kept": self.kept,
            "rows": self.rows,
            "epsilon": epsilon,
            "epsilon_spent": ledger.spent() if epsilon is not None else None,
            "budget": ledger.budget,
            "party": party,
        }


class TrainingSide:
    """This party's side of training sessions: its data, its budget, its ledger."""

    def __init__(self, cfg: PartyConfig, cons: Consortium | None = None) -> None:
        """`cons`: the consortium whose policy applies (default: read cfg's consortium file)."""
        self.party, self.source = cfg.party, cfg.source
        self.cons = load_consortium(cfg.consortium_file) if cons is None else cons
        self.data = cfg.training_data
        self.allow_no_dp = cfg.allow_no_dp
        # a malformed ledger stops the daemon at start (DataError), never mid-session
        self.ledger = Ledger.open(
            cfg.privacy_ledger, cfg.party, cfg.privacy_budget, cfg.max_training_runs_per_day
        )

    def refusal(self, req: TrainRequest) -> Refusal | None:
        """Why this party refuses to train with its data now, or None."""
        if self.data is None:
            return Refusal(
                f"party {self.party} has no training data configured (training_data in "
                f"{self.source})",
                NO_TRAINING_DATA,
            )
        if not self.data.is_file():
            return Refusal(f"party {self.party}: {self.data} not found", NO_TRAINING_DATA)
        rho = _rho(req)
        if rho is None and not self.allow_no_dp:
            return Refusal(
                f"party {self.party} does not allow training without DP (allow_no_dp in "
                f"{self.source})",
                NO_DP_NOT_ALLOWED,
            )
        try:
            self.ledger.check_rate()
        except RunLimitReached as exc:
            return Refusal(str(exc), self._limit())
        if rho is not None:
            try:
                self.ledger.check(req.session, rho)
            except RefusedError as exc:
                return Refusal(str(exc), over_budget(self.ledger.budget))
        return None

    def charge(self, req: TrainRequest) -> Refusal | None:
        """Record the run in the ledger: its rho, or that it runs without DP (spending no
        budget). The refusal when the ledger, re-read under its lock, has no room left (or
        already holds the run); DataError when it became malformed, OSError when it cannot
        be written."""
        rho = _rho(req)
        try:
            if rho is None:
                self.ledger.record_no_dp(req.session)
            else:
                self.ledger.charge(req.session, rho)
        except RunLimitReached as exc:
            return Refusal(str(exc), self._limit())
        except RefusedError as exc:  # without DP only a known run id: a replay of its request
            return Refusal(str(exc), REPLAYED if rho is None else over_budget(self.ledger.budget))
        return None

    def _limit(self) -> str:
        return run_limit(self.ledger.max_runs_per_day or 0)

    def refund(self, req: TrainRequest) -> None:
        """Give the charge back: for a session aborted before this party connected (another
        party refused it, or did not accept in time), which released nothing; OSError when
        the ledger cannot be written (the charge then stays). A run without DP keeps its
        record: that it was accepted is what the record says."""
        if _rho(req) is not None:
            self.ledger.refund(req.session)

    async def run(self, mpc: Any, s: Session) -> Trained | None:
        """This party's side of the training session over the connected runtime `mpc`."""
        from mpc_credit.training.session import Setup, train

        req = s.req
        assert isinstance(req, TrainRequest) and self.data is not None
        job = req.job
        setup = Setup(s.parties, req.requester, req.requester, job.options())
        label = job.label if self.party == req.requester else None
        try:
            setup.check()
            options, table = await asyncio.to_thread(self._table, job, label)
        except MpcCreditError as exc:
            raise SessionError(f"party {self.party}: {exc}") from exc  # the cause: its category
        outcome = await train(mpc, replace(setup, options=options), table)
        if outcome.model is None:
            return None
        kept = dict(zip(s.parties, outcome.kept))
        return Trained(outcome.model, kept, outcome.rows)

    def _table(self, job: TrainJob, label: str | None) -> tuple[Options, Table]:
        """The session's options here and this party's training table without the excluded
        columns (one read of the CSV: the header the exclusion is matched against is the
        file's that is read)."""
        from mpc_credit.training.data import read_training_csv

        assert self.data is not None
        data = read_training_csv(self.data, label)
        options = session_options(job, self.cons, data.features)
        return options, data.table(job.bins, options.exclude)

    def answer(self, result: Trained, req: TrainRequest) -> dict[str, Any]:
        return result.fields(self.party, self.ledger, req.job.epsilon)


def session_options(job: TrainJob, cons: Consortium, columns: Iterable[str] = ()) -> Options:
    """The session's options at this party: the job's, excluding the job's `exclude` and the
    consortium policy's prohibited features (policy.exclusion; `columns`, the party's CSV
    header, to catch a prohibited column spelt in another case)."""
    return replace(job.options(), exclude=exclusion(job, cons, columns))


def _rho(req: TrainRequest) -> float | None:
    e = req.job.epsilon
    return None if e is None else rho_for(e)
