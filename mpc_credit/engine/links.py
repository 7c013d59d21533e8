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
The MPC port itself is a `_Listener`: open only while earlier parties connect, closing at
once connections from unexpected addresses or beyond one pending per expected peer, each
pending one held to a 10 s deadline. A link holds its peer to the session's `LinkLimits`
(its largest message, and what it may make this party hold: messages sent ahead, each at a
floor, plus the one arriving), hands large payloads on without copying them, and drops all
it held when the session aborts (see docs/security.md, "The trust boundary").
Connecting and tearing down share one module (about 690 lines)
because a refused link tears its runtime down the way an aborted session does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import socket
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
HANDSHAKE_TIMEOUT = 3.0  # seconds an accepted connection has to authenticate and announce
RESOLVE_TIMEOUT = 2.0  # seconds to resolve an expected peer's host
MAX_MESSAGE = 256 << 20  # bytes of one MPC message from a peer, in any session (the ceiling)
MAX_UNCLAIMED = 512 << 20  # bytes a peer may make this party hold for it, in any session
MESSAGE_FLOOR = 4096  # bytes a buffered message counts for at least (see `cost`)
SMALL_MESSAGE = 1 << 20  # a session's message bound is never below this (control messages)
UNCLAIMED_FLOOR = 16 << 20  # nor its per-peer cap below this (4,096 small messages ahead)
MESSAGE_SLACK = 2  # a session's message bound: this times its largest honest message
AHEAD = 4  # a session's per-peer cap: this many messages at its bound
HANDOVER = 64 << 10  # bytes from which a payload is the link's buffer itself, not a copy


@dataclass(frozen=True)
class LinkLimits:
    """What one peer may make this party hold in one session: one message's payload
    (`message` bytes), and what it sent ahead plus what is still arriving (`held`)."""

    message: int
    held: int

    @classmethod
    def ceiling(cls) -> LinkLimits:
        """The limits of a session that states none: MAX_MESSAGE and MAX_UNCLAIMED."""
        return cls(MAX_MESSAGE, MAX_UNCLAIMED)

    @classmethod
    def for_session(cls, largest: int) -> LinkLimits:
        """The limits of a session whose largest honest message is `largest` bytes."""
        message = min(MAX_MESSAGE, max(SMALL_MESSAGE, MESSAGE_SLACK * largest))
        held = min(MAX_UNCLAIMED, max(UNCLAIMED_FLOOR, AHEAD * (message + 12)))
        return cls(message, held)


def cost(payload: bytes | bytearray) -> int:
    """What a message waiting in a link's buffers counts for: the memory its payload object
    takes (a bytearray's spare capacity included), but at least MESSAGE_FLOOR bytes (a
    buffered message costs its header, a dict entry and an object even when empty), plus
    its 12-byte header."""
    return max(payload.__sizeof__(), MESSAGE_FLOOR) + 12


def _handover(data: bytearray, at: int, size: int) -> tuple[bytearray, bytearray]:
    """The payload of the message at `at` as the buffer `data` itself (no second copy of a
    large payload), and a new buffer holding what follows it (less than one read)."""
    end = at + 12 + size
    with memoryview(data) as view:
        rest = bytearray(view[end:])
    del data[end:]
    del data[: at + 12]
    return data, rest


