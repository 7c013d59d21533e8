"""`mpc-credit pki`: the consortium's keys and certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpc_credit.cli import options
from mpc_credit.errors import UsageError

pki_app = typer.Typer(help="Consortium keys and certificates.", no_args_is_help=True)

REVEAL_HELP = options.REVEAL_HELP


@pki_app.command("init")
def pki_init(
    out: Annotated[
        Path, typer.Option(help="Folder for the consortium file and party folders.")
    ] = Path("parties"),
    model: Annotated[Path | None, typer.Option(help="The full scorecard model JSON.")] = None,
    party: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME, NAME=HOST or NAME=HOST:PORT, in pid order (default: the model's owners)."
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(help="Consortium name (topic prefix mpc-credit/NAME).")
    ] = "demo",
    model_owner: Annotated[
        str | None, typer.Option(help="Holder of the full model (default: first party).")
    ] = None,
    requester: Annotated[
        list[str] | None,
        typer.Option(help="A party allowed to request scores (default: the model owner)."),
    ] = None,
    reveal: Annotated[
        list[str] | None, typer.Option(help=f"Allowed reveal policies ({REVEAL_HELP}).")
    ] = None,
    broker_host: Annotated[
        str, typer.Option(help="Broker host the daemons connect to.")
    ] = "127.0.0.1",
    broker_port: Annotated[
        int | None, typer.Option(help="Broker port (default 1883, 8883 with TLS).")
    ] = None,
    broker_tls: Annotated[
        bool, typer.Option(help="Daemons use TLS client certificates for the broker.")
    ] = False,
    daily_budget: Annotated[
        int | None,
        typer.Option(help="Applicants each requester may have scored per 24 hours (no limit)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing consortium.")] = False,
) -> None:
    """Create a consortium: CAs, each party's TLS certificate and key, Ed25519 signing keys,
    consortium.json and one party.toml per party.

    Example: mpc-credit pki init --out parties --model parties/bank/german-credit-demo.json
    """
    from mpc_credit.consortium.create import init_consortium, parse_party_arg
    from mpc_credit.vocabulary import REVEALS

    if model is None:
        found = sorted(out.glob("*/german-credit-demo.json"))
        if not found:
            raise UsageError("give --model: the full scorecard model JSON")
        model = found[0]
    plans = [parse_party_arg(p) for p in party or []]
    cons = init_consortium(
        out,
        model,
        parties=plans,
        name=name,
        model_owner=model_owner,
        requesters=requester or [],
        reveals=reveal or list(REVEALS),
        broker_host=broker_host,
        broker_port=broker_port,
        broker_tls=broker_tls,
        daily_budget=daily_budget,
        force=force,
    )
    typer.echo(f"consortium {cons.name!r}: {out / 'consortium.json'}")
    for p in cons.parties:
        typer.echo(
            f"  {p.name:<10} pid {p.pid}  mpc {p.host}:{p.mpc_port}+{p.mpc_ports}  "
            f"config {out / p.name / 'party.toml'}"
        )
    typer.echo(
        f"private keys (mode 0600): {out}/*/signing.key, */.config/party_*.key, "
        f"*/mqtt/client.key, {out}/ca/*.key, {out}/broker/server.key"
    )
