"""`mpc-credit party`: a party's long-lived daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

party_app = typer.Typer(help="A party's long-lived daemon.", no_args_is_help=True)


@party_app.command("run")
def party_run(
    config: Annotated[Path, typer.Option(help="This party's party.toml.")],
    verbose: Annotated[bool, typer.Option(help="Log every session.")] = False,
) -> None:
    """Run this party's daemon until SIGTERM (which drains running sessions first).

    Example: mpc-credit party run --config parties/bank/party.toml
    """
    from mpc_credit.engine.runtime import load_mpyc

    load_mpyc()  # before the daemon's modules: MPyC must not parse this command's options
    from mpc_credit.consortium.daemon.daemon import run_daemon

    code = run_daemon(config, verbose=verbose)
    if code:
        raise typer.Exit(code)


@party_app.command("status")
def party_status(config: Annotated[Path, typer.Option(help="This party's party.toml.")]) -> None:
    """Show whether this party's daemon runs, its broker link and the others' presence.

    Example: mpc-credit party status --config parties/bank/party.toml
    """
    from mpc_credit.consortium.requester import daemon_status

    typer.echo(json.dumps(asyncio.run(daemon_status(config)), indent=2))
