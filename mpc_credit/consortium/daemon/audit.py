"""The party's audit log: one JSON line per session, accepted or refused.

`AuditLog.append` writes a record (file mode 0600, append only); `history` reads them back
so that a restarted daemon remembers recent nonces and the requesters' daily budgets
(`restore`): a restart opens no replay window and resets no budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mpc_credit.consortium.audit import session_record as request_facts
from mpc_credit.consortium.messages import Request
from mpc_credit.consortium.policy import DAY, NonceCache, QueryLedger


class AuditLog:
    """Append-only JSON lines in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(dict(record), separators=(",", ":")) + "\n")

    def history(self) -> Iterator[dict[str, Any]]:
        """The records written so far, oldest first; unreadable lines are skipped."""
        try:
            fh = self.path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        with fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    yield rec


def session_record(
    party: str, req: Request, outcome: str, reason: str = "", **fields: Any
) -> dict[str, Any]:
    """This party's record of a session: the request's facts (`ids` only when the request
    listed them), never a feature value or a result."""
    record = request_facts(req, outcome, reason, **fields)
    return {"ts": time.time(), "party": party, "ids": None, **record}


def restore(
    records: Iterable[Mapping[str, Any]],
    nonces: NonceCache,
    ledger: QueryLedger,
    window: float,
    now: float | None = None,
) -> None:
    """Recent nonces, and the sessions of the last day charged to their requesters."""
    now = time.time() if now is None else now
    horizon = now - 2 * window - 60
    for rec in records:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ts = float(rec["request_ts"])
            if rec.get("nonce") and ts >= horizon:
                nonces.add(str(rec["nonce"]), ts)
            if rec.get("outcome") in ("done", "aborted") and ts > now - DAY:
                ledger.add(str(rec["requester"]), ts, int(rec["count"]))
