"""`mpc-credit demo`: the bundled three-institution consortium on German credit data.

First the three institutions train the scorecard jointly (`mpc-credit train`'s path: one process
each, only its own CSV; the bank's labels as a column of its CSV; 30 % of the applicants held
out and scored by the engine), with --no-dp and the linear sigmoid so that the demo takes
seconds: at 700 training rows DP noise at a useful epsilon leaves little of the model (README),
and the polynomial sigmoid takes about 50 s here for the same AUC. The demo says so loudly. The
holdout AUC is shown next to optbinning's on the pooled data when optbinning is installed. Then
it scores every applicant with the jointly trained model, and once more through the daemons.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mpc_credit.cli.output import console as make_console
from mpc_credit.cli.output import plain
from mpc_credit.demo import LABELS, MODEL, OWNERS, REASONS, demo_dir
from mpc_credit.local.simulate import Outcome, Simulation, simulate
from mpc_credit.vocabulary import Mode

HOLDOUT, SEED = 0.3, 7


def _read(path: Path) -> dict[str, list[str]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return {r[0]: r[1:] for r in rows[1:]}


def _run(trained: Trained, mode: Mode, reveal: str, out: Path) -> Outcome:
    sim = Simulation(
        model=trained.model,
        data=trained.scoring_data(),
        helpers=trained.helpers(),
        receiver="bank",
        reveal=reveal,  # type: ignore[arg-type]
        out=out,
        mode=mode,
    )
    return simulate(sim)


@dataclass(frozen=True)
class Trained:
    """The jointly trained model and each party's scoring CSV (the model's columns)."""

    model: Path
    data: dict[str, Path]

    def owners(self) -> set[str]:
        return {f["owner"] for f in json.loads(self.model.read_text())["features"]}

    def scoring_data(self) -> dict[str, Path]:
        """The CSVs of the institutions that own a feature of the model."""
        return {p: csv for p, csv in self.data.items() if p in self.owners()}

    def helpers(self) -> list[str]:
        """The institutions whose every feature training left out (with DP on 700 rows it
        happens): still parties of the session, holding no data."""
        return [p for p in self.data if p not in self.owners()]


def _training_inputs(folder: Path, work: Path) -> tuple[Path, Path]:
    """The bank's CSV with its labels as the column `bad`, and a holdout of 30 % (fixed seed)."""
    labels = _read(folder / LABELS)
    rows = list(csv.reader((folder / "bank" / "applicants.csv").open(newline="")))
    lender = work / "bank-with-labels.csv"
    with lender.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*rows[0], "bad"])
        w.writerows([*r, labels[r[0]][0]] for r in rows[1:])
    ids = sorted(labels)
    random.Random(SEED).shuffle(ids)
    test = work / "holdout.txt"
    test.write_text("\n".join(ids[: int(HOLDOUT * len(ids))]) + "\n")
    return lender, test


def _train(console: Console, folder: Path, work: Path) -> Trained:
    """Train the demo scorecard jointly and show what the bank learns."""
    from mpc_credit.cli.train import DEFAULT_BUDGET, DEFAULT_EPSILON, summary
    from mpc_credit.local.train import Training, train_locally
    from mpc_credit.scorecard.reason_table import load_reason_table
    from mpc_credit.training.session import Options

    lender, test = _training_inputs(folder, work)
    (work / "scoring").mkdir()
    cutoff = int(json.loads((folder / MODEL).read_text())["cutoff"])
    t = Training(
        data={"bank": lender, **{o: folder / o / "applicants.csv" for o in OWNERS[1:]}},
        lender="bank",
        label="bad",
        model_owner="bank",
        options=Options("german-credit-joint", cutoff, epsilon=DEFAULT_EPSILON),
        out=work / "joint.json",
        ledger_dir=work / "ledgers",
        budget=DEFAULT_BUDGET,
        test_ids=test,
        scoring_data=work / "scoring",
        reasons=load_reason_table(folder / REASONS),  # the bank's statements, into the model
    )
    console.print(
        "[bold]Joint training[/]: the bank holds the outcomes, each institution its own "
        "features; PSI aligns the rows, the bins' counts and the statistics of the regression "
        f"run in MPC, with differential privacy (epsilon {DEFAULT_EPSILON:g}, train's default)."
    )
    result = train_locally(t)
    for line in summary(t, result):
        if not line.startswith(("model written", "scoring CSVs")):  # the demo's own files
            plain(console, line)
    assert result.holdout is not None
    reference = pooled_auc(folder, result.holdout.ids)
    if reference is None:
        plain(
            console,
            "optbinning is not installed (pip install 'mpc-credit[optbinning]'): no pooled "
            "plaintext reference to compare with",
        )
    else:
        console.print(
            "for comparison, optbinning + scikit-learn on the pooled training rows (what the "
            f"institutions cannot do): holdout AUC {reference:.4f}",
            highlight=False,
        )
    return Trained(t.out, {o: work / "scoring" / f"{o}.csv" for o in OWNERS})


