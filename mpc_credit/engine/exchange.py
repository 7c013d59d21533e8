"""Public data the parties of a session exchange over their MPC links before the computation.

Contract (callers rely on it): `agree_session(mpc, sid, parties)` returns when every peer
names the same session id and raises SessionError naming the parties that do not;
`share_ids(mpc, sender, ids, max_count)` sends the sender's id list to every party and returns
it everywhere, a list of at most `max_count` strings, or raises SessionError naming the sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mpc_credit.errors import SessionError


async def agree_session(mpc: Any, sid: str, parties: Sequence[str]) -> None:
    """Every party sends its session id to every other; all must equal `sid`."""
    sids = await mpc.transfer(sid)
    bad = [parties[i] for i, x in enumerate(sids) if x != sid]
    if bad:
        raise SessionError(f"party {', '.join(bad)} joined the MPC link for another session")


async def share_ids(
    mpc: Any, sender: int, ids: Sequence[str] | None, max_count: int, sender_name: str
) -> list[str]:
    """The sender's applicant ids at every party (the sender passes them, others None)."""
    got = await mpc.transfer(list(ids) if mpc.pid == sender else None, senders=sender)
    if (
        not isinstance(got, list)
        or len(got) > max_count
        or not all(isinstance(a, str) for a in got)
    ):
        raise SessionError(f"party {sender_name} sent a malformed list of applicant ids")
    return got
