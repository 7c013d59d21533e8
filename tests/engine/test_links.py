"""MPC links over loopback TLS: who is on a link, what crosses it, and revocation.

Three real MPyC runtimes in one event loop, connected by `connect_runtime` (the daemons'
function) over real TLS sockets with certificates from a throwaway consortium CA.
tests/attacks/test_mpc_links.py performs the same attacks between separate processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import mpc_credit.engine.links as links
from mpc_credit.consortium import pki
from mpc_credit.engine.exchange import (
    agree_session,
    broadcast,
    decode_ids,
    deliver,
    encode_ids,
    forbid_pickle,
    share_ids,
    shutdown_runtime,
)
from mpc_credit.engine.links import MAX_MESSAGE, MAX_UNCLAIMED, CheckedLink, connect_runtime
from mpc_credit.engine.runtime import make_runtime
from mpc_credit.engine.tls import CRL_FILE, TlsContexts, certificate_pid
from mpc_credit.errors import SessionError, UsageError
from mpc_credit.local.ports import free_ports
from tests.attacks.test_mpc_links import Marker, connect_as, restore_mpyc_globals  # noqa: F401
from tests.conftest import OWNERS

OTHER_SESSION = "party telco joined the MPC link for another session"
Body = Callable[[Any], Awaitable[Any]]


@pytest.fixture()
def consortium(tmp_path: Path) -> tuple[pki.Authority, list[Path], list[x509.Certificate]]:
    """A CA and one folder per party, each holding only its own key."""
    ca = pki.new_authority("test MPC CA")
    folders, certs = [], []
    for pid in range(3):
        key, cert = pki.issue(ca, pid)
        folders.append(pki.write_party_tls(tmp_path / OWNERS[pid], pid, ca.cert, key, cert))
        certs.append(cert)
    return ca, folders, certs


async def _session(
    contexts: Sequence[TlsContexts | None],
    bodies: dict[int, Body] | None = None,
    expect_failures: Sequence[int] = (),
    present: Sequence[int] = (0, 1, 2),
) -> list[Any]:
    """Connect three runtimes (pid i with contexts[i]; those `present`) and run each party's
    body; returns each party's result or exception once every party in `expect_failures` has
    failed (the others, left waiting for a refused peer, are then cancelled)."""
    ports = free_ports(3)
    addresses = [("127.0.0.1", p) for p in ports]

    async def party(pid: int) -> Any:
        mpc = make_runtime(pid, addresses, ssl=contexts[pid] is not None)
        await connect_runtime(mpc, "127.0.0.1", contexts[pid], names=OWNERS)
        body = (bodies or {}).get(pid)
        out = await body(mpc) if body else None
        await shutdown_runtime(mpc)
        return out

    tasks = [asyncio.ensure_future(party(pid)) for pid in present]
    wait_for = [tasks[present.index(p)] for p in expect_failures] or tasks
    await asyncio.wait_for(asyncio.wait(wait_for), 30)
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.wait(tasks)
    return [t.exception() or t.result() if not t.cancelled() else "cancelled" for t in tasks]


def _load(folders: Sequence[Path]) -> list[TlsContexts | None]:
    return [TlsContexts.load(f, pid) for pid, f in enumerate(folders)]


def test_certificate_pid() -> None:
    def cert(*cns: str) -> dict[str, Any]:
        return {"subject": tuple((("commonName", cn),) for cn in cns)}

    assert certificate_pid(cert("MPyC party 0")) == 0
    assert certificate_pid(cert("MPyC party 12")) == 12
    for bad in ("MPyC party 01", "MPyC party 1 ", "mpyc party 1", "MPyC party -1", "party 1"):
        assert certificate_pid(cert(bad)) is None, bad
    assert certificate_pid(cert("MPyC party 1", "MPyC party 2")) is None
    assert certificate_pid({"subject": ((("organizationName", "MPyC party 1"),),)}) is None
    assert certificate_pid(None) is None and certificate_pid({}) is None


def test_three_parties_agree_share_ids_and_shut_down(consortium) -> None:
    _, folders, _ = consortium
    ids = ["a-1", "ü" * 128, ""]

    async def body(mpc: Any) -> list[str]:
        await agree_session(mpc, "session-1", OWNERS)
        return await share_ids(mpc, 1, ids if mpc.pid == 1 else None, 3, "bureau")

    results = asyncio.run(_session(_load(folders), {p: body for p in range(3)}))
    assert results == [ids, ids, ids]


def test_deliver_gives_each_party_only_its_own_payload(consortium) -> None:
    _, folders, _ = consortium
    payloads = {0: b"for bank", 2: b"for telco " * 1000}

    async def body(mpc: Any) -> bytes:
        return await deliver(mpc, 1, payloads if mpc.pid == 1 else None)

    results = asyncio.run(_session(_load(folders), {p: body for p in range(3)}))
    assert results == [b"for bank", b"", b"for telco " * 1000]


@pytest.mark.parametrize("tls", [True, False])
def test_every_link_sends_without_delay(consortium, tls: bool) -> None:
    """Nagle off (TCP_NODELAY) on every link, the accepted ones too: otherwise each round of
    small messages may wait for the peer's delayed ACK (~40 ms on Linux)."""
    _, folders, _ = consortium

    async def body(mpc: Any) -> list[int]:
        return [
            p.protocol.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            for p in mpc.parties
            if p.pid != mpc.pid
        ]

    contexts = _load(folders) if tls else [None, None, None]
    results = asyncio.run(_session(contexts, {p: body for p in range(3)}))
    assert all(flag for flags in results for flag in flags) and len(results) == 3, results