def pooled_auc(folder: Path, test_ids: list[str]) -> float | None:
    """Holdout AUC of optbinning's Scorecard fitted on the pooled training rows (plaintext, as
    scripts/train_demo.py fits the demo model), or None without optbinning."""
    try:
        import pandas as pd
        from optbinning import BinningProcess, Scorecard
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    from mpc_credit.training.metrics import metrics

    frames = [
        pd.read_csv(folder / o / "applicants.csv", dtype={"applicant_id": str}).set_index(
            "applicant_id"
        )
        for o in OWNERS
    ]
    y = pd.read_csv(folder / LABELS, dtype={"applicant_id": str}).set_index("applicant_id")["bad"]
    pooled = frames[0].join(frames[1:], how="left").loc[y.index]
    test = pooled.index.isin(test_ids)
    numeric = [c for c in pooled.columns if pooled[c].dtype.kind in "iuf"]
    card = Scorecard(
        binning_process=BinningProcess(
            list(pooled.columns),
            binning_fit_params={c: {"monotonic_trend": "auto_asc_desc"} for c in numeric},
        ),
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
        rounding=True,
    ).fit(pooled[~test], y[~test].to_numpy())
    return metrics(y[test].to_numpy(), card.score(pooled[test])).auc


def run_demo(mode: Mode, rows: int) -> None:
    """Train jointly, then score every applicant twice (score with PD, decision with
    reasons) with the trained model and show them, then once more through the daemons."""
    console = make_console()
    folder = demo_dir()
    console.print(
        f"[bold]mpc-credit demo[/]: bank, bureau and telco each run a party process with only "
        f"their own CSV; mutual TLS between them; {mode} mode; only the bank learns results."
    )
    with tempfile.TemporaryDirectory() as tmp:
        trained = _train(console, folder, Path(tmp))
        console.print("\n[bold]Scoring with the jointly trained model[/]")
        scores_csv, reasons_csv = Path(tmp) / "scores.csv", Path(tmp) / "reasons.csv"
        a = _run(trained, mode, "pd", scores_csv)
        console.print(f"score + PD: {a.rows} applicants in {a.seconds:.2f} s")
        b = _run(trained, mode, "reasons", reasons_csv)
        console.print(f"decision + reason codes: {b.rows} applicants in {b.seconds:.2f} s")
        scores, reasons = _read(scores_csv), _read(reasons_csv)
        _show(console, b, scores, reasons, rows)
        declined = [aid for aid, r in reasons.items() if r[0] == "decline"][:1]
        _run_daemons(console, trained, mode, list(scores)[:2] + declined)


def _show(
    console: Console,
    b: Outcome,
    scores: dict[str, list[str]],
    reasons: dict[str, list[str]],
    rows: int,
) -> None:
    for who, got in b.received.items():
        console.print(f"  {who}: {'received the result' if got else 'learned nothing'}")
    table = Table(title=f"What the bank received (first {rows} of {len(scores)})")
    for col in ("applicant", "score", "PD", "decision"):
        table.add_column(col, no_wrap=True)
    longest = max((len(line) for r in reasons.values() for line in _lines(r[1:])), default=0)
    table.add_column("reasons", overflow="fold", min_width=min(longest, 48))
    for aid in list(scores)[:rows]:
        score, pd = scores[aid]
        decision, *codes = reasons[aid]
        style = "green" if decision == "approve" else "red"
        table.add_row(Text(aid), Text(score), Text(pd), Text(decision, style), _codes(codes))
    console.print(table)
    approved = sum(1 for r in reasons.values() if r[0] == "approve")
    console.print(f"approved {approved} of {len(reasons)} applicants")


def _run_daemons(console: Console, trained: Trained, mode: Mode, ids: list[str]) -> None:
    """The deployment path: keys, the embedded broker, a daemon per party, one request."""
    from mpc_credit.local.consortium import run_local_consortium_demo

    console.print(
        "\n[bold]Now as deployed[/]: a fresh consortium (CA, TLS and signing keys), the "
        "embedded MQTT broker, one long-lived daemon per institution, and a signed request "
        "from the bank's loan officer."
    )
    outcome = asyncio.run(
        run_local_consortium_demo(
            trained.model,
            trained.data,
            applicants=ids,
            reveal="reasons",
            mode=mode,
            echo=lambda message: plain(console, message),  # file names, other parties' words
        )
    )
    console.print(reasons_table(outcome.columns, outcome.rows))
    console.print(
        f"daemons up in {outcome.startup_seconds:.1f} s; the request took "
        f"{1000 * outcome.seconds:.0f} ms end to end with warm daemons"
    )


def reasons_table(columns: list[str], rows: list[list[str]]) -> Table:
    """Applicant and decision in columns; the reasons (code and statement) one per line in
    the last column, folded rather than cut, so that they stay readable in a narrow terminal."""
    table = Table(title="mpc-credit score --reveal reasons (result at the bank only)")
    table.add_column(columns[0], no_wrap=True)
    table.add_column(columns[1], no_wrap=True)
    table.add_column("reasons", overflow="fold")
    for row in rows:
        table.add_row(Text(row[0]), Text(row[1]), _codes(row[2:]))
    return table


def _lines(cells: list[str]) -> list[str]:
    """`CODE statement` per reason from the cells code_1, text_1, code_2, ... (empty: none)."""
    return [f"{c} {t}" for c, t in zip(cells[::2], cells[1::2]) if c]


def _codes(cells: list[str]) -> Text:
    """The reasons one per line, as text (a statement is not markup)."""
    return Text("\n".join(_lines(cells)))
