"""The consortium commands of `mpc-credit`: keys, broker, party daemons, scoring requests.

    mpc-credit pki init [--out parties] [--model M.json] [--party NAME[=HOST[:PORT]]] ...
    mpc-credit broker [--host 127.0.0.1] [--port 1883]
    mpc-credit broker mosquitto-config --consortium parties/consortium.json --out deploy/
    mpc-credit party run --config parties/bank/party.toml
    mpc-credit party status --config parties/bank/party.toml
    mpc-credit score --config parties/bank/party.toml --applicant ID | --batch ids.txt

`score` exits 0 with the result, 2 for bad input, 3 when the session failed, 4 when it
was refused, 5 when it timed out; the reason is one line naming the party.
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

pki_app = typer.Typer(help="Consortium keys and certificates.", no_args_is_help=True)
broker_app = typer.Typer(
    help="The control-plane MQTT broker: run the embedded one (amqtt, local use), or write "
    "a mosquitto configuration for deployment.\n\nExample: mpc-credit broker --port 1883",
    invoke_without_command=True,
)
party_app = typer.Typer(help="A party's long-lived daemon.", no_args_is_help=True)

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


@broker_app.callback()
def broker_run(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 1883,
    certfile: Annotated[Path | None, typer.Option(help="Server certificate (enables TLS).")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="Server key.")] = None,
    cafile: Annotated[Path | None, typer.Option(help="CA of the client certificates.")] = None,
) -> None:
    """Run the embedded MQTT broker (amqtt) in the foreground, for local use.

    Example: mpc-credit broker --port 1883
    """
    if ctx.invoked_subcommand is not None:
        return
    from mpc_credit.consortium.broker import serve_embedded

    tls = {}
    if certfile is not None:
        if keyfile is None:
            raise UsageError("--certfile needs --keyfile")
        tls = {"certfile": certfile, "keyfile": keyfile, "cafile": cafile}
    try:
        asyncio.run(serve_embedded(host, port, **tls))
    except Exception as exc:
        raise UsageError(f"broker: cannot listen on {host}:{port}: {exc}") from None


@broker_app.command("mosquitto-config")
def mosquitto_config(
    consortium: Annotated[Path, typer.Option(help="The consortium file.")] = Path(
        "parties/consortium.json"
    ),
    out: Annotated[Path, typer.Option(help="Folder for mosquitto.conf and acl.")] = Path(
        "deploy/mosquitto"
    ),
    port: Annotated[int, typer.Option(help="Listener port.")] = 8883,
    bind: Annotated[str, typer.Option(help="Listener address.")] = "0.0.0.0",
    tls: Annotated[
        bool, typer.Option(help="TLS with client certificates (off only for a closed test net).")
    ] = True,
    broker_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with ca.crt, server.crt, server.key (default: beside consortium.json)."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="User mosquitto drops to (must read the key files).")
    ] = None,
) -> None:
    """Write a mosquitto 2 configuration: TLS client certificates, per-party ACLs,
    set_tcp_nodelay true.

    Example: mpc-credit broker mosquitto-config --consortium parties/consortium.json --out deploy
    then: mosquitto -c deploy/mosquitto.conf
    """
    from mpc_credit.consortium.broker import write_mosquitto_files
    from mpc_credit.consortium.config import load_consortium

    cons = load_consortium(consortium)
    bdir = broker_dir or consortium.parent / "broker"
    conf, acl = write_mosquitto_files(cons, out, bdir, port=port, bind=bind, tls=tls, user=user)
    typer.echo(f"wrote {conf} and {acl}; run: mosquitto -c {conf}")


@party_app.command("run")
def party_run(
    config: Annotated[Path, typer.Option(help="This party's party.toml.")],
    verbose: Annotated[bool, typer.Option(help="Log every session.")] = False,
) -> None:
    """Run this party's daemon until SIGTERM (which drains running sessions first).

    Example: mpc-credit party run --config parties/bank/party.toml
    """
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


def register(app: typer.Typer) -> None:
    """Add `pki`, `broker`, `party` and `score` to the `mpc-credit` app."""
    app.add_typer(pki_app, name="pki")
    app.add_typer(broker_app, name="broker")
    app.add_typer(party_app, name="party")
    app.command("score")(score)
