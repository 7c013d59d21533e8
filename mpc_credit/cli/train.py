"""`mpc-credit train`: train the scorecard jointly, one local process per institution.

Prints what the lender and model owner learn (kept features, holdout AUC / Gini / KS, the
privacy spent) on stdout; the --no-dp warning and failures go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mpc_credit.errors import UsageError

if TYPE_CHECKING:
    from mpc_credit.local.train import Training, TrainOutcome

LEDGER_DIR = Path("~/.mpc-credit/ledgers")  # one JSON ledger per party: PARTY.json
DEFAULT_BUDGET = 10.0  # each party's, epsilon at delta 1e-6
NO_DP_WARNING = (
    "WARNING: --no-dp: no differential privacy protects the applicants: each owner receives "
    "exact bad counts and coefficients, and nothing is recorded in the privacy ledgers"
)


def _privacy(epsilon: float | None) -> float:
    """The run's epsilon, after checking that exactly one of --epsilon / --no-dp was given."""
    if epsilon is None:
        raise UsageError("give --epsilon E (the run's privacy budget) or --no-dp (no privacy)")
    if not (epsilon > 0 and epsilon < float("inf")):
        raise UsageError(f"--epsilon {epsilon:g}: must be a positive number")
    return epsilon


def train(
    data: Annotated[
        list[str], typer.Option(help="PARTY=CSV: one per institution, each read by its own party.")
    ],
    label: Annotated[
        str, typer.Option(help="LENDER:COLUMN: the label column (1 = bad, 0 = good).")
    ],
    model_owner: Annotated[str, typer.Option(help="The party that receives the model file.")],
    name: Annotated[str, typer.Option(help="The model's name.")],
    cutoff: Annotated[int, typer.Option(help="Approve iff score >= cutoff.")],
    out: Annotated[Path, typer.Option(help="The model file, written at the model owner.")],
    epsilon: Annotated[
        float | None, typer.Option(help="The run's differential-privacy budget (delta 1e-6).")
    ] = None,
    no_dp: Annotated[
        bool, typer.Option("--no-dp", help="Release exact counts and coefficients: NO privacy.")
    ] = False,
    test_ids: Annotated[
        Path | None,
        typer.Option(help="Lender's applicants held out of training, scored after it (AUC)."),
    ] = None,
    bins: Annotated[int, typer.Option(help="Candidate (quantile) bins per numeric feature.")] = 10,
    pdo: Annotated[float, typer.Option(help="Points to double the odds.")] = 20,
    odds: Annotated[float, typer.Option(help="Good:bad odds at the base points.")] = 50,
    base_points: Annotated[float, typer.Option(help="Score at those odds.")] = 600,
    report: Annotated[
        Path | None, typer.Option(help="Folder for the HTML report (at the model owner).")
    ] = None,
    scoring_data: Annotated[
        Path | None,
        typer.Option(help="Folder where each party writes PARTY.csv with the model's columns."),
    ] = None,
    ledger_dir: Annotated[
        Path, typer.Option(help="Folder of the parties' privacy ledgers (PARTY.json).")
    ] = LEDGER_DIR,
    budget: Annotated[
        float, typer.Option(help="Each party's privacy budget (epsilon at delta 1e-6).")
    ] = DEFAULT_BUDGET,
    sigmoid: Annotated[
        str, typer.Option(help="poly (accurate, DP) | linear (fast, --no-dp only).")
    ] = "poly",
    newton_steps: Annotated[int, typer.Option(help="Newton steps of the regression.")] = 10,
    polish_steps: Annotated[
        int, typer.Option(help="Steps with the sign constraint's exact projection.")
    ] = 6,
    timeout: Annotated[float, typer.Option(help="Seconds before the run is aborted.")] = 3600.0,
) -> None:
    """Train the scorecard jointly: each institution's process reads only its own CSV.

    Exactly one of --epsilon E or --no-dp. Exit codes: 0 ok, 2 bad input, 3 failed,
    4 refused (a party's privacy budget).

    Example:
      mpc-credit train --data bank=bank.csv --data bureau=bureau.csv --data telco=telco.csv
      --label bank:default --model-owner bank --name joint --cutoff 520 --out model.json
      --epsilon 1.0 --test-ids test.txt --report report/
    """
    from mpc_credit.cli import options
    from mpc_credit.local.simulate import parse_data_args
    from mpc_credit.local.train import Training, parse_label, train_locally
    from mpc_credit.scorecard.model import Scaling
    from mpc_credit.training.session import Options

    if no_dp and epsilon is not None:
        raise UsageError("give either --epsilon or --no-dp, not both")
    run_epsilon = None if no_dp else _privacy(epsilon)
    lender, column = parse_label(label)
    opts = Options(
        name=name,
        cutoff=cutoff,
        scaling=Scaling(pdo, odds, base_points),
        epsilon=run_epsilon,
        bins=options.positive(bins, "--bins"),
        sigmoid=options.choice(sigmoid, ("poly", "linear"), "--sigmoid"),
        newton_steps=options.positive(newton_steps, "--newton-steps"),
        polish_steps=polish_steps,
    )
    t = Training(
        data=parse_data_args(data),
        lender=lender,
        label=column,
        model_owner=model_owner,
        options=opts,
        out=out,
        test_ids=test_ids,
        report=report,
        scoring_data=scoring_data,
        ledger_dir=ledger_dir,
        budget=budget,
        timeout=timeout,
    )
    if no_dp:
        typer.echo(f"mpc-credit: {NO_DP_WARNING}", err=True)
    result = train_locally(t)
    for line in summary(t, result):
        typer.echo(line)


def summary(t: Training, r: TrainOutcome) -> list[str]:
    """What the command prints: the run, the kept features, the holdout, privacy, files."""
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in r.phases.items())
    lines = [
        f"trained {t.options.name!r} on {r.rows} rows of {t.lender} with {len(t.parties)} "
        f"parties in {r.seconds:.1f} s ({phases})",
        "kept features: "
        + "; ".join(
            f"{p} {len(r.kept[p])} of {len(r.candidates[p])}"
            + (f" ({', '.join(r.kept[p])})" if r.kept[p] else "")
            for p in t.parties
        ),
    ]
    h = r.holdout
    if h is not None:
        m = h.metrics
        lines.append(
            f"holdout: {m.n} applicants ({m.bad} bad) scored by the engine, scores to "
            f"{t.lender} only: AUC {m.auc:.4f}, Gini {m.gini:.4f}, KS {m.ks:.4f}"
        )

    from mpc_credit.training.ledger import DELTA

    e = t.options.epsilon
    if e is None:
        lines.append("privacy: none (--no-dp); nothing recorded in the ledgers")
    else:
        spent = ", ".join(f"{p} {r.epsilon_spent[p]:.3g} of {r.budget[p]:g}" for p in t.parties)
        lines.append(
            f"privacy: epsilon {e:g} (delta {DELTA:g}) spent on each party's applicants; "
            f"ledgers in {t.ledger_dir.expanduser()}: {spent}"
        )
    lines.append(f"model written to {t.out} (at {t.model_owner}, the model owner)")
    if t.scoring_data is not None:
        lines.append(f"scoring CSVs (the model's columns): {t.scoring_data}/PARTY.csv")
    if t.report is not None:
        lines.append(f"report: {t.report / 'index.html'}")
    return lines