def test_a_link_stays_when_the_port_closes_before_its_accept_resumes(
    consortium, monkeypatch
) -> None:
    """The port closes once every earlier party has joined, which may happen before the task
    that accepted a link has resumed from the handshake: the link must stay up (here each
    accepting task resumes 0.2 s late)."""
    _, folders, _ = consortium
    accept = asyncio.BaseEventLoop.connect_accepted_socket

    async def late(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = await accept(self, *args, **kwargs)
        await asyncio.sleep(0.2)
        return out

    monkeypatch.setattr(asyncio.BaseEventLoop, "connect_accepted_socket", late)

    async def body(mpc: Any) -> str:
        await agree_session(mpc, "session-1", OWNERS)
        return "ok"

    assert asyncio.run(_session(_load(folders), {p: body for p in range(3)})) == ["ok"] * 3


def test_another_session_id_is_named(consortium) -> None:
    _, folders, _ = consortium

    def body(sid: str) -> Body:
        return lambda mpc: agree_session(mpc, sid, OWNERS)

    bodies = {0: body("s1"), 1: body("s1"), 2: body("s2")}
    results = asyncio.run(_session(_load(folders), bodies))
    assert [str(r) for r in results[:2]] == [
        "party telco joined the MPC link for another session"
    ] * 2
    assert str(results[2]) == "party bank, bureau joined the MPC link for another session"


def test_crafted_pickle_instead_of_a_session_id(consortium, tmp_path: Path) -> None:
    _, folders, _ = consortium
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(Marker(str(marker)))

    async def attacker(mpc: Any) -> None:
        await broadcast(mpc, crafted, range(3))  # the label agree_session uses

    def honest(mpc: Any) -> Awaitable[None]:
        return agree_session(mpc, "s1", OWNERS)

    bodies = {0: honest, 1: honest, 2: attacker}
    results = asyncio.run(_session(_load(folders), bodies, expect_failures=[0, 1]))
    assert [str(r) for r in results[:2]] == [
        "party telco joined the MPC link for another session"
    ] * 2
    assert not marker.exists()
    pickle.loads(crafted)  # the payload is live: loading it does run its code
    assert marker.is_dir()


@pytest.mark.parametrize(
    "payload, reason",
    [
        (None, "not UTF-8"),  # replaced by the pickle below
        (encode_ids(["a"] * 4), "4 ids, more than 3"),
        (b"\x01\x00\x00\x00\x01\x01" + b"x" * 257, "too long or truncated"),
        (b"\x01\x00\x00\x00\x02\x00\xff\xfe", "not UTF-8"),
        (encode_ids(["a"]) + b"!", "trailing bytes"),
        (b"\x01\x00", "shorter than a count"),
    ],
)
def test_malformed_id_lists_name_the_sender(consortium, tmp_path: Path, payload, reason) -> None:
    _, folders, _ = consortium
    marker = tmp_path / "pwned"
    if payload is None:
        payload = b"\x01\x00\x00\x00\x02\x00\x80\x80" + pickle.dumps(Marker(str(marker)))

    async def sender(mpc: Any) -> None:
        await broadcast(mpc, payload, [0])

    def receiver(mpc: Any) -> Awaitable[list[str]]:
        return share_ids(mpc, 0, None, 3, "bank")

    bodies = {0: sender, 1: receiver, 2: receiver}
    results = asyncio.run(_session(_load(folders), bodies, expect_failures=[1, 2]))
    for r in results[1:]:
        assert isinstance(r, SessionError)
        assert str(r).startswith("party bank sent a malformed list of applicant ids"), r
        assert reason in str(r)
    assert not marker.exists()


def test_id_codec_round_trip_and_limits() -> None:
    ids = ["x" * 256, "", "ä"]
    assert decode_ids(encode_ids(ids), 3) == ids
    with pytest.raises(ValueError):
        encode_ids(["x" * 257])
    with pytest.raises(ValueError):
        decode_ids(encode_ids(ids), 2)


async def _impostor_at(folders: Sequence[Path], target: int) -> BaseException | None:
    """Honest bureau and telco; an attacker with telco's certificate connects to `target`
    announcing party 0 (bank), the way MPyC's own client does. The target's outcome."""
    addresses = [("127.0.0.1", p) for p in free_ports(3)]
    contexts = _load(folders)

    async def honest(pid: int) -> None:
        mpc = make_runtime(pid, addresses)
        await connect_runtime(mpc, "127.0.0.1", contexts[pid], names=OWNERS)

    tasks = {pid: asyncio.ensure_future(honest(pid)) for pid in (1, 2)}
    await connect_as(0, target, addresses, TlsContexts.load(folders[2], 2))
    await asyncio.wait_for(asyncio.wait([tasks[target]]), 30)
    for t in tasks.values():
        t.cancel()
    await asyncio.wait(tasks.values())
    return tasks[target].exception()


@pytest.mark.parametrize("target", [1, 2])
def test_client_with_another_partys_certificate_is_refused(consortium, target: int) -> None:
    """Telco's certificate claiming bank (pid 0) is refused by bureau and by telco."""
    _, folders, _ = consortium
    error = asyncio.run(_impostor_at(folders, target))
    assert isinstance(error, SessionError)
    assert str(error) == "a peer claiming to be party bank presented the certificate of party telco"


async def _impostor_server(folders: Sequence[Path]) -> BaseException | None:
    """An attacker with telco's certificate listens as bureau (pid 1); honest bank connects."""
    from mpyc import asyncoro

    addresses = [("127.0.0.1", p) for p in free_ports(3)]
    fake = make_runtime(1, addresses)
    fake._loop = asyncio.get_running_loop()
    stolen = TlsContexts.load(folders[2], 2)
    server = await fake._loop.create_server(
        lambda: asyncoro.MessageExchanger(fake), *addresses[1], ssl=stolen.server
    )
    bank = make_runtime(0, addresses)
    try:
        await connect_runtime(bank, "127.0.0.1", TlsContexts.load(folders[0], 0), names=OWNERS)
    except SessionError as exc:
        return exc
    finally:
        server.close()
    return None


def test_server_with_another_partys_certificate_is_refused(consortium) -> None:
    """Telco's certificate listening as bureau (pid 1) is refused by bank, which connects."""
    _, folders, _ = consortium
    error = asyncio.run(_impostor_server(folders))
    assert str(error).startswith("party bureau's MPC certificate was refused: Hostname mismatch")


def _crl(ca: pki.Authority, revoked: Sequence[x509.Certificate]) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(days=1))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - dt.timedelta(minutes=1))
            .build()
        )
    from cryptography.hazmat.primitives import serialization

    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("pid", [0, 1])
