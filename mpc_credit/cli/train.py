"""`mpc-credit train`: train the scorecard jointly, one local process per institution, or as a
consortium job through the running party daemons (`--config PARTY.toml`).

Prints what the lender and model owner learn (kept features, holdout AUC / Gini / KS, the
privacy spent) on stdout; the --no-dp warning and failures go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mpc_credit.errors import UsageError
from mpc_credit.names import check_name

if TYPE_CHECKING:
    from mpc_credit.consortium.requester import Trained
    from mpc_credit.consortium.train_request import TrainJob
    from mpc_credit.local.train import Training, TrainOutcome
    from mpc_credit.scorecard.reason_table import ReasonTable

LEDGER_DIR = Path("~/.mpc-credit/ledgers")  # one JSON ledger per party: PARTY.json
DEFAULT_BUDGET = 10.0  # each party's, epsilon at delta 1e-6
DEFAULT_EPSILON = 1.0  # a run's, when neither --epsilon nor --no-dp is given
TRENDS = ("auto", "ascending", "descending", "none")
ONE_MACHINE_ONLY = (
    "--data",
    "--test-ids",
    "--report",
    "--scoring-data",
    "--ledger-dir",
    "--budget",
    "--test-fraction",
    "--strict",
)
NO_DP_WARNING = (
    "WARNING: --no-dp: no differential privacy protects the applicants: each owner receives "
    "exact good and bad counts and the model owner exact statistics of everyone's data; the "
    "run is recorded as such in every party's privacy ledger"
)


def _privacy(epsilon: float | None) -> float:
    """The run's epsilon: --epsilon, or the default when it is not given."""
    if epsilon is None:
        return DEFAULT_EPSILON
    if not (epsilon > 0 and epsilon < float("inf")):
        raise UsageError(f"--epsilon {epsilon:g}: must be a positive number")
    return epsilon