def is_bytes(x: Any) -> bool:
    return isinstance(x, (bytes, bytearray))


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
        self.unclaimed = 0  # the `cost` of the messages in `buffers` nobody asked for yet
        self.limits: LinkLimits = getattr(rt, "_mpc_credit_limits", None) or LinkLimits.ceiling()

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
        if self.peer_pid is None:  # a peer connecting to us: MPyC reads its pid first
            if len(self.bytes) + len(data) >= 2:
                claimed = int.from_bytes((bytes(self.bytes) + bytes(data[:2]))[:2], "little")
                problem = self._check_claim(claimed)
                if problem:
                    self._refuse(problem)
                    return
            super().data_received(data)
            if self.peer_pid is not None:
                self.unclaimed = sum(cost(b) for b in self.buffers.values() if is_bytes(b))
                self._check_bounds()
            return
        self.bytes.extend(data)
        self._take_messages()

    def _take_messages(self) -> None:
        """MPyC's message loop, counting each message a peer sends ahead at its `cost` and
        refusing an oversized header before its payload is buffered."""
        data, at = self.bytes, 0
        while len(data) - at >= 12:
            pc, size = struct.unpack_from("<qI", data, at)
            if size > self.limits.message or len(data) - at < 12 + size:
                break
            if size >= HANDOVER:
                payload, data = _handover(data, at, size)
                self.bytes, at = data, 0
            else:
                with memoryview(data) as view:
                    payload = bytes(view[at + 12 : at + 12 + size])
                at += 12 + size
            if not self._deliver(pc, payload):
                break
        del data[:at]
        self._check_bounds()

    def _deliver(self, pc: int, payload: bytes | bytearray) -> bool:
        """Hand a payload to the step waiting for it, else keep it: False once the peer
        holds more than its cap."""
        waiting = self.buffers.pop(pc, None)
        if isinstance(waiting, asyncio.Future):
            if not waiting.done():
                waiting.set_result(payload)
            return True
        if waiting is not None:
            self.unclaimed -= cost(waiting)  # a repeated label: the later one counts
        self.buffers[pc] = payload
        self.unclaimed += cost(payload)
        return self.held() <= self.limits.held

    def held(self) -> int:
        """What this peer makes this party hold: its unclaimed messages and the bytes
        of the next one still arriving."""
        return self.unclaimed + self.bytes.__sizeof__()

    def receive(self, pc: int) -> Any:
        payload = super().receive(pc)
        if is_bytes(payload):
            self.unclaimed -= cost(payload)
        return payload

    def _check_bounds(self) -> None:
        """Messages a peer sends before this party asks for them wait in `buffers`; a peer
        that makes this party hold over `limits.held` (unclaimed messages at their `cost`,
        plus the message still arriving), or whose next message is over `limits.message`
        bytes, loses the link."""
        name, limits = party(self.runtime, self.peer_pid), self.limits
        if self.held() > limits.held:
            self._refuse(f"party {name} sent over {limits.held} bytes nobody asked for")
        elif len(self.bytes) >= 12 and struct.unpack_from("<qI", self.bytes)[1] > limits.message:
            self._refuse(f"party {name} sent an MPC message over {limits.message} bytes")

    def release(self) -> None:
        """Drop every payload this link holds and the bytes still arriving (an aborted
        session's link: nothing will read them)."""
        for pc, waiting in list(self.buffers.items()):
            if is_bytes(waiting):
                del self.buffers[pc]
        self.bytes = bytearray()
        self.unclaimed = 0

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer_pid is None:  # accepted, never announced a party: MPyC never saw it
            return
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
        self.release()
        teardown_runtime(mpc, reclaim=False)  # the session's frames still hold what it held


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
    mpc: Any,
    listen: str,
    tls: TlsContexts | None,
    *,
    names: Sequence[str] | None = None,
    limits: LinkLimits | None = None,
) -> None:
    """MPyC's `Runtime.start`, with pre-built TLS contexts, a bound listen address, a 5 ms
    retry, and links that check who is on them; `names` name the parties in errors, `limits`
    bound what each peer may make this party hold (None: the ceilings, MAX_MESSAGE and
    MAX_UNCLAIMED).

    It returns once every link is up and every party has said hello on it (with TLS 1.3 a
    client learns only then that the server accepted its certificate); a refused or dropped
    link raises SessionError.
    """
    loop = asyncio.get_running_loop()
    mpc._loop = loop
    mpc._mpc_credit_names = tuple(names or ())
    mpc._mpc_credit_limits = limits
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
        mpc._mpc_credit_server = _Listener(mpc, listen, tls)
    connects = [loop.create_task(_connect(mpc, p, tls)) for p in mpc.parties[mpc.pid + 1 :]]
    try:
        await asyncio.gather(*connects)  # to every later party at once
    finally:
        for c in connects:
            c.cancel()
    await mpc.parties[mpc.pid].protocol
    if mpc._mpc_credit_server is not None:
        mpc._mpc_credit_server.close()  # every earlier party has joined: stop listening
    await broadcast(mpc, b"", range(len(mpc.parties)))


