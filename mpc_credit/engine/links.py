"""MPyC links for long-lived party processes: connect, watch, and tear down a runtime.

MPyC's own `Runtime.start` reads TLS files at every start and waits 100 ms between
attempts to reach a peer; a daemon builds its TLS contexts once and retries every 5 ms.
MPyC also stops the event loop when one of its coroutines raises, which would end a
daemon together with the failed session; `install_mpc_guard` records the exception
for the session instead, and `teardown_runtime` makes an aborted runtime's leftover
coroutines harmless. Both rely on MPyC 0.10/0.11 internals (`asyncoro._reconcile`,
`Party.protocol`), which tests/test_daemon.py exercises.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.errors import UsageError

log = logging.getLogger("mpc_credit.daemon")
CONNECT_RETRY = 0.005  # seconds between attempts to reach a peer's MPC port


@dataclass
class TlsContexts:
    """The party's TLS contexts for MPyC links, built once at daemon start."""

    server: ssl.SSLContext
    client: ssl.SSLContext

    @classmethod
    def load(cls, folder: Path, pid: int) -> TlsContexts:
        conf = folder / ".config"
        crt, key, ca = conf / f"party_{pid}.crt", conf / f"party_{pid}.key", conf / "mpyc_ca.crt"
        for f in (crt, key, ca):
            if not f.exists():
                raise UsageError(f"{f}: TLS file missing (run `mpc-credit pki init`)")
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        server.load_cert_chain(str(crt), str(key))
        server.verify_mode = ssl.CERT_REQUIRED
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        client.load_cert_chain(str(crt), str(key))
        return cls(server, client)


async def connect_runtime(mpc: Any, listen: str, tls: TlsContexts | None) -> None:
    """MPyC's `Runtime.start`, with pre-built TLS contexts, a bound listen address and a
    5 ms retry (MPyC's own waits 100 ms whenever a peer is not listening yet)."""
    from mpyc import asyncoro

    loop = asyncio.get_running_loop()
    mpc._loop = loop
    for peer in mpc.parties:
        peer.protocol = loop.create_future() if peer.pid == mpc.pid else None
    server = None
    if mpc.pid:
        server = await loop.create_server(
            lambda: asyncoro.MessageExchanger(mpc),
            host=listen,
            port=mpc.parties[mpc.pid].port,
            ssl=tls.server if tls else None,
            reuse_address=True,
        )
    mpc._mpc_credit_server = server
    try:
        for peer in mpc.parties[mpc.pid + 1 :]:
            while True:
                try:
                    await loop.create_connection(
                        lambda p=peer.pid: asyncoro.MessageExchanger(mpc, p),
                        peer.host,
                        peer.port,
                        ssl=tls.client if tls else None,
                        server_hostname=f"MPyC party {peer.pid}" if tls else None,
                    )
                    break
                except (OSError, ssl.SSLError):
                    await asyncio.sleep(CONNECT_RETRY)
        await mpc.parties[mpc.pid].protocol
    finally:
        if server is not None:
            server.close()
    mpc.start_time = time.time()


def lost_peers(mpc: Any) -> list[int]:
    """Pids of peers whose MPC connection is gone."""
    out = []
    for peer in mpc.parties:
        if peer.pid == mpc.pid:
            continue
        proto = peer.protocol
        transport = getattr(proto, "transport", None)
        if proto is None or transport is None or transport.is_closing():
            out.append(peer.pid)
    return out


def unconnected_peers(mpc: Any) -> list[int]:
    """Pids of peers not connected yet (during the connection phase)."""
    return [
        p.pid
        for p in mpc.parties
        if p.pid != mpc.pid and (p.protocol is None or isinstance(p.protocol, asyncio.Future))
    ]


class _Sink:
    """Stands in for a closed MPC link: sends vanish, receives never complete."""

    transport = None
    nbytes_sent = 0

    def send(self, pc: int, payload: bytes) -> None:
        pass

    def receive(self, pc: int) -> asyncio.Future[Any]:
        return asyncio.get_event_loop().create_future()

    def close_connection(self) -> None:
        pass


def teardown_runtime(mpc: Any) -> None:
    """Close every link and the listening socket of an aborted runtime.

    The runtime's leftover coroutines must neither crash nor touch the next session, so
    each link is replaced by a sink and the runtime stops tracking (dis)connections.
    """
    server = getattr(mpc, "_mpc_credit_server", None)
    if server is not None:
        server.close()
    mpc.set_protocol = lambda pid, protocol: None
    mpc.unset_protocol = lambda pid: None
    for peer in mpc.parties:
        proto = peer.protocol
        if isinstance(proto, asyncio.Future):
            if not proto.done():
                proto.cancel()
            if peer.pid == mpc.pid:
                continue
        transport = getattr(proto, "transport", None)
        if transport is not None:
            transport.abort()
        if peer.pid != mpc.pid:
            peer.protocol = _Sink()


MPC_FAILURES: list[BaseException] = []  # exceptions of MPyC coroutines, for the watchdog


def install_mpc_guard() -> None:
    """MPyC stops the event loop when one of its coroutines raises (asyncoro._reconcile),
    which would end the daemon; record the exception for the session instead."""
    from mpyc import asyncoro

    if getattr(asyncoro, "_mpc_credit_guard", False):
        return
    original = asyncoro._reconcile

    def guarded(decl: Any, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            asyncoro.runtime._pc_level -= 1
            if not task.cancelled():
                MPC_FAILURES.append(task.exception())  # type: ignore[arg-type]
            return
        original(decl, task)

    asyncoro._reconcile = guarded
    asyncoro._mpc_credit_guard = True


def quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Aborted MPyC sessions leave pending futures and lost-connection errors behind."""
    exc = context.get("exception")
    msg = str(context.get("message", ""))
    if (
        isinstance(exc, (ConnectionError, ssl.SSLError, asyncio.CancelledError))
        or "destroyed" in msg
    ):
        log.debug("after an MPC link closed: %s %s", msg, exc)
        return
    loop.default_exception_handler(context)