def test_revoked_party_is_refused(consortium, pid: int) -> None:
    """Bank and bureau (each on its own: one refusal closes the refusing party's other links)
    refuse telco's revoked certificate."""
    ca, folders, certs = consortium
    contexts = _load(folders)  # loaded before the revocation: `refresh` reads the new CRL
    for f in folders:
        (f / ".config" / CRL_FILE).write_bytes(_crl(ca, [certs[2]]))
    result = asyncio.run(_session(contexts, expect_failures=[pid], present=[pid, 2]))[0]
    assert isinstance(result, SessionError)
    assert str(result) == "party telco's MPC certificate was refused: certificate revoked"


def test_crl_without_revocations_lets_everyone_in(consortium) -> None:
    ca, folders, _ = consortium
    for f in folders:
        (f / ".config" / CRL_FILE).write_bytes(_crl(ca, []))
    assert asyncio.run(_session(_load(folders))) == [None, None, None]


def test_revoked_client_learns_it(consortium) -> None:
    """Bank's revoked certificate: bureau and telco refuse its handshake, and bank (which with
    TLS 1.3 completes its side first) fails when no hello comes back."""
    ca, folders, certs = consortium
    for f in folders:
        (f / ".config" / CRL_FILE).write_bytes(_crl(ca, [certs[0]]))
    error = asyncio.run(_session(_load(folders), expect_failures=[0]))[0]
    assert isinstance(error, SessionError)
    assert "closed the MPC link while connecting" in str(error), error


