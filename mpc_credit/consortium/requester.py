"""The requesting side of a session: what `mpc-credit score` and `train --config` do.

The CLI runs on the receiver's machine with the receiver's `party.toml`, which it reads only
to find its daemon's control socket. It sends the daemon what to score (a `score` request of
`mpc_credit.consortium.control`: ids, reveal, mode, model_id, timeout); the daemon, which holds the
consortium, the models and the signing key, builds and signs the request, publishes it,
runs the session with the other daemons (it is the receiver's MPC party, already warm), and
writes progress lines and finally the typed result back on the socket.

`train_request` does the same for a joint training run: the daemon signs a training request
for the job (this party the lender and model owner), runs it with the other daemons, and sends
back the model and the public facts of the run (kept features, rows, its privacy ledger).

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
from mpc_credit.consortium.control import SCORE, STATUS, SUBMIT, TRAIN, ControlRequest
from mpc_credit.consortium.daemon.control import MAX_ANSWER_BYTES, peer_uid
from mpc_credit.consortium.fields import clean_text
from mpc_credit.consortium.messages import Request
from mpc_credit.consortium.train_request import TrainJob
from mpc_credit.errors import (
    MpcCreditError,
    RefusedError,
    SessionError,
    TimedOutError,
    UsageError,
    error_of_kind,
)
from mpc_credit.jsonwire import WireError, read_event
from mpc_credit.scorecard.reveal import Result, result_from_fields

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScoreOutcome:
    """The receiver's result for one request, typed until the CLI formats it."""

    session: str
    result: Result
    seconds: float  # end to end, as the client saw it
    model: str = ""  # the version it came from, ID@VERSION
    model_digest: str = ""  # and that version's digest

    @property
    def columns(self) -> list[str]:
        return self.result.header()

    @property
    def rows(self) -> list[list[str]]:
        return self.result.rows()


async def score_request(
    config: str | Path | PartyConfig,
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
    UsageError for bad input. `config`: the party.toml, or its configuration already read
    (a long-lived caller such as `mpc-credit serve` reads it once).
    """
    if not ids:
        raise UsageError("no applicant ids given")
    if len(set(ids)) != len(ids):
        raise UsageError("an applicant id is listed twice")
    op = ControlRequest(
        SCORE, ids=tuple(ids), reveal=reveal, mode=mode, model_id=model_id, timeout=timeout
    )
    return await _score(_config(config), op, ids, timeout, progress)


def _config(config: str | Path | PartyConfig) -> PartyConfig:
    return config if isinstance(config, PartyConfig) else load_party_config(config)


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
    return await _score(load_party_config(config), op, ids, timeout, progress)


async def _score(
    cfg: PartyConfig,
    op: ControlRequest,
    ids: Sequence[str],
    timeout: float,
    progress: Progress | None,
) -> ScoreOutcome:
    """The scoring result of operation `op` (score or submit)."""
    ev, seconds = await _ask(cfg, op, timeout, progress)
    try:
        result = result_from_fields(ev, ids)
    except ValueError as exc:
        raise SessionError(f"party {cfg.party}'s daemon sent a bad result: {exc}") from None
    model, digest = ev.get("model", ""), ev.get("model_digest", "")
    return ScoreOutcome(str(ev.get("session")), result, seconds, str(model), str(digest))


@dataclass(frozen=True)
class Trained:
    """The requester's outcome of a training run through the daemons."""

    session: str
    model: dict[str, Any]  # a full model file (mpc-credit/scorecard@1), checked
    kept: dict[str, list[str]]  # kept feature names by party (public)
    rows: int  # this party's (the lender's) training rows
    epsilon: float | None  # the run's, None without DP
    epsilon_spent: float | None  # this party's ledger after the run
    budget: float  # this party's privacy budget
    seconds: float


async def train_request(
    config: str | Path,
    job: TrainJob,
    *,
    timeout: float = 3600.0,
    progress: Progress | None = None,
) -> Trained:
    """Have this party's daemon run the training `job` with the consortium; the model.

    Raises as `score_request`; SessionError when the daemon's answer is not a valid model.
    """
    op = ControlRequest(TRAIN, job=job, timeout=timeout)
    ev, seconds = await _ask(load_party_config(config), op, timeout, progress)
    try:
        return _trained(ev, seconds)
    except (ValueError, TypeError, KeyError, MpcCreditError) as exc:
        raise SessionError(f"the daemon sent a bad training result: {exc}") from None


def _trained(ev: dict[str, Any], seconds: float) -> Trained:
    from mpc_credit.scorecard.model import from_dict

    from_dict(ev["model"], "the trained model")  # ModelError if it is not a valid model
    kept = ev["kept"]
    if not isinstance(kept, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in kept.values()
    ):
        raise ValueError("kept features are not lists of names")
    spent = ev["epsilon_spent"]
    return Trained(
        session=str(ev["session"]),
        model=ev["model"],
        kept={str(k): list(v) for k, v in kept.items()},
        rows=int(ev["rows"]),
        epsilon=None if ev["epsilon"] is None else float(ev["epsilon"]),
        epsilon_spent=None if spent is None else float(spent),
        budget=float(ev["budget"]),
        seconds=seconds,
    )


async def registry_op(
    config: str | Path | PartyConfig,
    op: ControlRequest,
    *,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """One of the registry's operations (models, publish, decide, set-status) through this
    party's daemon: the daemon's answer (the registry as it sees it, or the record it made);
    raises as `score_request` (a refusal names the rule)."""
    ev, _ = await _ask(_config(config), op, timeout, progress)
    return {k: v for k, v in ev.items() if k != "event"}


async def daemon_status(config: str | Path | PartyConfig) -> dict[str, Any]:
    """The local daemon's state (connected, presence of the others, queue, budget)."""
    cfg = _config(config)
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
    cfg: PartyConfig, op: ControlRequest, timeout: float, progress: Progress | None
) -> tuple[dict[str, Any], float]:
    """Send one operation; relay progress; return the result event and the seconds it took,
    or raise the daemon's error."""
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
                raise _error(ev)
            elif ev["event"] == "result":
                return ev, time.perf_counter() - t0
    finally:
        writer.close()


def _error(ev: dict[str, Any]) -> MpcCreditError:
    """The daemon's error event as its error type; a refusal keeps its public category."""
    error = error_of_kind(ev.get("kind"), str(ev.get("message")))
    reason = ev.get("reason")
    if isinstance(error, RefusedError) and isinstance(reason, str):
        error.reason = clean_text(reason, 100)
    return error
