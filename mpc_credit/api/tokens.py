"""Who may call the API: named clients with hashed bearer tokens, in `serve-tokens.json`.

A separate file next to `party.toml` rather than a `[serve]` section in it: `party.toml` is the
daemon's, written by `pki init` and edited by hand, and Python reads TOML but does not write
it; this file is the server's alone, rewritten atomically by `mpc-credit serve token` (mode
0600) and re-read by a running server when it changes, so a client is added or rotated without
a restart.

    {"format": "mpc-credit/serve-tokens@1",
     "clients": [{"name": "origination", "sha256": HEX, "reveal": ["decision"],
                  "rate_per_minute": 600, "created": "2026-01-31T09:00:00Z"}]}

A token is 32 random bytes (URL-safe base64 after the prefix `mpcc_`), shown once; the file
keeps its SHA-256 only. A presented token is hashed and compared with every client's hash in
constant time (`hmac.compare_digest`, no early exit), so neither the file nor the timing of a
refusal tells anything about a valid token. With mutual TLS a client certificate's common name
names the client instead (its entry's reveal policies and rate limit apply).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.errors import UsageError
from mpc_credit.jsonwire import decode_object, encode
from mpc_credit.names import check_name as check_safe_name
from mpc_credit.vocabulary import REVEALS

log = logging.getLogger("mpc_credit.api")
FORMAT = "mpc-credit/serve-tokens@1"
PREFIX = "mpcc_"
CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
DEFAULT_RATE = 600  # calls per minute
MAX_RATE = 1_000_000
MAX_TOKEN_CHARS = 256  # a longer Authorization value is refused before it is hashed
MAX_CLIENTS = 10_000
MAX_FILE_BYTES = 4 << 20


@dataclass(frozen=True)
class ApiClient:
    """One client of the API: its name, what it may have revealed, how often it may call."""

    name: str
    sha256: str
    reveal: tuple[str, ...]
    rate_per_minute: int
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "reveal": list(self.reveal),
            "rate_per_minute": self.rate_per_minute,
            "created": self.created,
        }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    check_safe_name(name, "--name (a client name)", at=True)
    if not CLIENT_NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: a client name is 1 to 64 of A-Z a-z 0-9 _ . @ -")
    return name


def check_reveals(reveals: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(r.strip() for r in reveals if r.strip()))
    bad = [r for r in out if r not in REVEALS]
    if bad or not out:
        raise UsageError(f"--reveal: expected some of {', '.join(REVEALS)}, got {bad or 'none'}")
    return out


def read_clients(path: Path) -> tuple[ApiClient, ...]:
    """The clients in the token file; none when it does not exist; UsageError naming the file
    when it is not a valid token file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the token file: {exc.strerror}") from None
    try:
        d = decode_object(raw, max_bytes=MAX_FILE_BYTES, max_depth=4)
        if d.get("format") != FORMAT or set(d) != {"format", "clients"}:
            raise ValueError(f"expected {{'format': {FORMAT!r}, 'clients': [...]}}")
        items = d["clients"]
        if not isinstance(items, list) or len(items) > MAX_CLIENTS:
            raise ValueError(f"clients: expected a list of at most {MAX_CLIENTS}")
        clients = tuple(_client(c, i) for i, c in enumerate(items))
    except (ValueError, UsageError) as exc:  # WireError is a ValueError
        raise UsageError(f"{path}: invalid token file: {exc}") from None
    if len({c.name for c in clients}) != len(clients):
        raise UsageError(f"{path}: invalid token file: a client name is listed twice")
    return clients


def _client(c: Any, i: int) -> ApiClient:
    keys = {"name", "sha256", "reveal", "rate_per_minute", "created"}
    if not isinstance(c, dict) or set(c) != keys:
        raise ValueError(f"clients[{i}]: expected the fields {', '.join(sorted(keys))}")
    sha, rate = c["sha256"], c["rate_per_minute"]
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise ValueError(f"clients[{i}].sha256: expected 64 hex digits")
    if type(rate) is not int or not 1 <= rate <= MAX_RATE:
        raise ValueError(f"clients[{i}].rate_per_minute: expected 1 to {MAX_RATE}")
    if not isinstance(c["reveal"], list) or not all(isinstance(r, str) for r in c["reveal"]):
        raise ValueError(f"clients[{i}].reveal: expected a list of reveal policies")
    if not isinstance(c["name"], str) or not isinstance(c["created"], str):
        raise ValueError(f"clients[{i}]: name and created are strings")
    return ApiClient(
        check_name(c["name"]), sha, check_reveals(c["reveal"]), rate, c["created"][:40]
    )


def write_clients(path: Path, clients: Sequence[ApiClient]) -> None:
    """Write the token file atomically, mode 0600 from its first byte."""
    body = {"format": FORMAT, "clients": [c.to_dict() for c in clients]}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(encode(body) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_token(
    path: Path,
    name: str,
    reveal: Sequence[str],
    rate_per_minute: int = DEFAULT_RATE,
    *,
    rotate: bool = False,
) -> str:
    """Add client `name` (or with `rotate` give it a new token) and return its token, which
    is stored nowhere: only its hash is written."""
    check_name(name)
    reveals = check_reveals(reveal)
    if not 1 <= rate_per_minute <= MAX_RATE:
        raise UsageError(f"--rate: expected 1 to {MAX_RATE} calls per minute")
    clients = list(read_clients(path))
    known = [c for c in clients if c.name == name]
    if known and not rotate:
        raise UsageError(f"{path}: client {name!r} exists; --rotate gives it a new token")
    token = PREFIX + secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = ApiClient(name, token_hash(token), reveals, rate_per_minute, now)
    clients = [c for c in clients if c.name != name] + [entry]
    write_clients(path, clients)
    return token


class TokenStore:
    """The clients of a token file, re-read when the file changes (checked at most once a
    second); lookups by token (constant time) or by name (a client certificate's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clients: tuple[ApiClient, ...] = ()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -1.0
        self.refresh(force=True)

    def refresh(self, *, force: bool = False, now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        if not force and t - self._checked < 1.0:
            return
        self._checked = t
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if force or stamp != self._stamp:
            try:
                self.clients = read_clients(self.path)
            except UsageError as exc:
                if force:
                    raise
                log.error("%s; keeping the clients read before", exc)
            self._stamp = stamp  # a broken file is reported once, until it changes again

    def by_token(self, token: str) -> ApiClient | None:
        """The client whose token this is, None for any other string."""
        self.refresh()
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = token_hash(token).encode()
        found = None
        for c in self.clients:  # every entry, no early exit
            if hmac.compare_digest(digest, c.sha256.encode()):
                found = c
        return found

    def by_name(self, name: str) -> ApiClient | None:
        self.refresh()
        return next((c for c in self.clients if c.name == name), None)