def _trends(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """--monotone FEATURE:TREND, repeatable."""
    out = []
    for text in values or []:
        name, sep, trend = text.rpartition(":")
        if not sep or not name or trend not in TRENDS:
            raise UsageError(
                f"--monotone {text!r}: expected FEATURE:TREND with TREND one of {', '.join(TRENDS)}"
            )
        out.append((name, trend))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise UsageError("--monotone: a feature is named twice")
    return tuple(out)


def _positive(value: float | None, flag: str) -> float | None:
    if value is not None and not (value > 0 and value < float("inf")):
        raise UsageError(f"{flag} {value:g}: must be a positive number")
    return value


def train(
    label: Annotated[
        str, typer.Option(help="LENDER:COLUMN: the label column (1 = bad, 0 = good).")
    ],
    model_owner: Annotated[str, typer.Option(help="The party that receives the model file.")],
    name: Annotated[str, typer.Option(help="The model's name.")],
    cutoff: Annotated[int, typer.Option(help="Approve iff score >= cutoff.")],
    out: Annotated[Path, typer.Option(help="The model file, written at the model owner.")],
    data: Annotated[
        list[str] | None,
        typer.Option(help="PARTY=CSV: one per institution, each read by its own party."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="This party's party.toml: train through the running party daemons (this "
            "party the lender and model owner; each party's training_data and privacy budget "
            "are in its own party.toml; no --data, --test-ids, --report, --scoring-data, "
            "--ledger-dir, --budget)."
        ),
    ] = None,
    epsilon: Annotated[
        float | None,
        typer.Option(
            help="The run's differential-privacy budget (delta 1e-6).",
            show_default=f"{DEFAULT_EPSILON:g}",
        ),
    ] = None,
    no_dp: Annotated[
        bool, typer.Option("--no-dp", help="Release exact counts and statistics: NO privacy.")
    ] = False,
    test_ids: Annotated[
        Path | None,
        typer.Option(help="Lender's applicants held out of training, scored after it (AUC)."),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(help="The lender holds out this share of its rows (drawn with --seed)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --test-fraction draw.")] = 0,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="A feature no party contributes (repeatable), e.g. age_in_years."),
    ] = None,
    monotone: Annotated[
        list[str] | None,
        typer.Option(
            help="FEATURE:ascending|descending|auto|none, the bad rate's trend (repeatable)."
        ),
    ] = None,
    c: Annotated[
        float, typer.Option("--c", help="Inverse ridge strength (scikit-learn's C).")
    ] = 1.0,
    woe_clip: Annotated[
        float | None,
        typer.Option(help="WOE values are clipped to +-this.", show_default="1 with DP, 4 without"),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="A guardrail warning refuses to write the model.")
    ] = False,
    regression: Annotated[
        str,
        typer.Option(
            help="quadratic (default; one-shot, DP) | logistic (exact loss in MPC, --no-dp only)."
        ),
    ] = "quadratic",
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
        Path | None,
        typer.Option(
            help="Folder of the parties' privacy ledgers (PARTY.json).",
            show_default=str(LEDGER_DIR),
        ),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            help="Each party's privacy budget (epsilon at delta 1e-6).",
            show_default=str(DEFAULT_BUDGET),
        ),
    ] = None,
    sigmoid: Annotated[
        str, typer.Option(help="--regression logistic: poly (accurate) | linear (fast).")
    ] = "poly",
    newton_steps: Annotated[int, typer.Option(help="--regression logistic: Newton steps.")] = 10,
    polish_steps: Annotated[
        int, typer.Option(help="--regression logistic: steps with the sign's exact projection.")
    ] = 6,
    timeout: Annotated[float, typer.Option(help="Seconds before the run is aborted.")] = 3600.0,
    reasons: Annotated[
        Path | None,
        typer.Option(help="CSV feature,code,statement: the reason codes and statements."),
    ] = None,
) -> None:
    """Train the scorecard jointly: each institution's process reads only its own CSV.

    Differentially private by default (epsilon 1 at delta 1e-6); --no-dp turns privacy off,
    loudly. Training ends with guardrail checks (named warnings; --strict refuses to write a
    model that has any). Exit codes: 0 ok, 2 bad input, 3 failed, 4 refused (a party's privacy
    budget, the consortium policy, or --strict).

    Example:
      mpc-credit train --data bank=bank.csv --data bureau=bureau.csv --data telco=telco.csv
      --label bank:default --model-owner bank --name joint --cutoff 520 --out model.json
      --epsilon 1.0 --test-fraction 0.3 --seed 7 --report report/

    Through the daemons: mpc-credit train --config parties/bank/party.toml
      --label bank:default --model-owner bank --name joint --cutoff 520 --out model.json
      --epsilon 1.0
    """
    from mpc_credit.cli import options
    from mpc_credit.cli.model import load_reasons
    from mpc_credit.consortium.train_request import TrainJob
    from mpc_credit.local.simulate import parse_data_args
    from mpc_credit.local.train import Training, parse_label, train_locally

    if no_dp and epsilon is not None:
        raise UsageError("give either --epsilon or --no-dp, not both")
    run_epsilon = None if no_dp else _privacy(epsilon)
    lender, column = parse_label(label)
    table = load_reasons(reasons)
    job = TrainJob(
        name=check_name(name, "--name"),
        label=check_name(column, "--label (the column)"),
        cutoff=cutoff,
        pdo=pdo,
        odds=odds,
        base_points=base_points,
        epsilon=run_epsilon,
        bins=options.positive(bins, "--bins"),
        exclude=tuple(exclude or ()),
        monotone=_trends(monotone),
        c=float(_positive(c, "--c") or 1.0),
        clip=_positive(woe_clip, "--woe-clip"),
        regression=options.choice(regression, ("quadratic", "logistic"), "--regression"),
        sigmoid=options.choice(sigmoid, ("poly", "linear"), "--sigmoid"),
        newton_steps=options.positive(newton_steps, "--newton-steps"),
        polish_steps=polish_steps,
    )
    given = (
        data,
        test_ids,
        report,
        scoring_data,
        ledger_dir,
        budget,
        test_fraction,
        True if strict else None,
    )
    if config is not None:
        extra = [flag for flag, v in zip(ONE_MACHINE_ONLY, given) if v is not None]
        if extra:
            raise UsageError(f"--config: {', '.join(extra)} belong to a one-machine run")
        _through_daemons(config, lender, model_owner, job, out, timeout, no_dp, table)
        return
    if not data:
        raise UsageError("give --data PARTY=CSV for each party, or --config PARTY.toml")
    t = Training(
        data=parse_data_args(data),
        lender=lender,
        label=column,
        model_owner=model_owner,
        options=job.options(),
        out=out,
        test_ids=test_ids,
        test_fraction=test_fraction,
        seed=seed,
        strict=strict,
        report=report,
        scoring_data=scoring_data,
        ledger_dir=LEDGER_DIR if ledger_dir is None else ledger_dir,
        budget=DEFAULT_BUDGET if budget is None else budget,
        timeout=timeout,
        reasons=table,
    )
    if no_dp:
        typer.echo(f"mpc-credit: {NO_DP_WARNING}", err=True)
    result = train_locally(t)
    for line in result.warnings:
        typer.echo(f"mpc-credit: warning: {line}", err=True)
    for line in summary(t, result):
        typer.echo(line)