def _not_joined(protocol: Any) -> bool:
    """MPyC holds None, or a Future while the runtime starts, for a peer not yet connected."""
    return protocol is None or isinstance(protocol, asyncio.Future)


class _Listener:
    """The MPC port while the earlier parties connect, and only then. It accepts each
    connection itself so that a stranger costs no TLS state: a connection from an address that
    no expected peer's host resolves to (where they resolve), or beyond one pending connection
    per expected peer not yet joined, is closed at once. A pending connection is one that has
    not yet announced a party id that its certificate names (`_CheckedLink`); it has
    HANDSHAKE_TIMEOUT seconds for its TLS handshake and its announcement together.
    """

    def __init__(self, mpc: Any, listen: str, tls: TlsContexts | None) -> None:
        self.mpc = mpc
        self.tls = tls
        port = mpc.parties[mpc.pid].port
        if not listen and socket.has_dualstack_ipv6():  # every address, as asyncio's server
            self.sock = socket.create_server(
                ("", port), family=socket.AF_INET6, backlog=128, dualstack_ipv6=True
            )
        else:
            family = socket.getaddrinfo(listen or None, port, type=socket.SOCK_STREAM)[0][0]
            self.sock = socket.create_server((listen, port), family=family, backlog=128)
        self.sock.setblocking(False)
        self.expected: dict[int, set[str] | None] = {p.pid: None for p in mpc.parties[: mpc.pid]}
        self.pending: dict[asyncio.Task[Any], str] = {}
        self.links: dict[asyncio.Task[Any], Any] = {}  # the link each pending task made
        # connections turned away for want of a slot, from an address several expected peers
        # share (one host, or a host that does not resolve): who is crowded out is unknown
        self.crowded = 0
        self.accepting = asyncio.ensure_future(self._accept())

    def close(self) -> None:
        """Stop listening and drop the connections that have not announced a party. A link
        that has joined stays: the party may have joined (and the port close) before the
        task that accepted it resumed from the handshake, which it then leaves by itself."""
        self.accepting.cancel()
        for task in list(self.pending):
            link = self.links.get(task)
            if link is None or link.peer_pid is None:
                task.cancel()
        self.sock.close()

    def _room(self, host: str) -> bool:
        """Whether a connection from `host` may start its handshake now."""
        waiting = [
            pid
            for pid, hosts in self.expected.items()
            if _not_joined(self.mpc.parties[pid].protocol) and (hosts is None or host in hosts)
        ]
        pending = sum(1 for t, h in self.pending.items() if h == host and not self._joined(t))
        return pending < len(waiting)

    def _shared(self, host: str) -> bool:
        """Whether `host` may be the address of more than one expected peer."""
        return sum(1 for hosts in self.expected.values() if hosts is None or host in hosts) > 1

    def _joined(self, task: asyncio.Task[Any]) -> bool:
        """Whether the connection `task` accepted has announced its party: no longer pending
        for that party's slot, though the task resumes only at its next look."""
        link = self.links.get(task)
        return link is not None and link.peer_pid is not None

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        for pid in self.expected:
            self.expected[pid] = await _addresses(self.mpc.parties[pid].host)
        while True:
            try:
                self._take(*await loop.sock_accept(self.sock))
            except OSError as exc:  # out of file descriptors, say: try again shortly
                log.warning("MPC port: accept failed: %s", exc)
                await asyncio.sleep(0.05)
                continue
            for _ in range(1024):  # what else waits in the backlog, without a round trip
                try:
                    self._take(*self.sock.accept())
                except (BlockingIOError, InterruptedError):
                    break

    def _take(self, conn: socket.socket, address: Any) -> None:
        host = str(address[0])
        if not self._room(host):
            if self._shared(host):
                self.crowded += 1
            conn.close()
            return
        try:
            conn.setblocking(False)
            # Nagle off, as on the links this party connects: asyncio sets it only on sockets
            # of proto IPPROTO_TCP, and one accepted here has proto 0 (each round would
            # otherwise wait for the peer's delayed ACK, ~40 ms)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            conn.close()
            return
        task = asyncio.get_running_loop().create_task(self._admit(conn))
        self.pending[task] = host
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.pending.pop(task, None)
        self.links.pop(task, None)

    async def _admit(self, conn: socket.socket) -> None:
        """Hand the connection to a link once authenticated; drop it at the deadline."""
        loop = asyncio.get_running_loop()
        mpc, tls = self.mpc, self.tls
        deadline = loop.time() + HANDSHAKE_TIMEOUT
        transport = link = None
        task = asyncio.current_task()
        assert task is not None

        def new_link() -> Any:
            made = self.links[task] = checked_link()(mpc, tls=tls is not None)
            return made

        try:
            transport, link = await loop.connect_accepted_socket(
                new_link,
                conn,
                ssl=tls.server if tls else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls else None,
            )
            while link.peer_pid is None and not transport.is_closing():
                if loop.time() > deadline:
                    log.debug("an MPC connection announced no party in time: dropped")
                    transport.abort()
                    return
                await asyncio.sleep(0.05)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            log.debug("MPC connection dropped before it was authenticated: %s", exc)
            self._drop(conn, task)
        except asyncio.CancelledError:  # the port closes: a link not yet announced goes too
            if transport is None:
                self._drop(conn, task)
            elif link is not None and link.peer_pid is None:
                transport.abort()
            raise

    def _drop(self, conn: socket.socket, task: asyncio.Task[Any]) -> None:
        """Close an accepted socket that no transport owns. Once asyncio has made the link
        (it makes the transport right after), the transport owns the socket and closes it
        itself, later: closing it here too would free its fd while that transport may still
        use the number (a writer left registered, a late `remove_reader`), which a new
        connection may by then have been given."""
        if task not in self.links:
            conn.close()


