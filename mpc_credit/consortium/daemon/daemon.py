"""The party daemon: a long-lived process per institution that runs scoring sessions.

`mpc-credit party run --config parties/bank/party.toml` loads the party's configuration,
model files and CSV once, connects to the MQTT broker (TLS and client certificate when
configured, Nagle off), announces itself with a retained presence message and a last
will saying `offline`, and then:

1. takes signed session requests from the `request` topic, checks them (signature,
   requester, consortium policy, nonce and timestamp window, deadline, model digest)
   and answers `ack` with the MPC port it reserves for the session, or `refuse`;
2. runs the sessions one after another, in the order their requests arrived on the
   broker (the same order at every party, so no two parties ever wait for each other
   in different sessions): when every party acknowledged, it opens the MPyC runtime
   on the agreed ports over mutual TLS, checks every peer is in the same session, and
   runs `mpc_credit.engine.session.execute`;
3. reports `done` or `failed`; any failure, refusal, absent party, lost connection or
   passed deadline aborts the session at every party, which then goes back to idle.

The result exists only at the receiver, and leaves its daemon only through the local
control socket (a Unix socket of mode 0600 in the party's folder) to the `score` CLI
that asked for it: the broker never carries a feature value, a share or a result.

MPyC keeps its runtime in module globals, so one daemon runs one MPC session at a time
and queues the others; each session uses the next port of the party's range so a
straggler of an aborted session can never connect into the next one (and if it did,
the session-id exchange at the start would abort the session).

Every session, accepted or refused, leaves one JSON line in the party's audit file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiomqtt

from mpc_credit.consortium.config import Consortium, PartyConfig, load_consortium, load_party_config
from mpc_credit.consortium.daemon.session import (
    FAILED_KIND,
    INPUT,
    REFUSED,
    TIMEOUT,
    LocalClient,
    Session,
    SessionAbort,
    until,
    until_task,
)
from mpc_credit.consortium.messages import (
    ACK,
    DONE,
    FAILED,
    PROGRESS,
    REFUSE,
    Request,
    Topics,
    ids_digest,
    parse_request,
    parse_status,
    presence,
    status,
)
from mpc_credit.consortium.policy import DAY, NonceCache, QueryLedger, check_request
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.engine.links import (
    MPC_FAILURES,
    TlsContexts,
    connect_runtime,
    install_mpc_guard,
    lost_peers,
    quiet_exception_handler,
    teardown_runtime,
    unconnected_peers,
)
from mpc_credit.errors import DataError, MpcCreditError, UsageError
from mpc_credit.scorecard.data import OwnerTable, load_owner_csv
from mpc_credit.scorecard.model import Scorecard, load_model
from mpc_credit.scorecard.reveal import columns as reveal_columns

log = logging.getLogger("mpc_credit.daemon")
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
SHUTDOWN_GRACE = 5.0  # seconds for MPyC's closing barrier


class PartyDaemon:
    """One party's daemon; `await PartyDaemon(config).run()` until SIGTERM or `stop()`."""

    def __init__(self, cfg: PartyConfig) -> None:
        self.cfg = cfg
        self.cons: Consortium = load_consortium(cfg.consortium_file)
        if cfg.party not in self.cons.names:
            raise UsageError(f"{cfg.source}: party {cfg.party!r} is not in {cfg.consortium_file}")
        self.me = self.cons.party(cfg.party)
        if (self.me.host, self.me.mpc_port, self.me.mpc_ports) != (
            cfg.mpc_host,
            cfg.mpc_port,
            cfg.mpc_ports,
        ):
            raise UsageError(
                f"{cfg.source}: [mpc] host/port/ports differ from {cfg.party}'s entry in "
                f"{cfg.consortium_file}"
            )
        self.key = load_signing_key(cfg.signing_key)
        self.topics = Topics(self.cons.topic_prefix)
        self.tls = TlsContexts.load(cfg.folder, self.me.pid) if cfg.mpc_tls else None
        self.models: dict[tuple[str, str], Scorecard] = {}
        self._tables: dict[tuple[str, str], tuple[float, OwnerTable]] = {}
        self._load_models()
        self.nonces = NonceCache(self.cons.policy.timestamp_window)
        self.ledger = QueryLedger()
        self._load_history()
        self.sessions: dict[str, Session] = {}
        self._early: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.queue: asyncio.Queue[Session] = asyncio.Queue()
        self.presence: dict[str, str] = {}
        self.locals: dict[str, LocalClient] = {}
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.stopping = False
        self.current: Session | None = None
        self._port_turn = 0
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sessions_run = 0

    # ------------------------------------------------------------ local state

    def _load_models(self) -> None:
        for mid, modes in self.cfg.models.items():
            for mode, path in modes.items():
                model = load_model(path)
                if model.part is not None and model.part.mode != mode:
                    raise UsageError(f"{path}: is a {model.part.mode}-mode part, listed as {mode}")
                self.models[(mid, mode)] = model
                if self.cfg.data is not None and self.cfg.party in model.owners:
                    self._table(mid, mode)  # validate the CSV now: fail at start, not per session
        if not self.models:
            raise UsageError(f"{self.cfg.source}: no [models.*] configured")

    def _table(self, mid: str, mode: str) -> OwnerTable | None:
        """This party's rows, re-read when the CSV changed since the last read."""
        model = self.models[(mid, mode)]
        if self.cfg.data is None or self.cfg.party not in model.owners:
            return None
        try:
            mtime = self.cfg.data.stat().st_mtime
        except OSError:
            raise DataError(f"{self.cfg.data}: file not found") from None
        cached = self._tables.get((mid, mode))
        if cached is None or cached[0] != mtime:
            cached = (mtime, load_owner_csv(self.cfg.data, model, self.cfg.party))
            self._tables[(mid, mode)] = cached
        return cached[1]

    def _load_history(self) -> None:
        """Recent nonces and accepted sessions from the audit file, so that a restart
        opens no replay window and resets no requester's daily budget."""
        now = time.time()
        horizon = now - 2 * self.cons.policy.timestamp_window - 60
        with contextlib.suppress(FileNotFoundError):
            for line in self.cfg.audit.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    rec = json.loads(line)
                    ts = float(rec["request_ts"])
                    if rec.get("nonce") and ts >= horizon:
                        self.nonces.add(rec["nonce"], ts)
                    if rec.get("outcome") in ("done", "aborted") and ts > now - DAY:
                        self.ledger.add(rec["requester"], ts, int(rec["count"]))

    def audit(self, req: Request, outcome: str, reason: str = "", **fields: Any) -> None:
        """Append this party's record of a session (ids only when the request listed them)."""
        rec = {
            "ts": time.time(),
            "party": self.cfg.party,
            "session": req.session,
            "outcome": outcome,
            "reason": reason,
            "requester": req.requester,
            "receiver": req.receiver,
            "model_id": req.model_id,
            "model_digest": req.model_digest,
            "mode": req.mode,
            "reveal": req.reveal,
            "count": req.count,
            "batch_digest": req.batch_digest,
            "ids": list(req.ids) if req.ids is not None else None,
            "nonce": req.nonce,
            "request_ts": req.ts,
            "deadline": req.deadline,
            **fields,
        }
        self.cfg.audit.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.cfg.audit, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")

    # ------------------------------------------------------------ broker side

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish with QoS 1; False when not connected."""
        client = self.client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain)
            return True
        except aiomqtt.MqttError as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False

    async def report(self, s: Session | str, phase: str, **fields: Any) -> None:
        sid = s.sid if isinstance(s, Session) else s
        payload = status(self.key, sid, self.cfg.party, phase, **fields)
        await self.publish(self.topics.session(sid, self.cfg.party), payload)

    def _client(self, will: aiomqtt.Will) -> aiomqtt.Client:
        b = self.cfg.broker
        tls = None
        if b.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(b.ca) if b.ca else None,
                certfile=str(b.cert) if b.cert else None,
                keyfile=str(b.key) if b.key else None,
            )
        return aiomqtt.Client(
            b.host,
            b.port,
            identifier=f"mpc-credit-{self.cons.name}-{self.cfg.party}",
            username=b.username,
            password=b.password(),
            will=will,
            clean_session=True,
            keepalive=b.keepalive,
            tls_params=tls,
            socket_options=NODELAY,
            timeout=5,
        )

    async def mqtt_loop(self) -> None:
        """Stay connected to the broker; reconnect with backoff when it goes away."""
        will = aiomqtt.Will(
            self.topics.presence(self.cfg.party),
            presence(self.cfg.party, "offline", reason="connection lost"),
            qos=1,
            retain=True,
        )
        backoff = 0.1
        while not self._stop.is_set():
            try:
                async with self._client(will) as client:
                    await client.subscribe(
                        [
                            (self.topics.request, 1),
                            (self.topics.session_all, 1),
                            (self.topics.presence_all, 1),
                        ]
                    )
                    self.client = client
                    await self.announce()
                    self.connected.set()
                    backoff = 0.1
                    log.info(
                        "connected to broker %s:%s", self.cfg.broker.host, self.cfg.broker.port
                    )
                    async for msg in client.messages:
                        self.on_message(str(msg.topic), bytes(msg.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError as exc:
                log.warning("broker connection: %s; retrying in %.1f s", exc, backoff)
            finally:
                was = self.connected.is_set()
                self.client = None
                self.connected.clear()
                if was:
                    for s in list(self.sessions.values()):
                        s.abort(f"party {self.cfg.party} lost its broker connection")
            if self._stop.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)
            backoff = min(2 * backoff, 3.0)

    async def announce(self) -> None:
        state = "draining" if self.stopping else "online"
        await self.publish(
            self.topics.presence(self.cfg.party),
            presence(self.cfg.party, state, pid=self.me.pid, host=self.me.host),
            retain=True,
        )

    def on_message(self, topic: str, payload: bytes) -> None:
        kind = self.topics.parse(topic)
        if not kind:
            return
        if kind[0] == "request":
            req = parse_request(payload)
            if req is not None:
                self.on_request(req)
        elif kind[0] == "presence":
            self.on_presence(kind[1], payload)
        elif kind[0] == "session" and kind[2] in self.cons.names:
            msg = parse_status(payload, self.cons, kind[1], kind[2])
            if msg is not None:
                self.on_status(kind[1], kind[2], msg)

    def on_presence(self, party: str, payload: bytes) -> None:
        try:
            state = str(json.loads(payload).get("state", "offline")) if payload else "offline"
        except (ValueError, AttributeError):
            state = "offline"
        self.presence[party] = state
        if state == "offline" and party != self.cfg.party:
            for s in list(self.sessions.values()):
                if party in s.parties:
                    s.abort(f"party {party} went offline during the session")

    def _next_port(self) -> int:
        port = self.me.mpc_port + self._port_turn % self.me.mpc_ports
        self._port_turn += 1
        return port

    def refusal(self, req: Request) -> str | None:
        """Why this party refuses `req`, or None."""
        if self.stopping:
            return f"party {self.cfg.party} is shutting down"
        reason = check_request(req, self.cons, self.models, self.nonces, ledger=self.ledger)
        if reason is not None:
            return reason
        if self.queue.qsize() >= self.cfg.max_queue:
            return f"{self.queue.qsize()} sessions already queued"
        if req.ids is None and req.receiver == self.cfg.party and req.session not in self.locals:
            return "batch ids were not submitted through the receiver's daemon"
        return None

    def on_request(self, req: Request) -> None:
        if req.session in self.sessions:
            return
        reason = self.refusal(req)
        local = self.locals.get(req.session)
        if reason is not None:
            log.info("refused session %s: %s", req.session, reason)
            self.audit(req, "refused", reason)
            self._spawn(self.report(req.session, REFUSE, reason=reason))
            if local is not None:
                self.locals.pop(req.session, None)
                local.finish(
                    "error", kind=REFUSED, message=f"party {self.cfg.party} refused: {reason}"
                )
            return
        self.nonces.add(req.nonce, req.ts)
        self.ledger.add(req.requester, req.ts, req.count)
        s = Session(req, self._next_port(), self.cons.names)
        s.ids = list(req.ids) if req.ids is not None else (local.ids if local else None)
        self.sessions[req.session] = s
        s.ports[self.cfg.party] = s.port
        self._spawn(self.report(s, ACK, port=s.port))
        self.queue.put_nowait(s)
        for party, msg in self._early.pop(req.session, []):
            self.on_status(req.session, party, msg)
        self._check_acked(s)

    def on_status(self, sid: str, party: str, msg: dict[str, Any]) -> None:
        s = self.sessions.get(sid)
        if s is None:
            early = self._early.setdefault(sid, [])
            if len(early) < 4 * len(self.cons.names):
                early.append((party, msg))
            if len(self._early) > 256:
                self._early.pop(next(iter(self._early)))
            return
        phase = msg["phase"]
        local = self.locals.get(sid)
        if party == self.cfg.party:
            return
        if phase == ACK:
            port = msg.get("port")
            if not isinstance(port, int) or not self.cons.party(party).port_ok(port):
                s.abort(f"party {party} acknowledged with an MPC port outside its range")
                return
            s.ports[party] = port
            if local is not None:
                local.send("progress", message=f"{party} accepted", party=party)
            self._check_acked(s)
        elif phase == REFUSE:
            s.abort(f"party {party} refused: {msg.get('reason', '')}", REFUSED, remote=True)
        elif phase == FAILED:
            kind = msg.get("kind")
            s.abort(
                f"party {party} failed: {msg.get('reason', '')}",
                kind if kind in (TIMEOUT, REFUSED) else FAILED_KIND,
                remote=True,
            )
        elif phase == DONE:
            s.done.add(party)
            self._check_done(s)
        elif phase == PROGRESS and local is not None:
            local.send("progress", message=f"{party}: {msg.get('message', '')}", party=party)

    def _check_acked(self, s: Session) -> None:
        if all(p in s.ports for p in s.parties):
            s.all_acked.set()

    def _check_done(self, s: Session) -> None:
        if all(p in s.done for p in s.parties):
            s.all_done.set()

    # ------------------------------------------------------------ running sessions

    async def worker(self) -> None:
        """Run queued sessions one at a time, in request order."""
        while True:
            s = await self.queue.get()
            self.current = s
            try:
                await self.run_session(s)
            except Exception as exc:
                log.exception("session %s: internal error", s.sid)
                with contextlib.suppress(Exception):
                    self.finish(
                        s, None, SessionAbort(f"party {self.cfg.party}: internal error: {exc}")
                    )
            finally:
                self.current = None
                self.sessions.pop(s.sid, None)
                self.queue.task_done()

    async def run_session(self, s: Session) -> None:
        local = self.locals.get(s.sid)
        await until(s.all_acked, s.aborted, timeout=s.remaining())
        if not s.aborted.is_set() and not s.all_acked.is_set():
            missing = [p for p in s.parties if p not in s.ports]
            s.abort(f"party {', '.join(missing)} did not accept before the deadline", TIMEOUT)
        if s.aborted.is_set():
            if not s.remote:
                await self.report(s, FAILED, reason=s.abort_reason, kind=s.abort_kind)
            self.finish(s, None, SessionAbort(s.abort_reason, s.abort_kind))
            return
        if local is not None:
            local.send("progress", message="all parties accepted; connecting")
        s.phase = "connecting"
        from mpc_credit.engine.runtime import make_runtime

        addresses = [(self.cons.party(p).host, s.ports[p]) for p in s.parties]
        mpc = make_runtime(self.me.pid, addresses, ssl=self.tls is not None)
        install_mpc_guard()
        MPC_FAILURES.clear()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(quiet_exception_handler)
        task = asyncio.ensure_future(self._compute(s, mpc, local))
        watchdog = asyncio.ensure_future(self._watch(s, mpc))
        result = None
        error: SessionAbort | None = None
        try:
            await until_task(task, s.aborted, timeout=s.remaining())
            if task.done() and not task.cancelled() and task.exception() is None:
                result = task.result()
            elif task.done() and not task.cancelled():
                exc = task.exception()
                error = (
                    exc
                    if isinstance(exc, SessionAbort)
                    else SessionAbort(f"party {self.cfg.party}: {type(exc).__name__}: {exc}")
                )
            elif s.aborted.is_set():
                error = SessionAbort(s.abort_reason, s.abort_kind)
            else:
                error = SessionAbort(self._deadline_reason(s, mpc), TIMEOUT)
        finally:
            watchdog.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if error is not None:
            teardown_runtime(mpc)
            s.abort(str(error), error.kind)
            if not s.remote:
                await self.report(s, FAILED, reason=str(error), kind=error.kind)
            self.finish(s, None, error)
            return
        # Finished here: report done; the result is released only when all are done.
        s.phase = "finishing"
        s.done.add(self.cfg.party)
        await self.report(s, DONE)
        self._check_done(s)
        if local is not None and result is not None:
            local.send("progress", message="result received; waiting for every party to finish")
        await until(s.all_done, s.aborted, timeout=s.remaining())
        if s.all_done.is_set():
            self.finish(s, result, None)
            return
        if not s.aborted.is_set():
            late = [p for p in s.parties if p not in s.done]
            s.abort(f"party {', '.join(late)} did not finish before the deadline", TIMEOUT)
        self.finish(s, None, SessionAbort(s.abort_reason, s.abort_kind))

    def _deadline_reason(self, s: Session, mpc: Any) -> str:
        if s.phase == "connecting":
            names = [s.parties[p] for p in unconnected_peers(mpc)]
            if names:
                return f"party {', '.join(names)} did not connect before the deadline"
        return f"deadline passed while {s.phase} (at party {self.cfg.party})"

    async def _watch(self, s: Session, mpc: Any) -> None:
        """Abort the session when an MPC link drops or an MPyC coroutine fails."""
        while True:
            await asyncio.sleep(0.05)
            if MPC_FAILURES:
                exc = MPC_FAILURES[0]
                s.abort(f"party {self.cfg.party}: MPC error: {type(exc).__name__}: {exc}")
                return
            if s.phase == "computing":
                gone = lost_peers(mpc)
                if gone:
                    # the peer's own report (deadline, failure, last will) explains it best
                    await until(s.aborted, timeout=0.3)
                    names = ", ".join(s.parties[p] for p in gone)
                    if s.remaining() <= 0.5:
                        s.abort(f"deadline passed; party {names} closed its MPC link", TIMEOUT)
                    s.abort(f"lost the MPC connection to party {names}")
                    return

    async def _compute(self, s: Session, mpc: Any, local: LocalClient | None) -> Any:
        """Connect, check the session, share the batch ids if needed, run the protocol."""
        from mpc_credit.engine.exchange import agree_session, share_ids
        from mpc_credit.engine.session import execute

        t0 = time.perf_counter()
        await connect_runtime(mpc, self.cfg.mpc_listen, self.tls)
        s.phase = "computing"
        t1 = time.perf_counter()
        if local is not None:
            local.send("progress", message=f"connected to all parties in {1000 * (t1 - t0):.0f} ms")
        await agree_session(mpc, s.sid, s.parties)
        req = s.req
        receiver_pid = s.parties.index(req.receiver)
        if req.ids is None:
            ids = await share_ids(mpc, receiver_pid, s.ids, req.count, req.receiver)
            if len(ids) != req.count or ids_digest(ids) != req.batch_digest:
                raise SessionAbort(
                    f"the ids sent by {req.receiver} do not match the request's count and digest"
                )
            s.ids = ids
        assert s.ids is not None
        prep = self._prepare(s, s.ids)
        result = await execute(prep, mpc)
        s.phase = "finishing"
        await asyncio.wait_for(mpc.shutdown(), SHUTDOWN_GRACE)
        if local is not None:
            local.send(
                "progress", message=f"secure computation done in {time.perf_counter() - t1:.3f} s"
            )
        return result

    def _prepare(self, s: Session, ids: Sequence[str]) -> Any:
        """`session.prepare` from the cached model and table (no file I/O per session)."""
        from mpc_credit.engine.session import SessionSpec, assemble

        req = s.req
        info = self.cons.model(req.model_id)
        assert info is not None
        spec = SessionSpec(
            session_id=req.session,
            party=self.cfg.party,
            parties=s.parties,
            mode=req.mode,  # type: ignore[arg-type]
            reveal=req.reveal,  # type: ignore[arg-type]
            receiver=req.receiver,
            model_owner=info.owner,
        )
        model = self.models[(req.model_id, req.mode)]
        try:
            return assemble(spec, model, list(ids), self._table(req.model_id, req.mode))
        except MpcCreditError as exc:
            raise SessionAbort(f"party {self.cfg.party}: {exc}") from None

    def finish(self, s: Session, result: Any, error: SessionAbort | None) -> None:
        """End a session: audit, hand the result (receiver) or the reason to the local CLI."""
        s.phase = "ended"
        seconds = round(time.perf_counter() - s.t0, 4)
        local = self.locals.pop(s.sid, None)
        self.sessions_run += 1
        if error is not None:
            log.info("session %s aborted: %s", s.sid, error)
            self.audit(s.req, "aborted", str(error), kind=error.kind, seconds=seconds, port=s.port)
            if local is not None:
                local.finish("error", kind=error.kind, message=str(error))
            return
        received = result is not None
        self.audit(s.req, "done", seconds=seconds, port=s.port, received=received)
        if local is not None:
            if result is None:
                local.finish("error", kind=FAILED_KIND, message="this party received no result")
            else:
                local.finish(
                    "result",
                    session=s.sid,
                    reveal=result.reveal,
                    columns=["applicant_id", *reveal_columns(result.reveal)],
                    rows=result.rows(),
                    seconds=seconds,
                )

    # ------------------------------------------------------------ the local control socket

    async def control_server(self) -> asyncio.AbstractServer:
        path = self.cfg.control_socket
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._on_local, path=str(path), limit=2**26)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        return server

    async def _on_local(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            msg = json.loads(line) if line else {}
            op = msg.get("op")
            if op == "status":
                writer.write((json.dumps({"event": "status", **self.state()}) + "\n").encode())
            elif op == "score":
                await self._local_score(msg, writer)
            else:
                writer.write(b'{"event":"error","kind":"input","message":"unknown operation"}\n')
            await writer.drain()
        except (ConnectionError, ValueError) as exc:
            log.debug("control client: %s", exc)
        finally:
            writer.close()

    def state(self) -> dict[str, Any]:
        return {
            "party": self.cfg.party,
            "connected": self.connected.is_set(),
            "stopping": self.stopping,
            "presence": dict(self.presence),
            "busy": self.current is not None,
            "queued": self.queue.qsize(),
            "sessions_run": self.sessions_run,
        }

    async def _local_score(self, msg: Mapping[str, Any], writer: asyncio.StreamWriter) -> None:
        local = LocalClient(writer)
        try:
            req = Request.from_dict(msg["request"])
        except (KeyError, TypeError, ValueError):
            local.finish("error", kind=INPUT, message="malformed request")
            return
        ids = msg.get("ids")
        for _ in range(20):  # just connected: give retained presence messages a moment
            if all(p in self.presence for p in self.cons.names):
                break
            await asyncio.sleep(0.05)
        problem = self._precheck(req, ids)
        if problem is not None:
            local.finish("error", kind=problem.kind, message=str(problem))
            return
        local.ids = list(ids) if ids is not None else None
        self.locals[req.session] = local
        if not await self.publish(self.topics.request, req.to_json()):
            self.locals.pop(req.session, None)
            local.finish("error", kind=FAILED_KIND, message="the broker is not reachable")
            return
        local.send(
            "progress", message=f"request {req.session[:8]} sent to {len(self.cons.names)} parties"
        )
        timeout = req.deadline - time.time() + 5
        try:
            await asyncio.wait_for(asyncio.shield(local.finished), timeout)
        except asyncio.TimeoutError:
            local.finish("error", kind=TIMEOUT, message="no outcome before the deadline")
        await writer.drain()

    def _precheck(self, req: Request, ids: Any) -> SessionAbort | None:
        """Checks of a locally submitted request before it goes to the broker."""
        if req.requester != self.cfg.party:
            return SessionAbort(
                f"this daemon is {self.cfg.party}'s, the request is {req.requester}'s", INPUT
            )
        if not self.connected.is_set():
            return SessionAbort(f"party {self.cfg.party} is not connected to the broker")
        reason = self.refusal_local(req)
        if reason is not None:
            return SessionAbort(f"party {self.cfg.party} refused: {reason}", REFUSED)
        if req.ids is None and (not isinstance(ids, list) or ids_digest(ids) != req.batch_digest):
            return SessionAbort("the batch ids do not match the request's digest", INPUT)
        absent = [p for p in self.cons.names if self.presence.get(p) != "online"]
        if absent:
            states = ", ".join(f"{p} ({self.presence.get(p, 'never seen')})" for p in absent)
            return SessionAbort(f"party {states} is not available; session not started")
        table = (
            self._table(req.model_id, req.mode) if (req.model_id, req.mode) in self.models else None
        )
        if table is not None:
            known = set(table.ids)
            wanted = req.ids if req.ids is not None else ids
            unknown = [a for a in wanted if a not in known]
            if unknown:
                more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
                where = f"{self.cfg.party}'s file {self.cfg.data}"
                return SessionAbort(f"applicant {unknown[0]!r}{more} is not in {where}", INPUT)
        return None

    def refusal_local(self, req: Request) -> str | None:
        if self.stopping:
            return f"party {self.cfg.party} is shutting down"
        return check_request(req, self.cons, self.models, self.nonces, ledger=self.ledger)

    # ------------------------------------------------------------ life cycle

    def stop(self) -> None:
        """Drain: refuse new requests, finish queued and running sessions, then exit."""
        if self.stopping:
            return
        log.info("stopping: draining %d session(s)", len(self.sessions))
        self.stopping = True
        self._spawn(self.announce())
        self._spawn(self._drain())

    async def _drain(self) -> None:
        while self.sessions or self.locals:
            await asyncio.sleep(0.05)
        self._stop.set()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until stopped (SIGTERM/SIGINT drain, then a clean exit)."""
        import mpc_credit.engine.runtime
        import mpc_credit.engine.session

        mpc_credit.engine.runtime.load_mpyc()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        server = await self.control_server()
        worker = asyncio.ensure_future(self.worker())
        mqtt = asyncio.ensure_future(self.mqtt_loop())
        if ready is not None:
            await until(self.connected, self._stop, timeout=30)
            ready()
        try:
            await self._stop.wait()
        finally:
            worker.cancel()
            client = self.client
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.publish(
                        self.topics.presence(self.cfg.party),
                        presence(self.cfg.party, "offline", reason="stopped"),
                        qos=1,
                        retain=True,
                    )
            mqtt.cancel()
            with contextlib.suppress(BaseException):
                await mqtt
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.cfg.control_socket.unlink()


# ---------------------------------------------------------------- entry points


def run_daemon(config: str | Path, *, verbose: bool = False) -> int:
    """Run one party's daemon in the foreground; returns the exit code."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("mpc_credit.daemon").setLevel(logging.INFO)
    cfg = load_party_config(config)
    os.chdir(cfg.folder)  # MPyC's TLS convention: .config/ relative to the working directory
    daemon = PartyDaemon(cfg)

    def ready() -> None:
        print(json.dumps({"event": "ready", "party": cfg.party, "pid": os.getpid()}), flush=True)

    asyncio.run(daemon.run(ready))
    return 0
