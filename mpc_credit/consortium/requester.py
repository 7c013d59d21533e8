"""The requesting side of a session: what `mpc-credit score` does.

The CLI runs on the receiver's machine with the receiver's configuration. It signs the
request with the party's Ed25519 key and hands it, with the id list, to its own party
daemon over the local control socket (mode 0600). The daemon publishes the request on
the broker, runs the session with the other daemons (it is the receiver's MPC party,
already warm), and writes progress lines and finally the result back on the socket.

Why this way and not the CLI as the receiver's MPC party: the daemon has its model,
CSV and TLS contexts loaded and its broker connection open, so a request costs no
Python start-up of an MPC process and no reloading; and the result crosses only the
local socket, never the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.messages import new_request
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.errors import RefusedError, SessionError, TimedOutError, UsageError


@dataclass
class ScoreOutcome:
    """The receiver's result for one request."""

    session: str
    columns: list[str]
    rows: list[list[str]]
    seconds: float  # end to end, as the CLI saw it

    def as_dicts(self) -> list[dict[str, object]]:
        """The rows as JSON records (`score` an integer, `pd` a number)."""
        from mpc_credit.scorecard.reveal import json_record

        return [json_record(self.columns, r) for r in self.rows]


def _raise(kind: str, message: str) -> None:
    if kind == "refused":
        raise RefusedError(message)
    if kind == "timeout":
        raise TimedOutError(message)
    if kind == "input":
        raise UsageError(message)
    raise SessionError(message)


async def score_request(
    config: str | Path,
    ids: Sequence[str],
    *,
    reveal: str = "score",
    mode: str = "shared",
    model_id: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
    tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> ScoreOutcome:
    """Sign and submit a request for `ids` through this party's daemon; return the result.

    Raises RefusedError, TimedOutError or SessionError (one line naming the party), or
    UsageError for bad input. `tamper` (tests only) may rewrite the signed request.
    """
    t0 = time.perf_counter()
    if not ids:
        raise UsageError("no applicant ids given")
    if len(set(ids)) != len(ids):
        raise UsageError("an applicant id is listed twice")
    cfg = load_party_config(config)
    cons = load_consortium(cfg.consortium_file)
    if model_id is None:
        if len(cons.models) != 1:
            raise UsageError(f"{cfg.consortium_file}: several models; name one with --model-id")
        info = cons.models[0]
    else:
        info = cons.model(model_id)
        if info is None:
            raise UsageError(f"model {model_id!r} is not registered in {cfg.consortium_file}")
    key = load_signing_key(cfg.signing_key)
    req = new_request(
        key,
        requester=cfg.party,
        model_id=info.id,
        model_digest=info.digest,
        mode=mode,
        reveal=reveal,
        ids=list(ids),
        timeout=timeout,
    )
    body = req.body()
    if tamper is not None:
        body = tamper(body)
    try:
        reader, writer = await asyncio.open_unix_connection(str(cfg.control_socket), limit=2**28)
    except (FileNotFoundError, ConnectionRefusedError):
        raise SessionError(
            f"party {cfg.party}'s daemon is not running (no control socket {cfg.control_socket}); "
            f"start it with: mpc-credit party run --config {config}"
        ) from None
    try:
        msg = {"op": "score", "request": body, "ids": None if req.ids is not None else list(ids)}
        writer.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
        await writer.drain()
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout + 10)
            except asyncio.TimeoutError:
                raise TimedOutError(f"no answer from party {cfg.party}'s daemon") from None
            if not line:
                raise SessionError(f"party {cfg.party}'s daemon closed the connection")
            ev = json.loads(line)
            if ev.get("event") == "progress":
                if progress is not None:
                    progress(str(ev.get("message", "")))
            elif ev.get("event") == "result":
                return ScoreOutcome(
                    str(ev.get("session")),
                    list(ev["columns"]),
                    [list(r) for r in ev["rows"]],
                    time.perf_counter() - t0,
                )
            elif ev.get("event") == "error":
                _raise(str(ev.get("kind")), str(ev.get("message")))
    finally:
        writer.close()


async def daemon_status(config: str | Path) -> dict[str, Any]:
    """The local daemon's state (connected, presence of the others, queue)."""
    cfg = load_party_config(config)
    try:
        reader, writer = await asyncio.open_unix_connection(str(cfg.control_socket))
    except (FileNotFoundError, ConnectionRefusedError):
        raise SessionError(f"party {cfg.party}'s daemon is not running") from None
    try:
        writer.write(b'{"op":"status"}\n')
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        return dict(json.loads(line))
    finally:
        writer.close()
