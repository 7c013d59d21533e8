"""Run the API under uvicorn: listen only where it is safe, with TLS where it must be.

Plain HTTP only on a loopback address (the institution's own machine, e.g. behind its
reverse proxy); any other address needs TLS (`--tls-cert`, `--tls-key`), and with
`--client-ca` every client must present a certificate from that CA (mutual TLS; the
certificate's common name names the client). The listening socket is bound here, before
uvicorn starts, so a port in use is one line and exit 2 like any other bad input.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mpc_credit.api.settings import ServeSettings
from mpc_credit.errors import UsageError


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # mutual TLS: client certificates from this CA required


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, tls: TlsFiles | None) -> None:
    """Refuse a non-loopback address without TLS (UsageError: one line, exit 2)."""
    if tls is None and not is_loopback(host):
        raise UsageError(
            f"--host {host}: not a loopback address; serve it with TLS only "
            "(--tls-cert and --tls-key, --client-ca for client certificates)"
        )
    if tls is not None:
        for flag, path in (("--tls-cert", tls.cert), ("--tls-key", tls.key)):
            if not path.is_file():
                raise UsageError(f"{flag} {path}: no such file")
        if tls.client_ca is not None and not tls.client_ca.is_file():
            raise UsageError(f"--client-ca {tls.client_ca}: no such file")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or UsageError naming the address."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(512)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, ending with exit code 0 after a graceful SIGTERM or SIGINT
        (uvicorn re-raises the signal once it has shut down, which kills the process)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    return Server


def serve(settings: ServeSettings, host: str, port: int, tls: TlsFiles | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    import uvicorn

    from mpc_credit.api.app import create_app
    from mpc_credit.api.tlsident import ClientCertProtocol

    check_listen(host, tls)
    app = create_app(settings)
    sock = bind(host, port)
    ssl_options: dict[str, object] = {}
    if tls is not None:
        ssl_options = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
        if tls.client_ca is not None:
            ssl_options |= {"ssl_ca_certs": str(tls.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(
        app,
        http=ClientCertProtocol if tls is not None and tls.client_ca else "auto",
        log_level="warning",
        access_log=False,  # the server's own access log names the client (access_log.py)
        server_header=False,
        timeout_graceful_shutdown=10,
        **ssl_options,  # type: ignore[arg-type]
    )
    server = _server_class()(config)
    scheme = "https" if tls is not None else "http"
    actual = sock.getsockname()[1]
    print(
        f"serving party {settings.party.party}'s API on {scheme}://{host}:{actual} "
        f"(docs: /docs; clients: {settings.tokens_file}; access log: {settings.access_log})",
        file=sys.stderr,
        flush=True,
    )
    server.run(sockets=[sock])