def test_bad_crl_files_are_refused_at_load(consortium, tmp_path: Path) -> None:
    _, folders, certs = consortium
    crl = folders[0] / ".config" / CRL_FILE
    crl.write_text("not a CRL")
    with pytest.raises(UsageError, match="not a PEM certificate revocation list"):
        TlsContexts.load(folders[0], 0)
    crl.write_bytes(_crl(pki.new_authority("another CA"), [certs[1]]))
    with pytest.raises(UsageError, match="not signed by the MPC CA"):
        TlsContexts.load(folders[0], 0)
    crl.unlink()
    with pytest.raises(UsageError, match="does not name MPyC party 1"):
        TlsContexts.load(_as_pid(folders[0], 1), 1)


def _as_pid(folder: Path, pid: int) -> Path:
    """A copy of party 0's files named as party `pid`'s (a certificate that lies)."""
    conf = folder / ".config"
    for ext in ("crt", "key"):
        (conf / f"party_{pid}.{ext}").write_bytes((conf / f"party_0.{ext}").read_bytes())
    return folder


def test_no_unpickling_once_connected(tmp_path: Path) -> None:
    import mpyc.runtime

    mpc = make_runtime(0, [("127.0.0.1", p) for p in (1, 2, 3)], ssl=False)
    forbid_pickle(mpc)
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="not a share message"):
        mpyc.runtime.pickle.loads(pickle.dumps(Marker(str(marker))))
    assert not marker.exists()


class _Transport:
    """The side of a socket a link sees, for feeding it bytes by hand."""

    def __init__(self) -> None:
        self.aborted = False

    def get_extra_info(self, name: str) -> None:
        return None

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


