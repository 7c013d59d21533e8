"""MPyC links for long-lived party processes: connect, check, watch, and tear down a runtime.

MPyC's own `Runtime.start` reads TLS files at every start, waits 100 ms between attempts
to reach a peer, and believes the party id a connecting peer announces. Here a daemon builds
its TLS contexts once (engine/tls.py), retries every 5 ms, and each link is held to the
party its peer's certificate names: the connecting side checks the server's certificate
(host name `MPyC party {pid}`), the accepting side checks that the client's certificate names
the pid the client announces, and a mismatch drops the link and fails the session naming
both parties. Links carry no pickles (engine/exchange.py `forbid_pickle`).

MPyC also stops the event loop when one of its coroutines raises, which would end a
daemon together with the failed session; `install_mpc_guard` records the exception
for the session instead, and `teardown_runtime` makes an aborted runtime's leftover
coroutines harmless. Both rely on MPyC 0.10/0.11 internals (`asyncoro._reconcile`,
`Party.protocol`, `MessageExchanger`), which tests/engine/test_links.py and the daemon
tests exercise. MPyC is imported only when a link is made, through `runtime.load_mpyc`
(importing it parses sys.argv: it must not see the options of the process importing this).
Connecting and tearing down share one module (about 360 lines)
because a refused link tears its runtime down the way an aborted session does.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from mpc_credit.engine.exchange import broadcast, forbid_pickle
from mpc_credit.engine.runtime import load_mpyc
from mpc_credit.engine.tls import TlsContexts, certificate_pid
from mpc_credit.errors import SessionError

__all__ = ["TlsContexts", "connect_runtime", "start_runtime", "teardown_runtime"]

log = logging.getLogger("mpc_credit.daemon")
CONNECT_RETRY = 0.005  # seconds between attempts to reach a peer's MPC port
MAX_MESSAGE = 256 << 20  # bytes of one MPC message from a peer; a larger one drops the link
MAX_UNCLAIMED = 512 << 20  # bytes a peer may send ahead of what this party asked for


def party(mpc: Any, pid: int | None) -> str:
    """A party's name for messages: its name in the session, else its pid."""
    names = getattr(mpc, "_mpc_credit_names", None) or ()
    if pid is None:
        return "(unidentified)"
    return names[pid] if 0 <= pid < len(names) else str(pid)


@cache
def checked_link() -> type:
    """CheckedLink: `_CheckedLink` over MPyC's message exchanger (MPyC imported now)."""
    load_mpyc()
    from mpyc import asyncoro

    return type("CheckedLink", (_CheckedLink, asyncoro.MessageExchanger), {})


def __getattr__(name: str) -> Any:
    if name == "CheckedLink":
        return checked_link()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CheckedLink:
    """MPyC's message exchanger (the next class in CheckedLink's order), holding the peer to
    the party its certificate names."""

    def __init__(self, rt: Any, peer_pid: int | None = None, *, tls: bool) -> None:
        super().__init__(rt, peer_pid)
        self.tls = tls

    def connection_made(self, transport: Any) -> None:
        if self.peer_pid is not None and self.tls:  # we connected: the server is peer_pid
            named = certificate_pid(transport.get_extra_info("peercert"))
            if named != self.peer_pid:
                self.transport = transport
                self._refuse(_impostor(self.runtime, self.peer_pid, named))
                return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()  # for stalled_peer
        if self.peer_pid is None and len(self.bytes) + len(data) >= 2:
            claimed = int.from_bytes((bytes(self.bytes) + bytes(data[:2]))[:2], "little")
            problem = self._check_claim(claimed)
            if problem:
                self._refuse(problem)
                return
        super().data_received(data)
        if self.peer_pid is not None:
            self._bound_unclaimed()
        if self.peer_pid is None or len(self.bytes) < 12:  # before the pid: no header yet
            return
        if struct.unpack_from("<qI", self.bytes)[1] > MAX_MESSAGE:
            name = party(self.runtime, self.peer_pid)
            self._refuse(f"party {name} sent an MPC message over {MAX_MESSAGE} bytes")

    def _bound_unclaimed(self) -> None:
        """Messages a peer sends before this party asks for them wait in `buffers`; a peer
        that keeps sending ahead (more than MAX_UNCLAIMED bytes) loses the link."""
        unclaimed = sum(len(b) for b in self.buffers.values() if isinstance(b, bytes))
        if unclaimed > MAX_UNCLAIMED:
            name = party(self.runtime, self.peer_pid)
            self._refuse(f"party {name} sent over {MAX_UNCLAIMED} bytes nobody asked for")

    def connection_lost(self, exc: Exception | None) -> None:
        if _connecting(self.runtime):
            why = f" ({exc})" if exc else ""
            name = party(self.runtime, self.peer_pid)
            self._refuse(f"party {name} closed the MPC link while connecting{why}", LinkClosedError)
            return
        super().connection_lost(exc)

    def _check_claim(self, claimed: int) -> str | None:
        """Why a connecting peer may not be party `claimed`, or None."""
        mpc = self.runtime
        me = party(mpc, mpc.pid)
        if not 0 <= claimed < mpc.pid:
            return f"a peer announced party id {claimed}, which does not connect to party {me}"
        if self.tls:
            named = certificate_pid(self.transport.get_extra_info("peercert"))
            if named != claimed:
                return _impostor(mpc, claimed, named)
        if mpc.parties[claimed].protocol is not None:
            return f"party {party(mpc, claimed)} connected to party {me} twice"
        return None

    def _refuse(self, reason: str, kind: type[SessionError] = SessionError) -> None:
        """Drop this link and fail the session (the connect step, or else the watchdog)."""
        log.warning("MPC link refused: %s", reason)
        if self.transport is not None:
            self.transport.abort()
        mpc = self.runtime
        error = kind(reason)
        if _connecting(mpc):
            mpc._mpc_credit_failed.set_exception(error)
        else:
            MPC_FAILURES.append(error)
        teardown_runtime(mpc)


