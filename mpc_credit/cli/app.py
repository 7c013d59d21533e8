"""The `mpc-credit` command line: thin wrappers over the library.

Every failure ends in one line on stderr and a non-zero exit code: 2 for bad input or
usage, 3 for a failed session, 4 for a refused request, 5 for a session past its
deadline, 6 for an audit log that does not verify, 1 for an internal error
(MPC_CREDIT_DEBUG=1 shows its traceback), 130 when interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mpc_credit import __version__
from mpc_credit.cli import options
from mpc_credit.cli.audit import audit_app
from mpc_credit.cli.broker import broker_app
from mpc_credit.cli.model import model_app
from mpc_credit.cli.party import party_app
from mpc_credit.cli.pki import pki_app
from mpc_credit.cli.registry import add_commands as add_registry_commands
from mpc_credit.cli.score import score
from mpc_credit.cli.serve import serve_app
from mpc_credit.cli.train import train
from mpc_credit.errors import MpcCreditError

app = typer.Typer(
    name="mpc-credit",
    help="Credit scores computed jointly by several institutions with secure multi-party "
    "computation: nobody sees another's data, only the receiver learns the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
add_registry_commands(model_app)  # model publish, approve, refuse, promote, retire, list
app.add_typer(model_app, name="model")

EXIT_INTERNAL = 1
EXIT_INPUT = 2  # also MpcCreditError.exit_code; the other types carry 3, 4, 5 and 6
EXIT_INTERRUPTED = 130


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mpc-credit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Credit scores computed jointly by several institutions with secure multi-party
    computation: nobody sees another's data, only the receiver learns the result."""


@app.command()
def version() -> None:
    """Print the version (the number only; mpc-credit --version prints the name too).

    Example: mpc-credit version
    """
    typer.echo(__version__)


@app.command("simulate")
def simulate_command(
    model: Annotated[Path, typer.Option(help="Scorecard model JSON (the full model).")],
    data: Annotated[
        list[str],
        typer.Option(help="OWNER=CSV: one per feature owner, each read only by its own party."),
    ],
    receiver: Annotated[str, typer.Option(help="The party that alone learns the result.")],
    out: Annotated[
        Path, typer.Option(help="Where the receiver writes applicant_id,<reveal columns>.")
    ],
    reveal: Annotated[str, typer.Option(help=options.REVEAL_HELP)] = "score",
    ids: Annotated[
        Path | None,
        typer.Option(help="Applicant ids to score, one per line (default: all of the receiver's)."),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="shared: owners know their points; secret: points stay with the model owner."
        ),
    ] = "shared",
    model_owner: Annotated[
        str | None,
        typer.Option(help="Holder of the full model in secret mode (default: the receiver)."),
    ] = None,
    helper: Annotated[
        list[str] | None, typer.Option(help="A party holding no data (to reach 3 parties).")
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            help="Applicants per secure batch, bounds memory (0: 10000; 5000 for reasons)."
        ),
    ] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds before the session is aborted.")] = 3600.0,
) -> None:
    """Score applicants with one local process per institution, over mutual TLS.

    Example:
      mpc-credit simulate --model parties/bank/german-credit-demo.json
      --data bank=parties/bank/applicants.csv --data bureau=parties/bureau/applicants.csv
      --data telco=parties/telco/applicants.csv --receiver bank --reveal reasons --out scores.csv
    """
    from mpc_credit.local.simulate import Simulation, parse_data_args, simulate

    sim = Simulation(
        model=model,
        data=parse_data_args(data),
        receiver=receiver,
        reveal=options.reveal(reveal),
        out=out,
        ids=ids,
        mode=options.mode(mode),
        model_owner=model_owner,
        helpers=tuple(helper or ()),
        batch=options.positive(batch, "--batch") if batch else 0,
        timeout=timeout,
    )
    outcome = simulate(sim)
    typer.echo(
        f"{outcome.rows} applicants scored in {outcome.seconds:.2f} s "
        f"({1000 * outcome.seconds / max(outcome.rows, 1):.3f} ms each); "
        f"result for {receiver} in {out}",
        err=True,
    )


@app.command()
def demo(
    mode: Annotated[str, typer.Option(help=options.MODE_HELP)] = "shared",
    rows: Annotated[int, typer.Option(help="Applicants shown in the table.")] = 15,
) -> None:
    """Run a three-institution consortium on the bundled German credit data.

    The bank, the credit bureau and a telco each run as a separate process with only
    their own CSV; the bank receives scores, decisions and reason codes.

    Example: mpc-credit demo
    """
    from mpc_credit.cli.demo import run_demo

    run_demo(options.mode(mode), rows)


app.add_typer(pki_app, name="pki")
app.add_typer(broker_app, name="broker")
app.add_typer(party_app, name="party")
app.add_typer(audit_app, name="audit")
app.add_typer(serve_app, name="serve")
app.command("score")(score)
app.command("train")(train)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning every known failure into one line."""
    try:
        rc = app(args=argv, prog_name="mpc-credit", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("mpc-credit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mpc-credit` (or `mpc-credit pki`)
            return 0  # alone: its help is printed already, and it is what was asked for
        typer.echo(f"mpc-credit: {exc.format_message()} (see mpc-credit --help)", err=True)
        return EXIT_INPUT
    except MpcCreditError as exc:
        typer.echo(f"mpc-credit: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("MPC_CREDIT_DEBUG") == "1":
            raise
        typer.echo(
            f"mpc-credit: internal error: {type(exc).__name__}: {exc} "
            "(MPC_CREDIT_DEBUG=1 shows the traceback)",
            err=True,
        )
        return EXIT_INTERNAL
    return rc if isinstance(rc, int) else 0
