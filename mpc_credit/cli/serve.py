"""`mpc-credit serve`: the HTTP API in front of this party's daemon; `serve token`: its clients.

Thin: the server is `mpc_credit.api` (imported only when serving, so other commands do not
pay for FastAPI at start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpc_credit.errors import UsageError

serve_app = typer.Typer(
    help="Serve the HTTP API in front of this party's daemon until SIGTERM (OpenAPI at "
    "/openapi.json, docs at /docs; see docs/api.md); `serve token` adds a client.\n\n"
    "Example: mpc-credit serve --config parties/bank/party.toml --port 8080",
    invoke_without_command=True,
)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="This party's party.toml (its daemon must run).")
    ] = None,
    host: Annotated[str, typer.Option(help="Listen address; not loopback: TLS only.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Listen port.")] = 8080,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM).")] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(help="Require client certificates from this CA (mutual TLS)."),
    ] = None,
    session_timeout: Annotated[
        float, typer.Option(help="Seconds until a decision session's deadline.")
    ] = 60.0,
    max_inflight: Annotated[
        int, typer.Option(help="Sessions this server has at the daemon at once.")
    ] = 8,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) until SIGTERM.

    Example: mpc-credit serve --config parties/bank/party.toml --port 8080
    """
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise UsageError("give --config PARTY.toml")
    from mpc_credit.api.server import TlsFiles, serve
    from mpc_credit.api.settings import ServeSettings

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 0 to 65535")
    if not 1 <= max_inflight <= 16:
        raise UsageError("--max-inflight: expected 1 to 16 (the daemon's queue)")
    if not 0 < session_timeout <= 3600:
        raise UsageError("--session-timeout: expected more than 0 and at most 3600 seconds")
    if (tls_cert is None) != (tls_key is None) or (client_ca is not None and tls_cert is None):
        raise UsageError("--tls-cert and --tls-key go together (and --client-ca needs both)")
    tls = TlsFiles(tls_cert, tls_key, client_ca) if tls_cert and tls_key else None
    settings = ServeSettings.for_config(
        config, session_timeout=session_timeout, max_inflight=max_inflight
    )
    serve(settings, host, port, tls)


@serve_app.command("token")
def token(
    config: Annotated[Path, typer.Option(help="This party's party.toml.")],
    name: Annotated[str, typer.Option(help="The client's name (audited with every call).")],
    reveal: Annotated[
        str, typer.Option(help="Reveal policies the client may request, comma-separated.")
    ] = "decision",
    rate: Annotated[int, typer.Option(help="Calls per minute the client may make.")] = 600,
    rotate: Annotated[bool, typer.Option(help="Give an existing client a new token.")] = False,
) -> None:
    """Create a client of the API and print its token once, as the last line of stdout.

    Only the token's SHA-256 is stored (serve-tokens.json next to party.toml, mode 0600); a
    running server picks the new client up within a second.

    Example: mpc-credit serve token --config parties/bank/party.toml --name origination
    --reveal decision,reasons
    """
    from mpc_credit.api.settings import TOKENS_FILE
    from mpc_credit.api.tokens import create_token
    from mpc_credit.consortium.config import load_party_config

    load_party_config(config)  # a party's folder, not any folder
    path = config.resolve().parent / TOKENS_FILE
    reveals = reveal.split(",")
    secret = create_token(path, name, reveals, rate, rotate=rotate)
    allowed = ", ".join(r.strip() for r in reveals if r.strip())
    typer.echo(f"client {name!r}: reveal {allowed}; {rate} calls per minute; hash in {path}")
    typer.echo("its token (shown this once; send it as 'Authorization: Bearer TOKEN'):")
    typer.echo(secret)
