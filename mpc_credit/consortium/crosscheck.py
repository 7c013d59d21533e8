"""Audit logs checked against each other: the heads each party recorded of the others.

A chain of signed lines cannot show its own tail cut off, nor a log its party re-signed from
scratch with its own key. So every signed status report carries its sender's audit head
(the seq and hash of its last line, `messages.status`), and each party records, in its own
`done` or `aborted` line of a session, the heads the others reported there (`heads`). A log
must hold, at every seq another party recorded of it, a line of exactly that hash:
`divergence` names the first recorded head it does not hold (a cut tail, or a rewrite).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.consortium.audit import iter_records, utc
from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.messages import audit_head


@dataclass(frozen=True)
class RecordedHead:
    """`party`'s audit head (seq, hash) as `by` recorded it in `session`, at `ts`."""

    party: str
    seq: int
    hash: str
    by: str
    session: str
    ts: float


def log_party(path: str | Path) -> str | None:
    """The party that wrote the log at `path` (its first line's), None for an empty log."""
    for record in iter_records(path):
        party = record.get("party")
        return party if isinstance(party, str) else None
    return None


def recorded_heads(path: str | Path, party: str) -> list[RecordedHead]:
    """Every head of `party` that the log at `path` recorded, lowest seq first."""
    found = []
    for r in iter_records(path):
        head = _head_of(r.get("heads"), party)
        if head is not None:
            by, session, ts = r.get("party"), r.get("session"), r.get("ts")
            found.append(RecordedHead(party, *head, str(by), str(session), _number(ts)))
    return sorted(found, key=lambda h: h.seq)


def _head_of(heads: Any, party: str) -> tuple[int, str] | None:
    """`heads[party]` when it is a well-formed head of seq >= 1 (seq 0, an empty log, says
    nothing)."""
    try:
        head = audit_head(heads.get(party) if isinstance(heads, Mapping) else None)
    except MessageError:
        return None
    return head if head[0] >= 1 else None


def _number(value: Any) -> float:
    return float(value) if type(value) in (int, float) else 0.0


def divergence(lines: int, hashes: Mapping[int, str], heads: Iterable[RecordedHead]) -> str:
    """The first recorded head a verified log of `lines` lines (`hashes`: seq -> hash of the
    recorded seqs) does not hold, in one line; "" when it holds them all."""
    for h in sorted(heads, key=lambda h: h.seq):
        if h.seq > lines:
            return (
                f"{h.party}'s log ends at entry {lines}, but {h.by} recorded entry {h.seq} "
                f"(session {h.session}, at {utc(h.ts)}): the tail was cut"
            )
        if hashes.get(h.seq) != h.hash:
            return (
                f"{h.party}'s entry {h.seq} differs from the head {h.by} recorded in session "
                f"{h.session} (at {utc(h.ts)}): the log was rewritten"
            )
    return ""
