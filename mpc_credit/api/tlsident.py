"""The name on a TLS client certificate, made visible to the app.

uvicorn checks client certificates (`ssl_cert_reqs=CERT_REQUIRED` against the institution's
CA) but does not pass the peer's certificate to the ASGI app. This HTTP/1.1 protocol does:
each connection's state (what Starlette shows as `request.state`) gets `tls_client`, the
certificate subject's common name, which `auth` looks up among the token file's clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def common_name(cert: Any) -> str | None:
    """The subject's commonName of a certificate as `SSLObject.getpeercert()` returns it."""
    if not isinstance(cert, dict):
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and isinstance(value, str):
                return value
    return None


class ClientCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, with the client certificate's name in each request's state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cn = common_name(transport.get_extra_info("peercert"))
        self.app_state = {**self.app_state, "tls_client": cn} if cn else dict(self.app_state)
