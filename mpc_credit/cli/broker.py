"""`mpc-credit broker`: the embedded MQTT broker, and mosquitto configuration."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from mpc_credit.errors import UsageError

broker_app = typer.Typer(
    help="The control-plane MQTT broker: run the embedded one (amqtt, local use), or write "
    "a mosquitto configuration for deployment.\n\nExample: mpc-credit broker --port 1883",
    invoke_without_command=True,
)


NO_TLS = (
    "the embedded broker cannot enforce client certificates or ACLs, so it takes no TLS "
    "options; for TLS use mosquitto: mpc-credit broker mosquitto-config"
)


@broker_app.callback()
def broker_run(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 1883,
    certfile: Annotated[Path | None, typer.Option(hidden=True)] = None,
    keyfile: Annotated[Path | None, typer.Option(hidden=True)] = None,
    cafile: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the embedded MQTT broker (amqtt) in the foreground, on loopback only: for one
    machine. It enforces no client certificates or ACLs; a network needs mosquitto.

    Example: mpc-credit broker --port 1883
    """
    if ctx.invoked_subcommand is not None:
        return
    from mpc_credit.consortium.broker import check_loopback, serve_embedded

    for flag, value in (("--certfile", certfile), ("--keyfile", keyfile), ("--cafile", cafile)):
        if value is not None:
            raise UsageError(f"{flag}: {NO_TLS}")
    check_loopback(host)
    try:
        asyncio.run(serve_embedded(host, port))
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
    crlfile: Annotated[
        Path | None,
        typer.Option(
            help="Revoked client certificates, PEM (default: crl/mqtt_crl.pem beside "
            "consortium.json, once `pki revoke` wrote it)."
        ),
    ] = None,
) -> None:
    """Write a mosquitto 2 configuration for a deployment.

    TLS client certificates bound to client ids, per-party ACLs, a message size limit,
    the revocation list, set_tcp_nodelay true.

    Example: mpc-credit broker mosquitto-config --consortium parties/consortium.json --out deploy
    then: mosquitto -c deploy/mosquitto.conf
    """
    from mpc_credit.consortium.broker import write_mosquitto_files
    from mpc_credit.consortium.config import load_consortium
    from mpc_credit.consortium.revoke import MQTT_CRL

    cons = load_consortium(consortium)
    bdir = broker_dir or consortium.parent / "broker"
    if crlfile is None and (consortium.parent / MQTT_CRL).exists():
        crlfile = consortium.parent / MQTT_CRL
    if crlfile is not None and not crlfile.is_file():
        raise UsageError(f"{crlfile}: revocation list not found")
    conf, acl = write_mosquitto_files(
        cons, out, bdir, port=port, bind=bind, tls=tls, crlfile=crlfile, user=user
    )
    typer.echo(f"wrote {conf} and {acl}; run: mosquitto -c {conf}")