async def _fed(chunks: Sequence[bytes], limits: Any = None) -> tuple[Any, _Transport]:
    """Party 1 of 3 (no TLS, its links held to `limits`) accepting a link and receiving
    `chunks`; its runtime, transport."""
    mpc = make_runtime(1, [("127.0.0.1", p) for p in (1, 2, 3)], ssl=False)
    loop = mpc._loop = asyncio.get_running_loop()
    mpc._mpc_credit_names = OWNERS
    mpc._mpc_credit_limits = limits
    mpc._mpc_credit_failed = loop.create_future()
    for peer in mpc.parties:
        peer.protocol = loop.create_future() if peer.pid == mpc.pid else None
    link, transport = CheckedLink(mpc, tls=False), _Transport()
    link.connection_made(transport)
    for chunk in chunks:
        link.data_received(chunk)
    return mpc, transport


def test_a_hello_split_into_single_bytes_is_accepted() -> None:
    hello = (0).to_bytes(2, "little") + b"\xff" * 16  # bank's pid and its PRSS key
    message = struct.pack("<qI", 7, 3) + b"abc"
    mpc, transport = asyncio.run(_fed([bytes([b]) for b in hello + message]))
    assert not transport.aborted and not mpc._mpc_credit_failed.done()
    assert mpc.parties[0].protocol.buffers == {7: b"abc"}


@pytest.mark.parametrize(
    "chunks, reason",
    [
        ([(1).to_bytes(2, "little")], "a peer announced party id 1, which does not connect"),
        ([(9).to_bytes(2, "little")], "a peer announced party id 9"),
        (
            [(0).to_bytes(2, "little") + bytes(16), struct.pack("<qI", 7, MAX_MESSAGE + 1)],
            f"party bank sent an MPC message over {MAX_MESSAGE} bytes",
        ),
    ],
)
def test_bad_announcements_and_oversized_messages_drop_the_link(chunks, reason) -> None:
    mpc, transport = asyncio.run(_fed(chunks))
    assert transport.aborted
    assert reason in str(mpc._mpc_credit_failed.exception())


def test_a_peer_sending_far_ahead_of_what_was_asked_drops_the_link(monkeypatch) -> None:
    """Unclaimed messages are bounded in total (MAX_UNCLAIMED), not only one by one."""
    import mpc_credit.engine.links as links

    monkeypatch.setattr(links, "MAX_UNCLAIMED", 1200)
    monkeypatch.setattr(links, "MESSAGE_FLOOR", 0)
    hello = (0).to_bytes(2, "little") + bytes(16)
    ahead = [struct.pack("<qI", pc, 288) + bytes(288) for pc in range(10, 14)]
    mpc, transport = asyncio.run(_fed([hello, *ahead[:3]]))
    assert not transport.aborted  # 3 x 333 bytes ahead (payload objects, headers): within
    mpc, transport = asyncio.run(_fed([hello, *ahead]))
    assert transport.aborted
    assert "sent over 1200 bytes nobody asked for" in str(mpc._mpc_credit_failed.exception())
    assert MAX_UNCLAIMED >= 2 * MAX_MESSAGE  # a legitimate message always fits


def test_empty_messages_count_at_the_floor(monkeypatch) -> None:
    """An empty message ahead counts MESSAGE_FLOOR + 12 bytes: many tiny ones reach the cap;
    one the party asks for stops counting."""
    import mpc_credit.engine.links as links

    monkeypatch.setattr(links, "MAX_UNCLAIMED", 10_000)
    hello = (0).to_bytes(2, "little") + bytes(16)
    tiny = [struct.pack("<qI", pc, 0) for pc in range(10, 30)]
    floor = links.MESSAGE_FLOOR + 12
    within = 10_000 // floor
    mpc, transport = asyncio.run(_fed([hello, b"".join(tiny[:within])]))
    assert not transport.aborted
    link = mpc.parties[0].protocol
    assert link.unclaimed == within * floor
    assert link.receive(10) == b""
    assert link.unclaimed == (within - 1) * floor
    mpc, transport = asyncio.run(_fed([hello, b"".join(tiny)]))
    assert transport.aborted
    assert "nobody asked for" in str(mpc._mpc_credit_failed.exception())


