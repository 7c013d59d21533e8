"""`mpc-credit score`: ask the consortium for a score through this party's daemon.

Exits 0 with the result, 2 for bad input, 3 when the session failed, 4 when it was refused,
5 when it timed out; the reason is one line naming the party.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mpc_credit.cli import options
from mpc_credit.errors import UsageError

REVEAL_HELP = options.REVEAL_HELP


def score(
    config: Annotated[Path, typer.Option(help="The requesting (receiving) party's party.toml.")],
    applicant: Annotated[
        list[str] | None, typer.Option(help="An applicant id (repeatable).")
    ] = None,
    batch: Annotated[
        Path | None, typer.Option(help="A file of applicant ids, one per line.")
    ] = None,
    reveal: Annotated[str, typer.Option(help=REVEAL_HELP)] = "score",
    mode: Annotated[str, typer.Option(help=options.MODE_HELP)] = "shared",
    model_id: Annotated[
        str | None, typer.Option(help="Model id (default: the consortium's only model).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds until the session's deadline.")] = 60.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the result CSV here.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines on stderr.")] = False,
) -> None:
    """Ask the consortium for a score; only this party receives the result.

    Exit codes: 0 ok, 2 bad input, 3 session failed, 4 refused, 5 timed out.

    Example: mpc-credit score --config parties/bank/party.toml --applicant A0191 --reveal reasons
    """
    from mpc_credit.consortium.requester import score_request

    options.reveal(reveal)
    options.mode(mode)
    ids = list(applicant or [])
    if batch is not None:
        from mpc_credit.scorecard.data import load_ids

        ids += load_ids(batch)
    if not ids:
        raise UsageError("give --applicant ID or --batch FILE")

    def progress(message: str) -> None:
        if not quiet:
            typer.echo(f"  {message}", err=True)

    result = asyncio.run(
        score_request(
            config,
            ids,
            reveal=reveal,
            mode=mode,
            model_id=model_id,
            timeout=timeout,
            progress=progress,
        )
    )
    if out is not None:
        from mpc_credit.scorecard.reveal import write_table

        write_table(out, result.columns, result.rows)
    if json_out:
        typer.echo(json.dumps({"session": result.session, "results": result.as_dicts()}, indent=2))
    else:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(result.columns)
        w.writerows(result.rows)
        sys.stdout.flush()
    if not quiet:
        typer.echo(
            f"  {len(result.rows)} applicant(s) in {1000 * result.seconds:.0f} ms "
            f"(session {result.session[:8]})",
            err=True,
        )
