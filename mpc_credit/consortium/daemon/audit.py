"""The daemon's audit trail: what it writes to its tamper-evident log, when, and how much.

Over `mpc_credit.consortium.audit.AuditLog` (signed, hash-chained JSON lines, fsync):

- `accepted` is written and on disk BEFORE the session is acknowledged and runs (write-ahead;
  a training session's line holds its epsilon and `dp` (false without DP), charged or
  recorded in the party's privacy ledger just before the line is written, so no crash loses
  a charge):
  a crash loses neither its nonce nor its budget entry; when it cannot be written (AuditError,
  a full disk), or the disk lacks the room to record the session to its end (its batch's
  ids and its end line, `room_needed`), the caller refuses the session rather than run it
  unaudited or lose its end line;
- `applicants` records a batch's ids once they arrived over the MPC links, before the
  computation, in lines of bounded size, so a restart keeps the per-applicant counts;
- `refused` (a request with a valid signature, at most REFUSED_BURST a minute per requester;
  its ids summarized as their count and SHA-256, never listed) and `ended` (done or aborted,
  with the audit heads the other parties reported in the session: `heads`) are written too;
  their failures are only logged;
- `rejected` is a bounded summary (size, SHA-256, the reason) of a payload that failed parsing
  or its signature check, never its bytes, and at most `REJECTED_BURST` such lines a minute
  per topic kind: a flood costs the log a few lines, and the next one says how many were not
  recorded.

`restore` rebuilds the nonces and the ledger from the log (mpc_credit.consortium.ledger).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.audit import (
    AuditError,
    AuditLog,
    publish_record,
    read_records,
    rejected_record,
    session_record,
    train_record,
)
from mpc_credit.consortium.ledger import APPLICANTS, NonceCache, QueryLedger, restore
from mpc_credit.consortium.messages import Request
from mpc_credit.consortium.publish_request import AnyRequest, PublishRequest
from mpc_credit.consortium.train_request import TrainRequest

log = logging.getLogger("mpc_credit.daemon")
REJECTED_BURST = 20  # rejected-payload lines per topic kind and minute, at most
REFUSED_BURST = 60  # refused-request lines per requester and minute, at most
APPLICANT_LINE = 64 * 1024  # bytes of ids in one `applicants` line, about
END_ROOM = 16 * 1024  # bytes kept free at acceptance for the session's end line
ID_ROOM = 32  # bytes of `applicants` line per batch id, about (an id, quotes, a comma)


class Throttle:
    """At most `burst` events per key in each `period` seconds; the others are counted."""

    def __init__(self, period: float, burst: int = 1) -> None:
        self.period, self.burst = period, burst
        self._window: dict[str, tuple[float, int, int]] = {}  # key: (start, emitted, held)

    def allow(self, key: str, now: float | None = None) -> int | None:
        """None to hold this event back, else how many were held back before it."""
        now = time.monotonic() if now is None else now
        start, emitted, held = self._window.get(key, (now, 0, 0))
        if now - start >= self.period:
            start, emitted = now, 0
        if emitted >= self.burst:
            self._window[key] = (start, emitted, held + 1)
            return None
        self._window[key] = (start, emitted + 1, 0)
        return held


class DaemonAudit:
    """One party's audit trail as its daemon writes it."""

    def __init__(self, path: Path, party: str, key: Ed25519PrivateKey) -> None:
        self.path = path
        self.log = AuditLog(path, party, key)  # AuditError: a cut-off or foreign tail
        self._rejected = Throttle(60.0, REJECTED_BURST)
        self._refused = Throttle(60.0, REFUSED_BURST)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the log's last line: the head this party's status reports carry."""
        return self.log.head

    def restore(self, nonces: NonceCache, ledger: QueryLedger) -> None:
        """The nonces and budgets of the sessions this log recorded (after a restart)."""
        restore(read_records(self.path), nonces, ledger)

    def accepted(self, req: AnyRequest, port: int) -> None:
        """Write-ahead: on disk before the session runs; raises AuditError, also when the
        disk has not the room left to record the session to its end."""
        need = room_needed(req)
        try:
            st = os.statvfs(self.path.parent)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot see its free space: {exc.strerror}") from None
        if st.f_bavail * st.f_frsize < need:
            free = st.f_bavail * st.f_frsize
            raise AuditError(f"{self.path}: {free} bytes free, {need} needed for this session")
        self.log.append(request_facts(req, "accepted", port=port))

    def applicants(self, sid: str, ids: Sequence[str]) -> None:
        """A batch's ids, on disk before it is scored; raises AuditError."""
        chunks = _chunks(ids)
        for n, chunk in enumerate(chunks, 1):
            record = {"outcome": APPLICANTS, "session": sid, "count": len(chunk), "ids": chunk}
            self.log.append(record, durable=n == len(chunks))

    def refused(self, req: AnyRequest, reason: str) -> bool:
        """A signed request refused: at most REFUSED_BURST lines a minute per requester
        (a replayed request must not fill the log); False when this one was not written."""
        held = self._refused.allow(req.requester)
        if held is None:
            return False
        if held:
            reason = f"{reason} ({held} more refusal(s) of {req.requester} not recorded)"
        self._quietly(request_facts(req, "refused", reason), durable=False)
        return True

    def ended(self, req: AnyRequest, outcome: str, reason: str = "", **fields: Any) -> None:
        """done or aborted; an error is logged (the session is over either way)."""
        self._quietly(request_facts(req, outcome, reason, **fields), durable=True)

    def rejected(self, topic: str, payload: bytes, kind: str, reason: str) -> None:
        """A bounded summary of a payload refused before its signature was verified."""
        held = self._rejected.allow(kind)
        if held is None:
            return
        if held:
            reason = f"{reason} ({held} more {kind} payload(s) before this one not recorded)"
        self._quietly(rejected_record(topic, payload, reason), durable=False)

    def _quietly(self, record: dict[str, Any], *, durable: bool) -> None:
        try:
            self.log.append(record, durable=durable)
        except AuditError as exc:
            log.error("audit: %s", exc)

    def close(self) -> None:
        self.log.close()


def request_facts(req: AnyRequest, outcome: str, reason: str = "", **fields: Any) -> dict[str, Any]:
    """The audit record of a scoring or a training request."""
    if isinstance(req, TrainRequest):
        return train_record(req, outcome, reason, **fields)
    if isinstance(req, PublishRequest):
        return publish_record(req, outcome, reason, **fields)
    return session_record(req, outcome, reason, **fields)


def room_needed(req: AnyRequest) -> int:
    """Bytes of audit lines a session may still write after `accepted`: its batch's ids
    (when they arrive over the MPC links rather than in the request) and its end line."""
    if not isinstance(req, Request):
        return END_ROOM
    return END_ROOM + (ID_ROOM * req.count if req.ids is None else 0)


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    """`ids` in runs of at most about APPLICANT_LINE bytes (an audit line stays bounded)."""
    chunks: list[list[str]] = [[]]
    size = 0
    for a in ids:
        if size + len(a) + 3 > APPLICANT_LINE and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(a)
        size += len(a) + 3
    return chunks
