"""The server's access log: one JSON line per call, naming the client, next to party.toml.

`serve-access.jsonl` (mode 0600) records who asked what and how it ended: time, client name
(the token's or the client certificate's), how it authenticated, method, route, status,
outcome, reveal policy, number of applicants, the daemon's session id and milliseconds. The
daemon's own audit log records the session under the requester party; the session id joins
the two, so together they say which client of the institution had which applicants scored.
Never an applicant id, a result or a token: those stay with the daemon's audit log and the
caller.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path
from typing import Any

from mpc_credit.jsonwire import encode

log = logging.getLogger("mpc_credit.api")


class AccessLog:
    """Appends records to a JSON-lines file; a write failure is logged, never raised."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._failed = False

    def write(self, **record: Any) -> None:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        line = encode({"ts": now.replace("+00:00", "Z"), **record}) + b"\n"
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.error("cannot write the access log %s: %s", self.path, exc.strerror)
            self._failed = True
