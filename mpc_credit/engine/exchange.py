"""Public data the parties of a session exchange over their MPC links, as plain bytes.

Contract (callers rely on it): `agree_session(mpc, sid, parties)` returns when every peer
names the same session id and raises SessionError naming the parties that do not;
`deliver(mpc, sender, payloads)` gives each other party only the bytes meant for it;
`share_ids(mpc, sender, ids, max_count, sender_name)` sends the sender's id list to every
party and returns it everywhere, a list of at most `max_count` strings of at most 256 UTF-8
bytes each, or raises SessionError naming the sender.

Nothing a peer sends is ever unpickled. MPyC's `transfer` (and its shutdown barrier, which uses
it) pickles, and its secure-array protocols pickle numpy arrays of shares; `forbid_pickle` puts
a strict integer-array codec (engine/sharewire.py) where MPyC calls pickle, so `transfer`
refuses and shares travel as numbers, and replaces the shutdown barrier by `shutdown_runtime`.
Messages here are MPyC messages (a label, a length, the payload) carrying bytes we parse.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mpc_credit.engine import sharewire
from mpc_credit.errors import SessionError

MAX_ID_BYTES = 256
MAX_SID_BYTES = 256
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<H")


def _label(mpc: Any) -> int:
    """A fresh message label, the same at every party (as an MPyC coroutine would get)."""
    from mpyc import asyncoro

    mpc._program_counter[0] += 1
    return int(asyncoro._hop(mpc._program_counter))


async def broadcast(mpc: Any, data: bytes | None, senders: Iterable[int]) -> dict[int, bytes]:
    """Each sender's bytes at every party (senders pass `data`, others None), raw on the links."""
    senders = list(senders)
    pc = _label(mpc)
    if mpc.pid in senders:
        assert data is not None
        for peer in mpc.parties:
            if peer.pid != mpc.pid:
                peer.protocol.send(pc, data)
    # ask for every message before awaiting any: a peer that is done closes its link
    pending = {s: mpc.parties[s].protocol.receive(pc) for s in senders if s != mpc.pid}
    got = {}
    for s in senders:
        if s == mpc.pid:
            got[s] = bytes(data or b"")
            continue
        payload = pending[s]
        got[s] = bytes(await payload if isinstance(payload, asyncio.Future) else payload)
    return got


async def agree_session(mpc: Any, sid: str, parties: Sequence[str]) -> None:
    """Every party sends its session id to every other; all must equal `sid`."""
    own = sid.encode()
    if len(own) > MAX_SID_BYTES:
        raise SessionError(f"session id over {MAX_SID_BYTES} bytes")
    got = await broadcast(mpc, own, range(len(mpc.parties)))
    bad = [parties[i] for i, x in sorted(got.items()) if x != own]
    if bad:
        raise SessionError(f"party {', '.join(bad)} joined the MPC link for another session")


def id_list_size(count: int) -> int:
    """The largest `encode_ids` of `count` ids."""
    return _COUNT.size + count * (_LENGTH.size + MAX_ID_BYTES)


def encode_ids(ids: Sequence[str]) -> bytes:
    """A count, then each id as a 2-byte length and its UTF-8 bytes."""
    parts = [_COUNT.pack(len(ids))]
    for a in ids:
        b = a.encode()
        if len(b) > MAX_ID_BYTES:
            raise ValueError(f"an id is over {MAX_ID_BYTES} bytes")
        parts += [_LENGTH.pack(len(b)), b]
    return b"".join(parts)


def decode_ids(data: bytes, max_count: int) -> list[str]:
    """The ids of `encode_ids`; ValueError unless the bytes are exactly such a list."""
    if len(data) < _COUNT.size:
        raise ValueError("shorter than a count")
    (count,) = _COUNT.unpack_from(data)
    if count > max_count:
        raise ValueError(f"{count} ids, more than {max_count}")
    ids, at = [], _COUNT.size
    for _ in range(count):
        if at + _LENGTH.size > len(data):
            raise ValueError("truncated")
        (n,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if n > MAX_ID_BYTES or at + n > len(data):
            raise ValueError("an id is too long or truncated")
        ids.append(data[at : at + n].decode("utf-8", errors="strict"))
        at += n
    if at != len(data):
        raise ValueError("trailing bytes")
    return ids


async def share_ids(
    mpc: Any, sender: int, ids: Sequence[str] | None, max_count: int, sender_name: str
) -> list[str]:
    """The sender's applicant ids at every party (the sender passes them, others None)."""
    data = None
    if mpc.pid == sender:
        assert ids is not None
        try:
            data = encode_ids(ids)
        except ValueError as exc:
            raise SessionError(f"party {sender_name}: {exc}") from None
    got = (await broadcast(mpc, data, [sender]))[sender]
    try:
        return decode_ids(got, max_count)
    except ValueError as exc:  # UnicodeDecodeError included
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise SessionError(
            f"party {sender_name} sent a malformed list of applicant ids ({reason})"
        ) from None


async def deliver(mpc: Any, sender: int, payloads: Mapping[int, bytes] | None) -> bytes:
    """Point to point from `sender`: each other party receives only its own payload (the
    sender passes every peer's, pid -> bytes; the others None) and the sender gets b"".
    One label for all: each link carries one message, read by nobody but its receiver."""
    pc = _label(mpc)
    if mpc.pid == sender:
        assert payloads is not None
        for peer in mpc.parties:
            if peer.pid != mpc.pid:
                peer.protocol.send(pc, payloads.get(peer.pid, b""))
        return b""
    payload = mpc.parties[sender].protocol.receive(pc)
    return bytes(await payload if isinstance(payload, asyncio.Future) else payload)


async def shutdown_runtime(mpc: Any) -> None:
    """MPyC's `Runtime.shutdown` with a barrier of empty messages instead of a pickled one."""
    while mpc._pc_level > mpc._program_counter[1]:
        await asyncio.sleep(0)
    if len(mpc.parties) == 1:
        return
    await broadcast(mpc, b"", range(len(mpc.parties)))
    mpc.parties[mpc.pid].protocol = asyncio.get_running_loop().create_future()
    for peer in mpc.parties[mpc.pid + 1 :]:
        peer.protocol.close_connection()
    await mpc.parties[mpc.pid].protocol


def forbid_pickle(mpc: Any) -> None:
    """Make a runtime send its share arrays as plain numbers (engine/sharewire.py), close with
    a barrier of empty messages, and never unpickle what a peer sends."""
    sharewire.install()
    mpc.shutdown = functools.partial(shutdown_runtime, mpc)
