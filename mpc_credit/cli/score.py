"""`mpc-credit score`: ask the consortium for a score through this party's daemon.

Prints the result (CSV, or JSON with --json), or with --out writes the CSV and prints one
summary line. Exits 0 with the result, 2 for bad input, 3 when the session failed, 4 when
it was refused, 5 when it timed out; the reason is one line naming the party.
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
        str | None,
        typer.Option(help="The model as ID or ID@VERSION (default: the registry's champion)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds until the session's deadline.")] = 60.0,
    json_out: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the result CSV here and print a one-line summary instead."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines on stderr.")] = False,
    with_challenger: Annotated[
        bool,
        typer.Option(
            help="Also score with the registry's challenger, for monitoring only: its result "
            "never decides; it is kept in the party folder's challenger.jsonl."
        ),
    ] = False,
) -> None:
    """Ask the consortium for a score; only this party receives the result.

    Exit codes: 0 ok, 2 bad input, 3 session failed, 4 refused, 5 timed out.

    Example: mpc-credit score --config parties/bank/party.toml --applicant A0191 --reveal reasons
    """
    from mpc_credit.consortium.fields import clean_text
    from mpc_credit.consortium.requester import score_request

    options.reveal(reveal)
    options.mode(mode)
    ids = list(applicant or [])
    if batch is not None:
        from mpc_credit.scorecard.data import load_ids

        ids += load_ids(batch)
    if not ids:
        raise UsageError("give --applicant ID or --batch FILE")
    if out is not None and (out.is_dir() or not out.resolve().parent.is_dir()):
        raise UsageError(f"--out {out}: not a file in an existing folder")

    def progress(message: str) -> None:  # other parties' words: no control characters
        if not quiet:
            typer.echo(f"  {clean_text(message)}", err=True)

    kw = dict(reveal=reveal, mode=mode, model_id=model_id, timeout=timeout, progress=progress)
    both = None
    if with_challenger:
        from mpc_credit.consortium.challenger import score_both

        both = asyncio.run(score_both(config, ids, **kw))  # type: ignore[arg-type]
        result = both.decision
    else:
        result = asyncio.run(score_request(config, ids, **kw))  # type: ignore[arg-type]
    if out is not None:
        result.result.write_csv(out)
        n = len(result.result.ids)
        if json_out:
            summary = {
                "session": result.session,
                "model": result.model,
                "model_digest": result.model_digest,
                "applicants": n,
                "file": str(out),
            }
            typer.echo(json.dumps(summary))
        else:
            typer.echo(f"{n} applicant(s) written to {out} (session {result.session})")
    elif json_out:
        results: dict[str, object] = {
            "session": result.session,
            "model": result.model,
            "model_digest": result.model_digest,
            "results": result.result.records(),
        }
        if both is not None and both.challenger is not None:
            results["challenger"] = {  # apart from the results: it never decides
                "monitoring_only": True,
                "session": both.challenger.session,
                "model": both.challenger.model,
                "model_digest": both.challenger.model_digest,
                "results": both.challenger.result.records(),
            }
        typer.echo(json.dumps(results, indent=2))
    else:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(result.columns)
        w.writerows(result.rows)
        sys.stdout.flush()
    if both is not None and not quiet:
        where = f", kept in {both.kept}" if both.kept is not None else ""
        typer.echo(f"  {both.note}{where}", err=True)
    if not quiet:
        typer.echo(
            f"  {len(result.result.ids)} applicant(s) in {1000 * result.seconds:.0f} ms "
            f"(session {result.session[:8]}, model {result.model} {result.model_digest[:12]})",
            err=True,
        )
