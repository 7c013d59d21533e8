"""The daemon's local control socket: how `mpc-credit score` and `party status` reach it.

A Unix socket of mode 0600 in the party's folder; each connection must also come from the
daemon's own user (SO_PEERCRED), and the client checks the same of the daemon. A client
sends one line, a request of `mpc_credit.consortium.control` (status, score or submit,
parsed strictly by `parse_control`); the daemon answers in JSON-lines events
(`mpc_credit.jsonwire`): `progress` lines, then one `result`, `status` or `error` (with the
error's `kind`). What each operation does is in `client_ops`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from mpc_credit.consortium.control import MAX_BYTES, ControlRequest, parse_control
from mpc_credit.errors import MpcCreditError, RefusedError, SessionError, UsageError
from mpc_credit.jsonwire import WireError, event_line

log = logging.getLogger("mpc_credit.daemon")
MAX_ANSWER_BYTES = 1 << 27  # a result line: the revealed matrix of a large batch


def peer_uid(sock: socket.socket | None) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux), else None."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class LocalClient:
    """A local client connected to the control socket, waiting for one answer."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.finished = asyncio.get_running_loop().create_future()
        self.ids: list[str] | None = None  # a batch's ids, sent to the others over MPC

    def send(self, event: str, **fields: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(event_line(event, **fields))

    def finish(self, event: str, **fields: Any) -> None:
        """The last event for this client (once: later ones are dropped)."""
        if not self.finished.done():
            self.send(event, **fields)
            self.finished.set_result(None)

    def fail(self, error: MpcCreditError) -> None:
        """The error event; a refusal also carries its public category (`reason`)."""
        reason = error.reason if isinstance(error, RefusedError) else None
        extra = {"reason": reason} if reason else {}
        self.finish("error", kind=error.kind, message=str(error), **extra)


Handler = Callable[[ControlRequest, LocalClient], Awaitable[None]]


class ControlServer:
    """Serves the operations in `handlers` (op name -> coroutine) on a Unix socket."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_BYTES + 1
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = LocalClient(writer)
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            if uid is not None and uid != os.geteuid():
                client.fail(RefusedError(f"user {uid} may not use this daemon"))
            else:
                op = await _read_op(reader)
                handler = self.handlers.get(op.op)
                if handler is None:
                    client.fail(UsageError(f"operation {op.op!r} is not served here"))
                else:
                    await handler(op, client)
            await writer.drain()
        except UsageError as exc:
            client.fail(exc)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError as exc:
            log.debug("control client: %s", exc)
        except Exception as exc:
            log.exception("control client: internal error")
            client.fail(SessionError(f"internal error: {type(exc).__name__}"))
        finally:
            writer.close()


async def _read_op(reader: asyncio.StreamReader) -> ControlRequest:
    try:
        return parse_control(await reader.readline())
    except (asyncio.LimitOverrunError, ValueError) as exc:  # WireError is a ValueError
        reason = str(exc) if isinstance(exc, WireError) else "line too long"
        raise UsageError(f"malformed operation: {reason}") from None