async def _addresses(host: str) -> set[str] | None:
    """The IP addresses a peer's host resolves to; None (any address) when it does not."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (OSError, UnicodeError, asyncio.TimeoutError):
        return None
    found = {str(info[4][0]) for info in infos}
    for a in list(found):  # an IPv4 peer reaches a dual-stack socket as ::ffff:a.b.c.d
        if ":" not in a:
            found.add(f"::ffff:{a}")
    return found or None


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
    limits: LinkLimits | None = None,
) -> None:
    """`connect_runtime` for a one-shot party: TLS from `tls_folder/.config` (None: no TLS),
    listening on its own address unless `listen` says otherwise."""
    tls = TlsContexts.load(Path(tls_folder), mpc.pid) if tls_folder is not None else None
    host = listen if listen is not None else mpc.parties[mpc.pid].host
    await connect_runtime(mpc, host, tls, names=names, limits=limits)


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


def crowded(mpc: Any) -> int:
    """Connections this party's MPC port turned away in this session for want of a slot,
    from an address several expected peers share: a peer that did not connect may have been
    crowded out rather than have stalled."""
    listener = getattr(mpc, "_mpc_credit_server", None)
    return int(getattr(listener, "crowded", 0))


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


def teardown_runtime(mpc: Any, *, reclaim: bool = True) -> None:
    """Close every link and the listening socket of an aborted runtime, drop what the links
    held and (with `reclaim`) give the freed memory back to the system.

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
        if isinstance(proto, _CheckedLink):
            proto.release()
        if peer.pid != mpc.pid:
            peer.protocol = _Sink()
    if reclaim:
        reclaim_memory()


def reclaim_memory() -> None:
    """Collect the cycles an aborted session leaves (tasks, futures, frames) and hand the
    freed heap back to the system (glibc keeps it otherwise; elsewhere a no-op)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


MPC_FAILURES: list[BaseException] = []  # exceptions of MPyC coroutines, for the watchdog


def _bare(exc: BaseException) -> BaseException:
    """`exc` and the exceptions it chains without their tracebacks: a failure kept for the
    watchdog must not keep the frames (and a peer's payload in them) alive."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        e.__traceback__ = None
        e = e.__cause__ or e.__context__
    return exc


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
                MPC_FAILURES.append(_bare(task.exception()))  # type: ignore[arg-type]
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