def _through_daemons(
    config: Path,
    lender: str,
    owner: str,
    job: TrainJob,
    out: Path,
    timeout: float,
    no_dp: bool,
    table: ReasonTable | None,
) -> None:
    """The job as a consortium training run through this party's daemon; the model to --out."""
    import asyncio
    import json
    import os

    from mpc_credit.cli.model import with_reasons
    from mpc_credit.consortium.config import load_party_config
    from mpc_credit.consortium.fields import MessageError
    from mpc_credit.consortium.requester import train_request
    from mpc_credit.consortium.train_request import job_of
    from mpc_credit.local.processes import staged_output
    from mpc_credit.scorecard.model import from_dict

    party = load_party_config(config).party
    for flag, who in (("--label", lender), ("--model-owner", owner)):
        if who != party:
            raise UsageError(
                f"{flag} {who}: through the daemons the lender and the model owner are this "
                f"party, {party} (the model reaches only its own command)"
            )
    try:
        job_of(job.body())
    except MessageError as exc:
        raise UsageError(f"the training job is out of bounds: {exc}") from None
    final, staged = staged_output(out, "--out")
    if no_dp:
        typer.echo(f"mpc-credit: {NO_DP_WARNING}", err=True)
    result = asyncio.run(train_request(config, job, timeout=timeout))
    model = with_reasons(result.model, table)
    from_dict(model, source=f"{out} (with the reasons of --reasons)")
    try:
        staged.write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        os.replace(staged, final)
    finally:
        staged.unlink(missing_ok=True)
    for line in daemon_summary(party, job, out, result):
        typer.echo(line)


def daemon_summary(party: str, job: TrainJob, out: Path, r: Trained) -> list[str]:
    """What `train --config` prints: the run, the kept features, this party's privacy."""
    from mpc_credit.training.ledger import DELTA

    kept = "; ".join(
        f"{p} {len(names)}" + (f" ({', '.join(names)})" if names else "")
        for p, names in r.kept.items()
    )
    if r.epsilon is None:
        privacy = "privacy: none (--no-dp); recorded as a run without DP in every ledger"
    else:
        privacy = (
            f"privacy: epsilon {r.epsilon:g} (delta {DELTA:g}) spent on each party's applicants; "
            f"{party}'s ledger: {r.epsilon_spent:.3g} of {r.budget:g}"
        )
    return [
        f"trained {job.name!r} on {r.rows} rows of {party} through the consortium daemons in "
        f"{r.seconds:.1f} s (session {r.session[:8]})",
        f"kept features: {kept}",
        privacy,
        f"model written to {out} (at {party}, the model owner)",
    ]


def _checks(findings: list) -> list[str]:
    """The guardrails' verdict: one line per warning, or one line saying none fired."""
    from mpc_credit.training.guardrails import format_findings

    if not findings:
        return ["checks: no warning (AUC, flat features, points, score range, cutoff)"]
    return format_findings(findings)


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
        lines.append(
            "privacy: none (--no-dp); recorded as a run without DP in the ledgers in "
            f"{t.ledger_dir.expanduser()}"
        )
    else:
        spent = ", ".join(f"{p} {r.epsilon_spent[p]:.3g} of {r.budget[p]:g}" for p in t.parties)
        lines.append(
            f"privacy: epsilon {e:g} (delta {DELTA:g}) spent on each party's applicants; "
            f"ledgers in {t.ledger_dir.expanduser()}: {spent}"
        )
    lines += _checks(r.findings)
    lines.append(f"model written to {t.out} (at {t.model_owner}, the model owner)")
    if t.scoring_data is not None:
        lines.append(f"scoring CSVs (the model's columns): {t.scoring_data}/PARTY.csv")
    if t.report is not None:
        lines.append(f"report: {t.report / 'index.html'}")
    return lines