HELLO = (0).to_bytes(2, "little") + bytes(16)  # bank's pid and its PRSS key


def test_a_session_bound_refuses_a_header_over_it() -> None:
    """A small session's links take messages up to SMALL_MESSAGE bytes: a header announcing
    one byte more drops the link before any payload arrives."""
    from mpc_credit.engine.links import SMALL_MESSAGE, LinkLimits

    limits = LinkLimits.for_session(0)
    assert (limits.message, limits.held) == (SMALL_MESSAGE, links.UNCLAIMED_FLOOR)
    mpc, transport = asyncio.run(_fed([HELLO, struct.pack("<qI", 7, SMALL_MESSAGE)], limits))
    assert not transport.aborted
    mpc, transport = asyncio.run(_fed([HELLO, struct.pack("<qI", 7, SMALL_MESSAGE + 1)], limits))
    assert transport.aborted
    assert f"an MPC message over {SMALL_MESSAGE} bytes" in str(mpc._mpc_credit_failed.exception())


def test_bytes_still_arriving_count_toward_the_cap() -> None:
    """What a peer makes a party hold is its unclaimed messages plus the message arriving."""
    from mpc_credit.engine.links import LinkLimits

    limits = LinkLimits(message=1 << 20, held=200_000)
    head = struct.pack("<qI", 7, 1 << 20)
    mpc, transport = asyncio.run(_fed([HELLO, head + bytes(150_000)], limits))
    assert not transport.aborted
    mpc, transport = asyncio.run(_fed([HELLO, head + bytes(150_000), bytes(100_000)], limits))
    assert transport.aborted
    assert "sent over 200000 bytes" in str(mpc._mpc_credit_failed.exception())


def test_a_large_payload_is_the_links_buffer_not_a_copy() -> None:
    """A payload of HANDOVER bytes or more is handed over as the buffer it arrived in; what
    follows it starts a new buffer; each counts what its object takes."""
    size = links.HANDOVER
    big = struct.pack("<qI", 7, size) + b"x" * size
    small = struct.pack("<qI", 8, 3) + b"abc"
    mpc, _ = asyncio.run(_fed([HELLO, big + small + b"\x09"]))
    link = mpc.parties[0].protocol
    assert isinstance(link.buffers[7], bytearray) and link.buffers[7] == b"x" * size
    assert link.buffers[8] == b"abc" and link.bytes == b"\x09"
    assert link.unclaimed == links.cost(link.buffers[7]) + links.cost(b"abc")
    assert link.buffers[7].__sizeof__() >= size


def test_teardown_drops_what_the_links_held() -> None:
    """An aborted runtime's links hold no payload and no partial message afterwards."""
    from mpc_credit.engine.links import teardown_runtime

    ahead = struct.pack("<qI", 7, 3) + b"abc" + struct.pack("<qI", 8, 100) + b"y"
    mpc, _ = asyncio.run(_fed([HELLO, ahead]))
    link = mpc.parties[0].protocol
    assert link.held() > 0
    teardown_runtime(mpc)
    assert link.buffers == {} and link.bytes == b"" and link.held() == link.bytes.__sizeof__()
    assert mpc.parties[0].protocol is not link  # a sink


def test_a_failure_kept_for_the_watchdog_holds_no_frames() -> None:
    """MPC_FAILURES keeps an MPyC coroutine's exception without its traceback (its frames
    would keep the session's payloads alive)."""
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        bare = links._bare(exc)
    assert bare.__traceback__ is None and bare.__cause__.__traceback__ is None


