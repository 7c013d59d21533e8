"""Request bodies are size-limited before anything parses them (ASGI middleware).

The limit depends on the route (`settings`: 1 MiB for decisions, 16 MiB for a batch upload,
64 KiB elsewhere). A declared Content-Length over the limit, or a streamed body that grows past
it, ends the read with 413; the route never sees more than the limit, so a client cannot make
the server buffer an unbounded body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send


def too_large(cap: int) -> HTTPException:
    return HTTPException(413, f"request body over the limit of {cap} bytes")


class BodyLimit:
    """Wraps `app`; `limit(method, path)` gives the largest body a request may carry."""

    def __init__(self, app: ASGIApp, limit: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.limit(scope["method"], scope["path"])
        declared = _content_length(scope)
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            if declared is not None and declared > cap:
                raise too_large(cap)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise too_large(cap)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            text = v.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else 1 << 62
    return None
