"""`mpc-credit demo`: the bundled three-institution consortium on German credit data."""

from __future__ import annotations

import asyncio
import csv
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mpc_credit.errors import UsageError
from mpc_credit.local.simulate import Outcome, Simulation, simulate
from mpc_credit.vocabulary import Mode

OWNERS = ("bank", "bureau", "telco")
MODEL = "bank/german-credit-demo.json"


def parties_dir() -> Path:
    """The demo institutions' folder of a source checkout."""
    folder = Path(__file__).resolve().parents[2] / "parties"
    if not (folder / MODEL).is_file():
        raise UsageError(
            f"demo data not found under {folder}: install from a source checkout (pip install -e .)"
        )
    return folder


def _read(path: Path) -> dict[str, list[str]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return {r[0]: r[1:] for r in rows[1:]}


def _run(folder: Path, mode: Mode, reveal: str, out: Path) -> Outcome:
    sim = Simulation(
        model=folder / MODEL,
        data={o: folder / o / "applicants.csv" for o in OWNERS},
        receiver="bank",
        reveal=reveal,  # type: ignore[arg-type]
        out=out,
        mode=mode,
    )
    return simulate(sim)


def run_demo(mode: Mode, rows: int) -> None:
    """Score every applicant twice (score with PD, decision with reasons) and show them."""
    console = Console()
    folder = parties_dir()
    console.print(
        f"[bold]mpc-credit demo[/]: bank, bureau and telco each run a party process with only "
        f"their own CSV; mutual TLS between them; {mode} mode; only the bank learns results."
    )
    with tempfile.TemporaryDirectory() as tmp:
        scores_csv, reasons_csv = Path(tmp) / "scores.csv", Path(tmp) / "reasons.csv"
        a = _run(folder, mode, "pd", scores_csv)
        console.print(f"score + PD: {a.rows} applicants in {a.seconds:.2f} s")
        b = _run(folder, mode, "reasons", reasons_csv)
        console.print(f"decision + reason codes: {b.rows} applicants in {b.seconds:.2f} s")
        scores, reasons = _read(scores_csv), _read(reasons_csv)
    for who, got in b.received.items():
        console.print(f"  {who}: {'received the result' if got else 'learned nothing'}")
    table = Table(title=f"What the bank received (first {rows} of {len(scores)})")
    for col in ("applicant", "score", "PD", "decision"):
        table.add_column(col, no_wrap=True)
    longest = max((len(c) for r in reasons.values() for c in r[1:]), default=0)
    table.add_column("reason codes", overflow="fold", min_width=longest)
    for aid in list(scores)[:rows]:
        score, pd = scores[aid]
        decision, *codes = reasons[aid]
        style = "green" if decision == "approve" else "red"
        table.add_row(aid, score, pd, f"[{style}]{decision}[/]", "\n".join(c for c in codes if c))
    console.print(table)
    approved = sum(1 for r in reasons.values() if r[0] == "approve")
    console.print(f"approved {approved} of {len(reasons)} applicants")
    declined = [aid for aid, r in reasons.items() if r[0] == "decline"][:1]
    _run_daemons(console, folder, mode, list(scores)[:2] + declined)


def _run_daemons(console: Console, folder: Path, mode: Mode, ids: list[str]) -> None:
    """The deployment path: keys, the embedded broker, a daemon per party, one request."""
    from mpc_credit.local.consortium import run_local_consortium_demo

    console.print(
        "\n[bold]Now as deployed[/]: a fresh consortium (CA, TLS and signing keys), the "
        "embedded MQTT broker, one long-lived daemon per institution, and a signed request "
        "from the bank's loan officer."
    )
    outcome = asyncio.run(
        run_local_consortium_demo(
            folder / MODEL,
            {o: folder / o / "applicants.csv" for o in OWNERS},
            applicants=ids,
            reveal="reasons",
            mode=mode,
            echo=console.print,
        )
    )
    console.print(reasons_table(outcome.columns, outcome.rows))
    console.print(
        f"daemons up in {outcome.startup_seconds:.1f} s; the request took "
        f"{1000 * outcome.seconds:.0f} ms end to end with warm daemons"
    )


def reasons_table(columns: list[str], rows: list[list[str]]) -> Table:
    """Applicant and decision in columns; the reason codes one per line in the last column,
    folded rather than cut, so that long feature names stay readable in a narrow terminal."""
    table = Table(title="mpc-credit score --reveal reasons (result at the bank only)")
    table.add_column(columns[0], no_wrap=True)
    table.add_column(columns[1], no_wrap=True)
    table.add_column("reason codes", overflow="fold")
    for row in rows:
        table.add_row(row[0], row[1], "\n".join(code for code in row[2:] if code))
    return table
