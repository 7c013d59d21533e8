"""Public training messages over the MPC links: point-to-point bytes and broadcast JSON.

Every party calls each function in the same order (MPyC labels messages by a shared program
counter); only the named sender sends and only the named receiver(s) receive. Bytes are sent
raw on the links and never unpickled; JSON goes through the strict decoder (jsonwire.decode)
with a size limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mpc_credit.engine.exchange import _label, broadcast
from mpc_credit.engine.links import LinkClosedError
from mpc_credit.errors import SessionError
from mpc_credit.jsonwire import WireError, decode, encode

MAX_JSON = 4 * 1024 * 1024
OFF_LOOP = 64 * 1024  # bytes: larger peer JSON is decoded in a worker thread, off the event loop


async def send_to(mpc: Any, data: bytes | None, sender: int, receiver: int) -> bytes | None:
    """`data` from sender to receiver alone; the receiver gets it, everyone else None."""
    pc = _label(mpc)
    if sender == receiver:
        return data if mpc.pid == receiver else None
    if mpc.pid == sender:
        assert data is not None
        _link(mpc, receiver).send(pc, data)
    if mpc.pid != receiver:
        return None
    payload = _link(mpc, sender).receive(pc)
    return bytes(await payload if isinstance(payload, asyncio.Future) else payload)


def _link(mpc: Any, pid: int) -> Any:
    """The link to `pid`; a peer that has gone (it failed and closed its link) is a knock-on
    effect, reported as such so that the peer's own reason wins."""
    protocol = mpc.parties[pid].protocol
    if protocol is None or isinstance(protocol, asyncio.Future):
        raise LinkClosedError(f"party {pid} closed its MPC link")
    return protocol


def parse(data: bytes, what: str, sender: str) -> Any:
    """Strict JSON from a peer, or SessionError naming the sender and the message."""
    try:
        return decode(data, max_bytes=MAX_JSON, max_depth=6)
    except WireError as exc:
        raise SessionError(f"party {sender} sent a malformed {what} ({exc})") from None


async def publish(mpc: Any, value: Any, names: list[str], what: str) -> list[Any]:
    """Each party's public JSON value at every party, in pid order."""
    got = await broadcast(mpc, encode(value), range(len(mpc.parties)))
    pids = range(len(mpc.parties))
    if sum(len(got[pid]) for pid in pids) > OFF_LOOP:
        return await asyncio.to_thread(lambda: [parse(got[pid], what, names[pid]) for pid in pids])
    return [parse(got[pid], what, names[pid]) for pid in pids]
