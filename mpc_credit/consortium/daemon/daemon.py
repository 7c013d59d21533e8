"""The party daemon: a long-lived process per institution that runs scoring and training sessions.

`mpc-credit party run --config parties/bank/party.toml` (`run_daemon`) builds the parts and
runs them until SIGTERM, which drains: new requests are refused, queued and running
sessions finish, then the daemon says `offline` and exits.

- `tables.LocalData`: the party's models and CSV, loaded and checked at start;
- `audit.DaemonAudit`: the tamper-evident audit log, written ahead of every session;
- `mqtt.MqttLink`: the broker (signed presence, requests, the parties' signed status reports);
- `inbox.Inbox`: every broker message through its strict decoder, failures summarised;
- `presence.PresenceBook`: every party's newest signed presence; our own kept true;
- `admission`: the pure decisions: accept or refuse a request, what a report means;
- `train_job.TrainingSide`: the party's training data, privacy budget and ledger;
- `runner.SessionRunner`: one accepted session at a time over the MPC links;
- `control.ControlServer` and `client_ops`: the local socket where `score` and `train` ask
  (the daemon signs the request) and receive the result.

An accepted request is on disk in the audit log before it is acknowledged (write-ahead), and
charged to the requester's budget at this party's clock (a training request: its epsilon to
this party's privacy ledger, on disk before the audit line); a request without its requester's
valid signature gets no answer on the broker (its session id is not the sender's to claim),
only a bounded audit summary. Requests are accepted in the order the broker delivers them
(the same at every party), so no two parties ever wait for each other in different sessions;
the queue is never reordered, and a requester holds at most its share of it
(`max_queue_per_requester`, `admission.requester_cap`), nor asks while it keeps stalling
(daemon/stalls.py);
each session uses the next port of the party's range, so a straggler of an aborted session
never reaches the next one.
The result exists only at the receiver and leaves its daemon only through the local socket:
the broker never carries a feature value, a share or a result.

(About 400 lines: what happens to a request (scoring or training), from the broker to the
queue, and to the reports about it is read here in one place; the parts above hold
everything else.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mpc_credit.consortium.audit import AuditError, iter_records
from mpc_credit.consortium.config import (
    Consortium,
    PartyConfig,
    check_private_files,
    load_consortium,
    load_party_config,
)
from mpc_credit.consortium.daemon import admission
from mpc_credit.consortium.daemon.audit import DaemonAudit
from mpc_credit.consortium.daemon.client_ops import ClientOps
from mpc_credit.consortium.daemon.control import ControlServer, LocalClient
from mpc_credit.consortium.daemon.inbox import Inbox, Snapshot
from mpc_credit.consortium.daemon.models import ModelBook
from mpc_credit.consortium.daemon.mqtt import MqttLink
from mpc_credit.consortium.daemon.presence import PresenceBook
from mpc_credit.consortium.daemon.publish_job import PublishingSide
from mpc_credit.consortium.daemon.registry_ops import RegistryOps, version_row
from mpc_credit.consortium.daemon.runner import SessionRunner
from mpc_credit.consortium.daemon.session import Session, until
from mpc_credit.consortium.daemon.tables import LocalData
from mpc_credit.consortium.daemon.train_job import TrainingSide
from mpc_credit.consortium.ledger import NonceCache, QueryLedger, record_accepted
from mpc_credit.consortium.messages import ACK, OFFLINE, REFUSE, Presence, Request, Status
from mpc_credit.consortium.publish_request import AnyRequest, PublishRequest
from mpc_credit.consortium.reasons import REPLAYED, Refusal, public_reason
from mpc_credit.consortium.records import Record, snapshot
from mpc_credit.consortium.registry import RegistryError
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.consortium.train_request import TrainRequest
from mpc_credit.engine.links import TlsContexts
from mpc_credit.engine.runtime import load_mpyc
from mpc_credit.errors import DataError, RefusedError, SessionError, UsageError
from mpc_credit.jsonwire import emit

log = logging.getLogger("mpc_credit.daemon")
EARLY_SESSIONS = 256  # reports kept for sessions whose request has not arrived yet
AUDIT_DOWN = "audit log not writable"  # the public category of a refusal for that reason


def load_identity(cfg: PartyConfig) -> Consortium:
    """The consortium, checked to list this party as its configuration says."""
    cons = load_consortium(cfg.consortium_file)
    if cfg.party not in cons.names:
        raise UsageError(f"{cfg.source}: party {cfg.party!r} is not in {cfg.consortium_file}")
    me = cons.party(cfg.party)
    if (me.host, me.mpc_port, me.mpc_ports) != (cfg.mpc_host, cfg.mpc_port, cfg.mpc_ports):
        raise UsageError(
            f"{cfg.source}: [mpc] host/port/ports differ from {cfg.party}'s entry in "
            f"{cfg.consortium_file}"
        )
    return cons


class PartyDaemon:
    """One party's daemon; `await PartyDaemon(config).run()` until SIGTERM or `stop()`."""

    def __init__(self, cfg: PartyConfig) -> None:
        self.cfg = cfg
        self.party = cfg.party
        self.cons = load_identity(cfg)
        self.me = self.cons.party(cfg.party)
        self.key = load_signing_key(cfg.signing_key)
        tls = TlsContexts.load(cfg.folder, self.me.pid) if cfg.mpc_tls else None
        self.models = ModelBook(cfg, self.cons)  # the registry and the files it signs
        self.data = LocalData(cfg, self.models)
        self.publishing = PublishingSide(cfg.party, self.cons, self.models)
        self.publishing.after_commit = self._auto_approve
        self.training = TrainingSide(cfg, self.cons)
        self.audit = DaemonAudit(cfg.audit, cfg.party, self.key)
        self.nonces = NonceCache(self.cons.policy.timestamp_window)
        self.ledger = QueryLedger()
        self.audit.restore(self.nonces, self.ledger)
        self.sessions: dict[str, Session] = {}
        self.early: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.queue: asyncio.Queue[Session] = asyncio.Queue()
        self.locals: dict[str, LocalClient] = {}
        self.link = MqttLink(cfg, self.cons, self.key, self.on_message, self.on_broker_lost)
        self.link.head = self.audit.head  # every status report carries the audit head
        self.link.snapshot = self._snapshot  # the registry records this party authored
        self.registry_ops = RegistryOps(
            cfg.party, self.key, self.models, self.link.announce_registry
        )
        self.inbox = Inbox(self.cons, self.link.topics, self.audit)
        self.book = PresenceBook(self.link, self._spawn)
        self.presence = self.book.states
        self.runner = SessionRunner(
            cfg.party,
            self.cons,
            cfg.mpc_listen,
            tls,
            self.data,
            self.link,
            self.audit,
            self.ledger,
            self.locals,
            self.training,
            self.publishing,
        )
        ops = ClientOps(
            self.cons,
            self.key,
            self.link,
            self.data,
            self.presence,
            self.locals,
            self.here,
            self.state,
            self.registry_ops,
            self.publishing,
        )
        self.control = ControlServer(cfg.control_socket, ops.handlers())
        self.runner.stalls.restore(iter_records(cfg.audit))
        policy = self.cons.policy
        self.share = admission.requester_cap(
            cfg.max_queue_per_requester, cfg.max_queue, {*policy.requesters, *policy.trainers}
        )
        self.stopping = False
        self._refused_records: set[tuple[str, int]] = set()  # logged once each
        self.current: Session | None = None
        self._port_turn = 0
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ decisions and records

    def here(self) -> admission.Here:
        return admission.Here(
            self.party,
            self.cons,
            self.data.models,
            self.nonces,
            self.ledger,
            self.stopping,
            self.queue.qsize(),
            self.cfg.max_queue,
            self.training,
            self._per_requester(),
            self.share,
            self.runner.stalls.times(),
            self.models.registry,
        )

    def _per_requester(self) -> dict[str, int]:
        """Each requester's sessions here, queued or running."""
        return dict(Counter(s.req.requester for s in self.sessions.values()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ the broker's messages

    def on_message(self, topic: str, payload: bytes) -> None:
        msg = self.inbox.decode(topic, payload)
        if topic == self.link.topics.presence(self.party):
            self.book.own_topic(msg if isinstance(msg, Presence) else None, stopping=self.stopping)
        if isinstance(msg, (Request, TrainRequest, PublishRequest)):
            self.on_request(msg, topic, payload)
        elif isinstance(msg, Snapshot):
            self.on_snapshot(msg)
        elif isinstance(msg, Presence):
            self.on_presence(msg)
        elif isinstance(msg, Status):
            self.on_status(msg.session, msg.party, msg.as_dict())

    def on_broker_lost(self) -> None:
        self.book.lost()
        for s in list(self.sessions.values()):
            s.abort(SessionError(f"party {self.party} lost its broker connection"))

    def on_presence(self, p: Presence) -> None:
        """A party's signed state; one not newer than the last seen is a replay: ignored."""
        party = p.party
        if self.book.update(p) and p.state == OFFLINE and party != self.party:
            for s in list(self.sessions.values()):
                if party in s.parties:
                    s.abort(SessionError(f"party {party} went offline during the session"))

    def on_snapshot(self, snap: Snapshot) -> None:
        """A party's registry records: each new one taken (on disk first), a refused one
        logged once. Our own come back too: a folder restored from an old backup learns
        what this party itself signed since (and numbers its next record after them)."""
        for record in snap.records:
            try:
                self.models.take(record)
            except RegistryError as exc:
                if record.key not in self._refused_records:
                    self._refused_records.add(record.key)
                    log.warning("registry record %s of %s refused: %s", record.seq, snap.party, exc)
            except OSError as exc:
                log.error("registry record %s of %s not kept: %s", record.seq, snap.party, exc)

    def _auto_approve(self, publish: Record) -> None:
        """A version of a model owner this party approves automatically (party.toml
        `auto_approve`): approved on disk, then announced."""
        try:
            record = self.registry_ops.auto_approve(publish, self.cfg.auto_approve)
        except (RegistryError, OSError) as exc:
            log.error("automatic approval of %s failed: %s", publish.ref, exc)
            return
        if record is not None:
            log.info("approved %s automatically (its owner %s)", publish.ref, publish.author)
            self._spawn(self.link.announce_registry())

    def _snapshot(self) -> bytes | None:
        """This party's registry snapshot (None before it authored any record)."""
        own = [r for r in self.models.registry.records.values() if r.author == self.party]
        return snapshot(self.party, own) if own else None

    def on_request(self, req: AnyRequest, topic: str, payload: bytes) -> None:
        """Refuse, or accept: audited (on disk) first, charged, acknowledged, queued."""
        if req.session in self.sessions:
            return
        local = self.locals.get(req.session)
        reason = admission.refusal(req, self.here(), holds_batch=local is not None)
        port = self._next_port()
        if reason is None:
            reason = self._write_ahead(req, port)
        if reason is not None:
            self._refuse(req, reason, local, topic, payload)
            return
        s = Session(req, port, self.cons.names)
        if isinstance(req, (TrainRequest, PublishRequest)):
            self.nonces.add(req.nonce, req.ts)
        else:
            record_accepted(req, self.nonces, self.ledger)
            s.ids = list(req.ids) if req.ids is not None else (local.ids if local else None)
        self.sessions[req.session] = s
        self._spawn(self.link.report(req.session, ACK, port=s.port))
        self.queue.put_nowait(s)
        s.acked(self.party, s.port)
        for party, msg in self.early.pop(req.session, []):
            self.on_status(req.session, party, msg)

    def _write_ahead(self, req: AnyRequest, port: int) -> Refusal | None:
        """On disk before the session is acknowledged: a training run's charge to this party's
        privacy ledger, then the `accepted` audit line; the refusal when either fails (a
        charge whose audit line failed stays, as it would after a crash between the two;
        a ledger another process filled since admission refuses as its pre-check would)."""
        try:
            if isinstance(req, TrainRequest):
                full = self.training.charge(req)
                if full is not None:
                    return full
            self.audit.accepted(req, port)
        except (AuditError, OSError, DataError) as exc:
            log.error("refusing session %s: %s", req.session, exc)
            return Refusal(f"party {self.party} cannot write its audit log or ledger", AUDIT_DOWN)
        return None

    def _refuse(
        self,
        req: AnyRequest,
        reason: Refusal,
        local: LocalClient | None,
        topic: str,
        payload: bytes,
    ) -> None:
        """Answer a signed request with the public reason (a replay: no answer, its session
        is not waiting for one; beyond a requester's burst, `MqttLink.may_refuse`: no answer,
        counted); drop an unsigned one quietly. Logged and audited within DaemonAudit's
        bounds: replaying a signed request fills neither."""
        if local is not None:
            self.locals.pop(req.session, None)
            local.fail(RefusedError(f"party {self.party} refused: {reason}", reason.category))
        if not admission.signed(req, self.cons):
            self.inbox.drop("request", topic, payload, str(reason))
            return
        if self.audit.refused(req, reason):
            log.info("refused session %s: %s", req.session, reason)
        if reason.category != REPLAYED and self.link.may_refuse(req.requester):
            public = public_reason(reason, self.party)
            self._spawn(self.link.report(req.session, REFUSE, reason=public))

    def _next_port(self) -> int:
        port = self.me.mpc_port + self._port_turn % self.me.mpc_ports
        self._port_turn += 1
        return port

    def on_status(self, sid: str, party: str, msg: dict[str, Any]) -> None:
        s = self.sessions.get(sid)
        if s is None:  # the report overtook the request: keep a few
            early = self.early.setdefault(sid, [])
            if len(early) < 4 * len(self.cons.names):
                early.append((party, msg))
            if len(self.early) > EARLY_SESSIONS:
                self.early.pop(next(iter(self.early)))
            return
        if party == self.party:
            return
        s.reported_head(party, msg.get("head"))
        event = admission.read_status(party, msg, self.cons)
        local = self.locals.get(sid)
        if event is None:
            return
        if event.what == "ack":
            s.acked(party, event.port)
            if local is not None:
                local.send("progress", message=f"{party} accepted", party=party)
        elif event.what == "abort" and event.error is not None:
            s.abort(event.error, remote=event.remote)
        elif event.what == "done":
            s.finished(party)
        elif event.what == "progress" and local is not None:
            local.send("progress", message=event.message, party=party)

    def state(self) -> dict[str, Any]:
        """What `party status` shows."""
        return {
            "party": self.party,
            "connected": self.link.connected.is_set(),
            "stopping": self.stopping,
            "presence": dict(self.presence),
            "busy": self.current is not None,
            "queued": self.queue.qsize(),
            "sessions_run": self.runner.sessions_run,
            # with retained left-overs dropped unread, and messages over the link's queue
            "dropped": self.inbox.dropped + self.link.stale + self.link.overflow,
            "budget": self._budget(),
            "stalls": dict(self.runner.stalls.counts),  # per party: sessions it stalled
            # refusals not reported on the broker: over a requester's burst (mqtt.may_refuse)
            "refusals_unreported": self.link.unreported,
            # every model version: its status, who approved it, the modes this party serves
            "models": self._models(),
            "model_problems": list(self.models.problems),  # versions it cannot serve, why
        }

    def _models(self) -> list[dict[str, Any]]:
        """Every version in the registry: status, who approved it, what this party serves."""
        return [version_row(v, self.models) for v in self.models.registry.versions()]

    def _budget(self) -> dict[str, int | None]:
        """This party's own daily scoring budget as a requester: applicants scored in the last
        24 hours at this party's clock, and the policy's limit (None: none, or not a
        requester)."""
        policy = self.cons.policy.requesters.get(self.party)
        daily = policy.daily_budget if policy is not None else None
        return {"daily": daily, "used": self.ledger.used(self.party, time.time())}

    # ------------------------------------------------------------ life cycle

    async def _work(self) -> None:
        """Run queued sessions one at a time, in request order."""
        while True:
            s = await self.queue.get()
            self.current = s
            try:
                await self.runner.run(s)
            finally:
                self.current = None
                self.sessions.pop(s.sid, None)
                self.queue.task_done()

    def stop(self) -> None:
        """Drain: refuse new requests, finish queued and running sessions, then exit."""
        if self.stopping:
            return
        log.info("stopping: draining %d session(s)", len(self.sessions))
        self.stopping = True
        self._spawn(self.link.announce("draining"))
        self._spawn(self._drain())

    async def _drain(self) -> None:
        while self.sessions or self.locals:
            await asyncio.sleep(0.05)
        self._stop.set()

    async def run(self, ready: Any = None) -> None:
        """Serve until stopped; `ready()` is called once connected to the broker."""
        load_mpyc()  # the first session should not pay for the import
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await self.control.start()
        worker = asyncio.ensure_future(self._work())
        mqtt = asyncio.ensure_future(self.link.run(self._stop))
        if ready is not None:
            await until(self.link.connected, self._stop, timeout=30)
            ready()
        try:
            await self._stop.wait()
        finally:
            worker.cancel()
            await self.link.say_offline("stopped")
            mqtt.cancel()
            with contextlib.suppress(BaseException):
                await mqtt
            self.control.close()
            self.audit.close()


def run_daemon(config: str | Path, *, verbose: bool = False) -> int:
    """Run one party's daemon in the foreground; returns the exit code."""
    logging.basicConfig(  # force: importing MPyC may have sent the root log to stdout
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    log.setLevel(logging.INFO)
    cfg = load_party_config(config)
    check_private_files(cfg)  # every private key file mode 0600 (or stricter) before anything runs
    os.chdir(cfg.folder)  # MPyC's TLS convention: .config/ relative to the working directory
    daemon = PartyDaemon(cfg)
    asyncio.run(daemon.run(lambda: emit("ready", party=cfg.party, pid=os.getpid())))
    return 0
