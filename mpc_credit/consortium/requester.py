"""The requesting side of a session: what `mpc-credit score` does.

The CLI runs on the receiver's machine with the receiver's `party.toml`, which it reads only
to find its daemon's control socket. It sends the daemon what to score (a `score` request of
`mpc_credit.consortium.control`: ids, reveal, mode, model_id, timeout); the daemon, which holds the
consortium, the models and the signing key, builds and signs the request, publishes it,
runs the session with the other daemons (it is the receiver's MPC party, already warm), and
writes progress lines and finally the typed result back on the socket.

The socket is a Unix socket of mode 0600; the client also checks that the daemon at the
other end runs as its own user (SO_PEERCRED), so no other account's process can pose as it.
The result crosses only that socket, never the broker.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_credit.consortium.config import PartyConfig, load_party_config
from mpc_credit.consortium.control import SCORE, STATUS, SUBMIT, ControlRequest
from mpc_credit.consortium.daemon.control import MAX_ANSWER_BYTES, peer_uid
from mpc_credit.consortium.messages import Request
from mpc_credit.errors import SessionError, TimedOutError, UsageError, error_of_kind
from mpc_credit.jsonwire import WireError, read_event
from mpc_credit.scorecard.reveal import Result, result_from_fields

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScoreOutcome:
    """The receiver's result for one request, typed until the CLI formats it."""

    session: str
    result: Result
    seconds: float  # end to end, as the client saw it

    @property
    def columns(self) -> list[str]:
        return self.result.header()

    @property
    def rows(self) -> list[list[str]]:
        return self.result.rows()


async def score_request(
    config: str | Path,
    ids: Sequence[str],
    *,
    reveal: str = "score",
    mode: str = "shared",
    model_id: str | None = None,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> ScoreOutcome:
    """Have this party's daemon request a score for `ids`; return the result.

    Raises RefusedError, TimedOutError or SessionError (one line naming the party), or
    UsageError for bad input.
    """
    if not ids:
        raise UsageError("no applicant ids given")
    if len(set(ids)) != len(ids):
        raise UsageError("an applicant id is listed twice")
    op = ControlRequest(
        SCORE, ids=tuple(ids), reveal=reveal, mode=mode, model_id=model_id, timeout=timeout
    )
    return await _ask(load_party_config(config), op, ids, timeout, progress)


async def submit_request(
    config: str | Path,
    body: dict[str, Any],
    ids: Sequence[str],
    *,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> ScoreOutcome:
    """Hand the daemon a request signed elsewhere (`body`) and its ids; as `score_request`."""
    op = ControlRequest(SUBMIT, ids=tuple(ids), request=Request.from_dict(body))
    return await _ask(load_party_config(config), op, ids, timeout, progress)


async def daemon_status(config: str | Path) -> dict[str, Any]:
    """The local daemon's state (connected, presence of the others, queue)."""
    cfg = load_party_config(config)
    reader, writer = await _connect(cfg, f"party {cfg.party}'s daemon is not running")
    try:
        writer.write(ControlRequest(STATUS).to_json())
        await writer.drain()
        ev = await asyncio.wait_for(read_event(reader, max_bytes=MAX_ANSWER_BYTES), 5)
        if ev is None or ev["event"] != "status":
            raise SessionError(f"party {cfg.party}'s daemon gave no status")
        return {k: v for k, v in ev.items() if k != "event"}
    finally:
        writer.close()


async def _connect(
    cfg: PartyConfig, absent: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to this party's daemon, after checking it runs as this user."""
    try:
        reader, writer = await asyncio.open_unix_connection(
            str(cfg.control_socket), limit=MAX_ANSWER_BYTES + 1
        )
    except (FileNotFoundError, ConnectionRefusedError):
        raise SessionError(absent) from None
    uid = peer_uid(writer.get_extra_info("socket"))
    if uid is not None and uid != os.geteuid():
        writer.close()
        raise SessionError(
            f"{cfg.control_socket}: served by user {uid}, not this user; not party {cfg.party}'s"
        )
    return reader, writer


async def _ask(
    cfg: PartyConfig,
    op: ControlRequest,
    ids: Sequence[str],
    timeout: float,
    progress: Progress | None,
) -> ScoreOutcome:
    """Send one operation; relay progress; return the result or raise the daemon's error."""
    t0 = time.perf_counter()
    absent = (
        f"party {cfg.party}'s daemon is not running (no control socket {cfg.control_socket}); "
        f"start it with: mpc-credit party run --config {cfg.source}"
    )
    reader, writer = await _connect(cfg, absent)
    try:
        writer.write(op.to_json())
        await writer.drain()
        while True:
            try:
                ev = await asyncio.wait_for(
                    read_event(reader, max_bytes=MAX_ANSWER_BYTES), timeout + 10
                )
            except asyncio.TimeoutError:
                raise TimedOutError(f"no answer from party {cfg.party}'s daemon") from None
            except WireError as exc:
                raise SessionError(f"party {cfg.party}'s daemon sent a bad line: {exc}") from None
            if ev is None:
                raise SessionError(f"party {cfg.party}'s daemon closed the connection")
            if ev["event"] == "progress":
                if progress is not None:
                    progress(str(ev.get("message", "")))
            elif ev["event"] == "error":
                raise error_of_kind(ev.get("kind"), str(ev.get("message")))
            elif ev["event"] == "result":
                try:
                    result = result_from_fields(ev, ids)
                except ValueError as exc:
                    raise SessionError(
                        f"party {cfg.party}'s daemon sent a bad result: {exc}"
                    ) from None
                return ScoreOutcome(str(ev.get("session")), result, time.perf_counter() - t0)
    finally:
        writer.close()