def test_a_small_session_is_held_to_the_floors() -> None:
    """A single-applicant decision: its links take messages of at most SMALL_MESSAGE bytes
    and hold at most UNCLAIMED_FLOOR per peer; a large batch gets more, below the ceilings."""
    from mpc_credit.engine.session import SessionSpec, session_limits
    from mpc_credit.scorecard.model import load_model
    from tests.conftest import MODEL

    model = load_model(MODEL)
    mpc = make_runtime(0, [("127.0.0.1", 1)] * 3, ssl=False)
    spec = SessionSpec("s", OWNERS[0], OWNERS, "secret", "reasons", OWNERS[0], model.owners[0])
    one = session_limits(mpc, spec, model, 1)
    assert (one.message, one.held) == (links.SMALL_MESSAGE, links.UNCLAIMED_FLOOR)
    many = session_limits(mpc, spec, model, 1_000_000)
    assert one.message < many.message <= MAX_MESSAGE and many.held <= MAX_UNCLAIMED


def test_a_connection_that_announced_its_party_frees_its_slot() -> None:
    """Party 2 expects bank and bureau from one host: once bank's connection has announced
    itself, bureau's may start even before the task that accepted bank's resumes (it looks
    every 50 ms): over plain TCP on loopback the two arrive that close together."""
    from types import SimpleNamespace as Ns

    parties = [Ns(protocol=None), Ns(protocol=None), Ns(protocol=None)]
    listener = object.__new__(links._Listener)
    listener.mpc = Ns(parties=parties)
    listener.expected = {0: {"127.0.0.1"}, 1: {"127.0.0.1"}}
    bank, other = object(), object()
    listener.pending = {bank: "127.0.0.1"}
    listener.links = {bank: Ns(peer_pid=None)}
    assert listener._room("127.0.0.1")  # bank pending, bureau's slot free
    listener.pending[other] = "127.0.0.1"
    assert not listener._room("127.0.0.1")  # both slots taken by pending connections
    parties[0].protocol = listener.links[bank] = Ns(peer_pid=0)  # bank announced
    del listener.pending[other]
    assert listener._room("127.0.0.1")  # bank's task has not resumed yet: bureau may start


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the other end closes the connection within `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except (asyncio.TimeoutError, ConnectionError):
        return False


def test_the_mpc_port_admits_one_pending_connection_per_expected_peer(monkeypatch) -> None:
    """Party 1 (no TLS) expects bank from 127.0.0.1: a connection from 127.0.0.2 and a second
    one from 127.0.0.1 are closed at once; the first waits for its announcement until the
    deadline, then is closed too; once closed, the port is gone."""
    import mpc_credit.engine.links as links

    monkeypatch.setattr(links, "HANDSHAKE_TIMEOUT", 1.0)
    ports = free_ports(2)

    async def go() -> None:
        mpc = make_runtime(1, [("127.0.0.1", p) for p in ports], ssl=False)
        loop = mpc._loop = asyncio.get_running_loop()
        mpc._mpc_credit_names = OWNERS[:2]
        mpc._mpc_credit_failed = loop.create_future()
        for peer in mpc.parties:
            peer.protocol = loop.create_future() if peer.pid == mpc.pid else None
        listener = links._Listener(mpc, "127.0.0.1", None)
        await asyncio.sleep(0.1)  # the expected peers' addresses resolved
        try:
            first, w1 = await asyncio.open_connection("127.0.0.1", ports[1])
            await asyncio.sleep(0.1)
            second, w2 = await asyncio.open_connection("127.0.0.1", ports[1])
            stranger, w3 = await asyncio.open_connection(
                "127.0.0.1", ports[1], local_addr=("127.0.0.2", 0)
            )
            writers = [w1, w2, w3]  # a writer collected closes its connection
            assert await _closed(second, 0.5)
            assert await _closed(stranger, 0.5)
            assert not await _closed(first, 0.3)  # pending: bank's slot
            assert await _closed(first, 2.0)  # no announcement by the deadline
            assert not mpc._mpc_credit_failed.done()  # a silent stranger fails no session
            for w in writers:
                w.close()
        finally:
            listener.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", ports[1])

    asyncio.run(go())
