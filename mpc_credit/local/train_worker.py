"""A party process for one training run: `python -m mpc_credit.local.train_worker SPEC.json`.

Before `ready` (local/processes.py) it reads only its own CSV (at the lender: the label column,
less the holdout), checks its columns, and, with DP, checks its privacy ledger: a run past
its budget is refused here, before any party starts. On `go` it charges the ledger first
(write-ahead: a run that fails later has still spent its budget), connects to the others over
the checked TLS links (engine/links.start_runtime), and runs `training.session.train`. Then the
model owner writes the model file to its staged path, and every party writes its scoring CSV:
its own rows with the columns the model kept (training/data.py), for the holdout session and
for `simulate`. Its `done` event carries what is public (kept features, seconds, epsilon); the
model owner, when a report is asked, writes its own features' binning tables beside its model.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mpc_credit.engine.runtime import close_runtime, make_runtime
from mpc_credit.errors import UsageError
from mpc_credit.jsonwire import WireError, decode_object, emit, encode
from mpc_credit.local.processes import memory_mb, party_main, wait_for_go
from mpc_credit.scorecard.data import load_ids
from mpc_credit.scorecard.model import Scaling
from mpc_credit.training.data import TrainingData, training_table
from mpc_credit.training.ledger import Ledger
from mpc_credit.training.report import intervals
from mpc_credit.training.session import Options, Outcome, Setup, Table, train
from mpc_credit.training.woe import Binned


@dataclass(frozen=True)
class TrainSpec:
    """What one party process needs for one training run: the public setup and its own files."""

    party: str
    parties: tuple[str, ...]
    lender: str
    model_owner: str
    options: dict[str, Any]  # session.Options as JSON
    run: str  # the run's id, as recorded in the ledgers
    addresses: tuple[tuple[str, int], ...]
    tls: str  # the folder holding this party's .config/
    data: str  # this party's training CSV
    scoring: str  # where this party writes its scoring CSV
    label: str | None = None  # the lender's label column
    test_ids: str | None = None  # the lender's holdout, one id per line
    ledger: str | None = None  # this party's privacy ledger
    budget: float = 0.0  # its budget, epsilon at ledger.DELTA
    out: str | None = None  # the model owner's staged model file
    details: str | None = None  # where this party writes its own binning tables (JSON)

    @property
    def pid(self) -> int:
        return self.parties.index(self.party)

    def setup(self) -> Setup:
        o = dict(self.options)
        opts = Options(**{**o, "scaling": Scaling(**o["scaling"])})
        return Setup(self.parties, self.lender, self.model_owner, opts)

    def dumps(self) -> str:
        return encode(asdict(self)).decode("utf-8")

    @classmethod
    def loads(cls, text: str) -> TrainSpec:
        try:
            d = decode_object(text)
            d["parties"] = tuple(d["parties"])
            d["addresses"] = tuple((str(h), int(p)) for h, p in d["addresses"])
            return cls(**d)
        except (WireError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid training spec: {exc}") from None


def options_json(options: Options) -> dict[str, Any]:
    """Options as the spec carries them."""
    return asdict(options)


def prepare(spec: TrainSpec, setup: Setup) -> tuple[TrainingData, Table, Ledger | None]:
    """All this party's rows, its checked training table (the lender's less the holdout) and,
    with DP, its ledger after checking that the run fits its budget."""
    setup.check()
    holdout = load_ids(spec.test_ids) if spec.test_ids is not None else None
    data, table = training_table(
        spec.data,
        spec.label,
        setup.options.bins,
        holdout,
        str(spec.test_ids),
        setup.options.exclude,
    )
    if spec.ledger is None:
        return data, table, None
    ledger = Ledger.open(Path(spec.ledger), spec.party, spec.budget)
    rho = setup.rho()
    if rho is not None:
        ledger.check(spec.run, rho)
    return data, table, ledger


def binning_tables(binned: list[Binned]) -> list[dict[str, Any]]:
    """This party's features as the report shows them: bins, rows, noisy bads, WOE, IV."""
    out = []
    for b in binned:
        if b.cand.kind == "numeric":
            labels = intervals(b.edges)
        else:
            labels = [", ".join(g) for g in b.categories]
        out.append(
            {
                "name": b.cand.name,
                "kept": b.kept,
                "iv": round(float(b.iv), 6),
                "bins": [
                    [label, int(t), int(bad), round(float(w), 6)]
                    for label, t, bad, w in zip([*labels, "missing"], b.total, b.bad, b.woe)
                ],
            }
        )
    return out


async def run(spec: TrainSpec) -> int:
    setup = spec.setup()
    data, table, ledger = prepare(spec, setup)
    emit("ready", party=spec.party, rows=len(table.ids))
    if not await wait_for_go():
        return 1
    rho = setup.rho()
    if ledger is not None:
        ledger.charge(spec.run, rho) if rho is not None else ledger.record_no_dp(spec.run)
    mpc = make_runtime(spec.pid, spec.addresses, ssl=True)
    from mpc_credit.engine.links import start_runtime  # imports MPyC: after make_runtime did

    await start_runtime(mpc, spec.tls, names=spec.parties)  # checked links, no pickles
    t0 = time.perf_counter()
    outcome = await train(mpc, setup, table)
    mpc_s = time.perf_counter() - t0
    await close_runtime(mpc)
    if outcome.model is not None and spec.out is not None:
        Path(spec.out).write_text(json.dumps(outcome.model, indent=2) + "\n", encoding="utf-8")
    data.write_columns(Path(spec.scoring), outcome.kept[spec.pid])
    if spec.details is not None:
        Path(spec.details).write_text(json.dumps(binning_tables(outcome.binning)) + "\n")
    bad_rate = None if table.labels is None else float(table.labels.mean())
    emit("done", **_summary(spec, outcome, ledger, mpc_s), bad_rate=bad_rate)
    return 0


def _summary(spec: TrainSpec, out: Outcome, ledger: Ledger | None, mpc_s: float) -> dict:
    return {
        "party": spec.party,
        "rows": out.rows,
        "known": out.known,
        "candidates": [b.cand.name for b in out.binning],
        "kept": out.kept[spec.pid],
        "ivs": out.ivs,
        "seconds": {k: round(v, 3) for k, v in out.seconds.items()},
        "mpc_s": round(mpc_s, 3),
        "epsilon_spent": None if ledger is None else ledger.spent(),
        "no_dp_runs": None if ledger is None else ledger.no_dp_runs(),
        "budget": None if ledger is None else ledger.budget,
        "peak_mb": round(memory_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    return party_main(sys.argv[1:] if argv is None else argv, TrainSpec.loads, run)


if __name__ == "__main__":
    sys.exit(main())