class LinkClosedError(SessionError):
    """A peer closed its link while the parties connected: a knock-on effect whose cause (a
    refused certificate, a revoked party) that peer's own report names better."""


def _connecting(mpc: Any) -> bool:
    """Whether `connect_runtime` still waits for this runtime's links."""
    failed = getattr(mpc, "_mpc_credit_failed", None)
    return failed is not None and not failed.done()


def _impostor(mpc: Any, claimed: int, named: int | None) -> str:
    cert = (
        f"the certificate of party {party(mpc, named)}"
        if named is not None
        else "no party's certificate"
    )
    return f"a peer claiming to be party {party(mpc, claimed)} presented {cert}"


async def connect_runtime(
    mpc: Any, listen: str, tls: TlsContexts | None, *, names: Sequence[str] | None = None
) -> None:
    """MPyC's `Runtime.start`, with pre-built TLS contexts, a bound listen address, a 5 ms
    retry, and links that check who is on them; `names` name the parties in errors.

    It returns once every link is up and every party has said hello on it (with TLS 1.3 a
    client learns only then that the server accepted its certificate); a refused or dropped
    link raises SessionError.
    """
    loop = asyncio.get_running_loop()
    mpc._loop = loop
    mpc._mpc_credit_names = tuple(names or ())
    forbid_pickle(mpc)
    if tls is not None:
        tls.refresh()  # a CRL written since the last session counts for this one
    if len(mpc.parties) == 1:
        mpc.start_time = time.time()
        return
    failed = mpc._mpc_credit_failed = loop.create_future()
    setup = asyncio.ensure_future(_establish(mpc, listen, tls))
    try:
        await asyncio.wait([setup, failed], return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            raise failed.exception()  # type: ignore[misc]
        setup.result()
    except BaseException:
        setup.cancel()
        teardown_runtime(mpc)
        raise
    finally:
        failed.cancel()
        server = getattr(mpc, "_mpc_credit_server", None)
        if server is not None:
            server.close()
    mpc.start_time = time.time()


async def _establish(mpc: Any, listen: str, tls: TlsContexts | None) -> None:
    """Listen for the earlier parties, connect to the later ones, then say hello to all."""
    loop = asyncio.get_running_loop()
    for peer in mpc.parties:
        peer.protocol = loop.create_future() if peer.pid == mpc.pid else None
    mpc._mpc_credit_server = None
    if mpc.pid:
        mpc._mpc_credit_server = await loop.create_server(
            lambda: checked_link()(mpc, tls=tls is not None),
            host=listen,
            port=mpc.parties[mpc.pid].port,
            ssl=tls.server if tls else None,
            reuse_address=True,
        )
    connects = [loop.create_task(_connect(mpc, p, tls)) for p in mpc.parties[mpc.pid + 1 :]]
    try:
        await asyncio.gather(*connects)  # to every later party at once
    finally:
        for c in connects:
            c.cancel()
    await mpc.parties[mpc.pid].protocol
    await broadcast(mpc, b"", range(len(mpc.parties)))


async def _connect(mpc: Any, peer: Any, tls: TlsContexts | None) -> None:
    """Reach a peer, retrying until it listens; a refused certificate ends it."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.create_connection(
                lambda: checked_link()(mpc, peer.pid, tls=tls is not None),
                peer.host,
                peer.port,
                ssl=tls.client if tls else None,
                server_hostname=f"MPyC party {peer.pid}" if tls else None,
            )
            return
        except ssl.SSLCertVerificationError as exc:
            raise SessionError(
                f"party {party(mpc, peer.pid)}'s MPC certificate was refused: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError):
            await asyncio.sleep(CONNECT_RETRY)


async def start_runtime(
    mpc: Any,
    tls_folder: str | Path | None,
    *,
    names: Sequence[str] | None = None,
    listen: str | None = None,
) -> None:
    """`connect_runtime` for a one-shot party: TLS from `tls_folder/.config` (None: no TLS),
    listening on its own address unless `listen` says otherwise."""
    tls = TlsContexts.load(Path(tls_folder), mpc.pid) if tls_folder is not None else None
    host = listen if listen is not None else mpc.parties[mpc.pid].host
    await connect_runtime(mpc, host, tls, names=names)


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


def stalled_peer(mpc: Any) -> int | None:
    """The peer this party waits for and heard from longest ago; None when it waits for none.

    A stopped or hung party starves the others one after another: each waits for a message
    it asked for (a receive MPyC posted, still a future in the link's `buffers`), and among
    those it waits for, the one silent longest is the cause, not a party merely waiting too.
    A heuristic for error messages, never for a decision.
    """
    waiting = []
    for peer in mpc.parties:
        buffers = getattr(peer.protocol, "buffers", None) or {}
        if peer.pid != mpc.pid and any(isinstance(b, asyncio.Future) for b in buffers.values()):
            waiting.append((getattr(peer.protocol, "heard", 0.0), peer.pid))
    return min(waiting)[1] if waiting else None


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
