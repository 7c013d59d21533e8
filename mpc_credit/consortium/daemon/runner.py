"""Running one accepted session: wait for every party's ack, connect, compute, finish.

MPyC keeps its runtime in module globals, so a daemon runs one session at a time (its
queue orders them as the broker delivered the requests, the same order at every party).
A session is of one of two kinds, and only its computation differs: a scoring session runs
`mpc_credit.engine`, a training session `mpc_credit.training` (daemon/train_job.py), each on
the ports every party acknowledged, over mutual TLS;
a watchdog aborts it when an MPC link drops or an MPyC coroutine fails, and the deadline
bounds every wait. Every party must have acknowledged and joined the MPC links within the
policy's `connect_seconds` of the session's start here, else it aborts naming them (a stall,
counted in `stalls`, daemon/stalls.py); a session of a requester refused for stalling is
dropped when its turn comes. A batch's ids, once they arrived over the MPC links, must be as many as
the signed count, match its digest and pass the per-applicant limit; they are audited before
they are scored. The result is released to the local client only when every party reported
done; any abort is reported on the broker (unless learnt from there) with a public reason
only, and audited with the full one.

(About 450 lines: a session's life from the acks to its end, with the watchdog, the connect
window and the deadline's reasons, reads best in one place; what differs per kind is in `_score` and
train_job.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import MutableMapping
from typing import Any

from mpc_credit.consortium.config import Consortium
from mpc_credit.consortium.daemon import stalls
from mpc_credit.consortium.daemon.audit import DaemonAudit
from mpc_credit.consortium.daemon.control import LocalClient
from mpc_credit.consortium.daemon.mqtt import MqttLink
from mpc_credit.consortium.daemon.publish_job import Pending, PublishingSide
from mpc_credit.consortium.daemon.session import (
    ConnectTimeout,
    PolicyRefusal,
    Session,
    link_failures,
    public,
    stall_facts,
    until,
    until_task,
)
from mpc_credit.consortium.daemon.stalls import StallBook
from mpc_credit.consortium.daemon.tables import LocalData
from mpc_credit.consortium.daemon.train_job import Trained, TrainingSide
from mpc_credit.consortium.ledger import QueryLedger
from mpc_credit.consortium.messages import DONE, FAILED, Request, ids_digest
from mpc_credit.consortium.policy import check_applicants
from mpc_credit.consortium.publish_request import PublishRequest
from mpc_credit.consortium.train_request import TrainRequest
from mpc_credit.engine.exchange import agree_session, share_ids
from mpc_credit.engine.links import (
    MPC_FAILURES,
    LinkClosedError,
    LinkLimits,
    TlsContexts,
    connect_runtime,
    crowded,
    install_mpc_guard,
    lost_peers,
    quiet_exception_handler,
    stalled_peer,
    teardown_runtime,
    unconnected_peers,
)
from mpc_credit.engine.runtime import close_runtime, make_runtime
from mpc_credit.engine.session import Prepared, SessionSpec, assemble, execute, session_limits
from mpc_credit.errors import DataError, MpcCreditError, SessionError, TimedOutError
from mpc_credit.scorecard.reveal import Result, result_fields

log = logging.getLogger("mpc_credit.daemon")
Outcome = Result | Trained | Pending | None  # a session's outcome at this party
SHUTDOWN_GRACE = 5.0  # seconds for MPyC's closing barrier
WATCH_EVERY = 0.05  # seconds between the watchdog's looks at the links
PAUSED = 2.0  # seconds between two looks: this party itself was not running (SIGSTOP, starved)
PEER_REPORT_WAIT = 0.5  # seconds to wait for the report of a peer that closed its link
CONNECT_SLACK = 0.5  # seconds: another party's connect timeout this close to ours is ours too


class SessionRunner:
    """Runs this party's side of accepted sessions, one at a time."""

    def __init__(
        self,
        party: str,
        cons: Consortium,
        listen: str,
        tls: TlsContexts | None,
        data: LocalData,
        link: MqttLink,
        audit: DaemonAudit,
        ledger: QueryLedger,
        locals_: MutableMapping[str, LocalClient],
        training: TrainingSide,
        publishing: PublishingSide,
    ) -> None:
        self.party, self.cons, self.listen, self.tls = party, cons, listen, tls
        self.training, self.publishing = training, publishing
        self._crowded = 0  # connections the last failed session's MPC port turned away
        self.pid = cons.party(party).pid
        self.data, self.link, self.audit, self.ledger = data, link, audit, ledger
        self.locals = locals_
        self.sessions_run = 0
        self.stalls = StallBook()  # who left sessions waiting (daemon/stalls.py)
        self._looked, self._gap = time.monotonic(), 0.0  # the watchdog's last look, the gap before
        self._unjoined: list[str] = []  # the peers not joined at its last look while connecting

    async def run(self, s: Session) -> None:
        """Run `s` to its end; never raises (an internal error aborts the session)."""
        try:
            await self._run(s)
        except Exception as exc:
            log.exception("session %s: internal error", s.sid)
            with contextlib.suppress(Exception):
                self.finish(s, None, SessionError(f"party {self.party}: internal error: {exc}"))

    async def _run(self, s: Session) -> None:
        local = self.locals.get(s.sid)
        self._drop_if_stalling(s)
        s.connect_by = time.time() + self.cons.policy.connect_seconds
        await until(s.all_acked, s.aborted, timeout=s.connect_left())
        missing = [p for p in s.parties if p not in s.ports]
        if not s.aborted.is_set() and missing:
            s.abort(self._too_late(s, missing, "accept"))
        if s.aborted.is_set():
            self._release(s)
            await self._fail(s, self._as_stall(s, s.error, missing))
            return
        if local is not None:
            local.send("progress", message="all parties accepted; connecting")
        result, error = await self._secure_part(s, local)
        if error is not None:
            s.abort(error)
            await self._fail(s, error)
            return
        # Finished here: report done; the result is released only when all are done.
        s.phase = "finishing"
        s.finished(self.party)
        await self.link.report(s.sid, DONE)
        if local is not None and result is not None:
            local.send("progress", message="result received; waiting for every party to finish")
        await until(s.all_done, s.aborted, timeout=s.remaining())
        if s.all_done.is_set():
            self.finish(s, result, None)
            return
        if not s.aborted.is_set():
            late = ", ".join(p for p in s.parties if p not in s.done)
            s.abort(TimedOutError(f"party {late} did not finish before the deadline"))
        self.finish(s, None, s.error or SessionError(f"party {self.party}: session aborted"))

    def _release(self, s: Session) -> None:
        """A training session aborted before this party connected released nothing: its
        privacy charge is given back."""
        if isinstance(s.req, TrainRequest):
            try:
                self.training.refund(s.req)
            except (OSError, DataError) as exc:  # unwritable, or made malformed meanwhile
                log.error("session %s: privacy charge kept: %s", s.sid, exc)

    def _drop_if_stalling(self, s: Session) -> None:
        """A session queued before its requester reached `max_stalls` is not waited for."""
        now, requester = time.time(), s.req.requester
        times = self.stalls.times().get(requester, ())
        refusal = stalls.refusal(requester, times, self.cons.policy.max_stalls, now)
        if refusal is not None:
            s.abort(PolicyRefusal(self.party, refusal))

    def _too_late(self, s: Session, names: list[str], verb: str) -> TimedOutError:
        """`names` did not `verb` in time: a stall when the connect window ended first."""
        if s.connect_by < s.req.deadline:
            return ConnectTimeout(names, self.cons.policy.connect_seconds)
        return TimedOutError(f"party {', '.join(names)} did not {verb} before the deadline")

    def _as_stall(
        self, s: Session, error: SessionError | None, names: list[str]
    ) -> SessionError | None:
        """An abort within CONNECT_SLACK of the connect window's end, whatever its cause
        (another party's own timeout, or its link closing, comes a few ms earlier), while
        `names` had not acknowledged or joined: they stalled the session."""
        near = time.time() >= s.connect_by - CONNECT_SLACK and s.connect_by < s.req.deadline
        if not (names and near) or isinstance(error, (ConnectTimeout, PolicyRefusal)):
            return error
        if self._crowded:  # they may have been crowded out: not counted as their stall
            return error
        return ConnectTimeout(names, self.cons.policy.connect_seconds)

    async def _fail(self, s: Session, error: SessionError | None) -> None:
        """Tell the others (unless they told us), audit, answer the local client."""
        error = error or SessionError(f"party {self.party}: session aborted")
        if isinstance(error, ConnectTimeout):
            self.stalls.record(s.req.requester, error.stalled, time.time())
        if not s.remote:
            await self.link.report(s.sid, FAILED, reason=public(error, self.party), kind=error.kind)
        self.finish(s, None, error)

    async def _secure_part(
        self, s: Session, local: LocalClient | None
    ) -> tuple[Outcome, SessionError | None]:
        """The MPC: the result (None for a non-receiver), or why it failed."""
        s.phase = "connecting"
        addresses = [(self.cons.party(p).host, s.ports[p]) for p in s.parties]
        mpc = make_runtime(self.pid, addresses, ssl=self.tls is not None)
        install_mpc_guard()
        MPC_FAILURES.clear()
        asyncio.get_running_loop().set_exception_handler(quiet_exception_handler)
        task = asyncio.ensure_future(self._compute(s, mpc, local))
        self._looked, self._gap, self._unjoined = time.monotonic(), 0.0, []
        watchdog = asyncio.ensure_future(self._watch(s, mpc))
        try:
            await until_task(task, s.aborted, timeout=s.remaining())
        finally:
            watchdog.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        error = self._error_of(s, task, mpc)
        if isinstance(error, LinkClosedError):
            # the peer that closed its link reports why (say, its certificate was revoked)
            await until(s.aborted, timeout=PEER_REPORT_WAIT)
            if s.remote and s.error is not None:
                error = s.error
        if error is not None:
            self._crowded = crowded(mpc)
            teardown_runtime(mpc)
            error = error.with_traceback(None)  # its frames would keep what a peer sent alive
            if s.phase == "connecting" and not self._paused():
                error = self._as_stall(s, error, self._unjoined)
            return None, error
        return task.result(), None

    def _error_of(self, s: Session, task: asyncio.Future[Any], mpc: Any) -> SessionError | None:
        if task.done() and not task.cancelled():
            exc = task.exception()
            if exc is None:
                return None
            if isinstance(exc, SessionError):
                return exc
            gone = unconnected_peers(mpc)
            if gone:  # a send to a peer that already left: a knock-on of that peer's failure
                names = ", ".join(s.parties[p] for p in gone)
                return LinkClosedError(f"party {names} closed its MPC link")
            error = SessionError(f"party {self.party}: {type(exc).__name__}: {exc}")
            error.__cause__ = exc  # its category for the public reason
            return error
        late = s.remote and s.error is not None and s.error.kind == "timeout"
        if s.aborted.is_set() and s.error is not None and not (late and s.remaining() <= 0.5):
            return s.error
        # our own deadline, or another party's at about the same time: our view says who stalled
        return TimedOutError(self._deadline_reason(s, mpc))

    def _paused(self) -> bool:
        """This party itself could not run for a while just now (SIGSTOP, starved)."""
        return max(self._gap, time.monotonic() - self._looked) > PAUSED

    def _deadline_reason(self, s: Session, mpc: Any) -> str:
        paused = max(self._gap, time.monotonic() - self._looked)
        if paused > PAUSED:  # just now: the deadline passed while this party could not run
            return f"party {self.party} could not run for {paused:.1f} s and missed the deadline"
        if s.phase == "connecting":
            names = [s.parties[p] for p in unconnected_peers(mpc)]
            if names:
                return f"party {', '.join(names)} did not connect before the deadline"
        stalled = stalled_peer(mpc) if s.phase == "computing" else None
        if stalled is not None:
            return f"deadline passed waiting for party {s.parties[stalled]} (at party {self.party})"
        return f"deadline passed while {s.phase} (at party {self.party})"

    async def _watch(self, s: Session, mpc: Any) -> None:
        """Abort the session when an MPC link drops or an MPyC coroutine fails."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = time.monotonic()
            self._looked, self._gap = now, now - self._looked
            if MPC_FAILURES:
                s.abort(self._mpc_failure(s, mpc, MPC_FAILURES[0]))
                return
            if s.phase == "connecting" and self._connect_window_over(s, mpc):
                return
            if s.phase == "computing":
                gone = lost_peers(mpc)
                if gone:
                    # the peer's own report (deadline, failure, last will) explains it best
                    await until(s.aborted, timeout=0.3)
                    names = ", ".join(s.parties[p] for p in gone)
                    if s.remaining() <= 0.5:
                        s.abort(
                            TimedOutError(f"deadline passed; party {names} closed its MPC link")
                        )
                    lost = SessionError(f"lost the MPC connection to party {names}")
                    lost.__cause__ = ConnectionResetError()  # public reason: MPC link lost
                    s.abort(lost)
                    return

    def _mpc_failure(self, s: Session, mpc: Any, exc: BaseException) -> SessionError:
        """Why an MPyC coroutine failed: a refused link says why itself; a coroutine that
        tripped over a link already gone (its protocol dropped) is a knock-on of that loss."""
        if isinstance(exc, SessionError):
            return exc
        gone = lost_peers(mpc) or unconnected_peers(mpc)
        if gone:
            names = ", ".join(s.parties[p] for p in gone)
            lost = SessionError(f"lost the MPC connection to party {names}")
            lost.__cause__ = ConnectionResetError()  # public reason: MPC link lost
            return lost
        return SessionError(f"party {self.party}: MPC error: {type(exc).__name__}: {exc}")

    def _connect_window_over(self, s: Session, mpc: Any) -> bool:
        """Abort when the connect window passed; else note who has not joined yet (whom an
        abort near the window's end names, `_as_stall`)."""
        if s.connect_left() <= 0 < s.remaining():
            s.abort(self._connect_timeout(s, mpc))
            return True
        if not s.aborted.is_set():
            self._unjoined = [s.parties[p] for p in unconnected_peers(mpc)]
        return False

    def _connect_timeout(self, s: Session, mpc: Any) -> TimedOutError:
        """The connect window passed: the peers not joined stalled the session, unless this
        party itself could not run meanwhile (SIGSTOP, starved)."""
        if self._gap > PAUSED:
            return TimedOutError(
                f"party {self.party} could not run for {self._gap:.1f} s and missed the "
                "connect window"
            )
        names = [s.parties[p] for p in unconnected_peers(mpc)]
        seconds = self.cons.policy.connect_seconds
        if not names:  # every link up, the hellos not yet through
            return TimedOutError(f"connecting took over {seconds:g} s (at party {self.party})")
        turned = crowded(mpc)
        if turned:  # not a stall of theirs for sure: they may have been crowded out
            return TimedOutError(
                f"party {', '.join(names)} did not connect within {seconds:g} s; party "
                f"{self.party}'s MPC port turned away {turned} connection(s) from an address "
                "those parties share"
            )
        return ConnectTimeout(names, seconds)

    async def _compute(self, s: Session, mpc: Any, local: LocalClient | None) -> Outcome:
        """Connect, check the session, then score or train."""
        t0 = time.perf_counter()
        with link_failures():
            limits = self._limits(s, mpc)
            await connect_runtime(mpc, self.listen, self.tls, names=s.parties, limits=limits)
        s.phase = "computing"
        t1 = time.perf_counter()
        if local is not None:
            local.send("progress", message=f"connected to all parties in {1000 * (t1 - t0):.0f} ms")
        with link_failures():
            await agree_session(mpc, s.sid, s.parties)
        if isinstance(s.req, TrainRequest):
            result: Outcome = await self.training.run(mpc, s)
        elif isinstance(s.req, PublishRequest):
            result = await self.publishing.run(mpc, s.sid, s.req, list(s.parties))
        else:
            result = await self._score(s, mpc)
        s.phase = "finishing"
        await close_runtime(mpc, SHUTDOWN_GRACE)
        if local is not None:
            local.send(
                "progress", message=f"secure computation done in {time.perf_counter() - t1:.3f} s"
            )
        return result

    async def _score(self, s: Session, mpc: Any) -> Result | None:
        """Share the batch ids if needed, run the scoring protocol."""
        req = s.req
        assert isinstance(req, Request)
        if req.ids is None:
            receiver = s.parties.index(req.receiver)
            with link_failures():
                ids = await share_ids(mpc, receiver, s.ids, req.count, req.receiver)
                if len(ids) != req.count or ids_digest(ids) != req.batch_digest:
                    raise SessionError(
                        f"the ids sent by {req.receiver} do not match the request's signed "
                        "count and digest"
                    )
            self._admit_batch(s, ids)
            s.ids = ids
        assert s.ids is not None
        return await execute(self._prepare(s, s.ids), mpc)

    def _admit_batch(self, s: Session, ids: list[str]) -> None:
        """A batch's ids, once they arrived: within the per-applicant limit, then counted
        and audited (write-ahead) before they are scored."""
        now = time.time()
        refusal = check_applicants(ids, self.ledger, self.cons.policy, now)
        if refusal is not None:
            raise PolicyRefusal(self.party, refusal)
        self.audit.applicants(s.sid, ids)  # AuditError: the batch is not scored unaudited
        self.ledger.add_applicants(ids, now)

    def _limits(self, s: Session, mpc: Any) -> LinkLimits | None:
        """What each peer may make this party hold in a scoring session (engine/session.py);
        None, the links' ceilings, for a training session."""
        req = s.req
        if not isinstance(req, Request):
            return None
        model = self.data.models[(req.model_id, req.mode)]
        return session_limits(mpc, self._spec(s), model, req.count)

    def _prepare(self, s: Session, ids: list[str]) -> Prepared:
        """The engine's input from the cached model and table (no file I/O per session)."""
        req = s.req
        assert isinstance(req, Request)
        spec = self._spec(s)
        try:
            model = self.data.models[(req.model_id, req.mode)]
            return assemble(spec, model, list(ids), self.data.table(req.model_id, req.mode))
        except MpcCreditError as exc:
            raise SessionError(f"party {self.party}: {exc}") from exc  # the cause: its category

    def _spec(self, s: Session) -> SessionSpec:
        """This party's engine view of scoring session `s`."""
        req = s.req
        assert isinstance(req, Request)
        owner = self.publishing.book.owner_of(req.model_id)
        return SessionSpec(
            session_id=req.session,
            party=self.party,
            parties=s.parties,
            mode=req.mode,  # type: ignore[arg-type]
            reveal=req.reveal,  # type: ignore[arg-type]
            receiver=req.receiver,
            model_owner=owner,
        )

    def finish(self, s: Session, result: Outcome, error: SessionError | None) -> None:
        """End a session: audit, hand the result (receiver) or the reason to the local client."""
        s.phase = "ended"
        seconds = round(time.perf_counter() - s.t0, 4)
        local = self.locals.pop(s.sid, None)
        self.sessions_run += 1
        if error is not None:
            log.info("session %s aborted: %s", s.sid, error)
            self.audit.ended(
                s.req,
                "aborted",
                str(error),
                kind=error.kind,
                seconds=seconds,
                port=s.port,
                heads=s.heads_record(),
                **stall_facts(error),
            )
            if local is not None:
                local.fail(error)
            if isinstance(s.req, PublishRequest):
                self.publishing.forget(s.sid)
            return
        if isinstance(result, Pending):  # every party is done: the version is taken
            error = self._commit(result)
            if error is not None:
                self.audit.ended(s.req, "aborted", str(error), kind=error.kind, seconds=seconds)
                if local is not None:
                    local.fail(error)
                return
        received = result is not None
        heads = s.heads_record()  # the others' audit heads: evidence against a cut or rewrite
        self.audit.ended(
            s.req, "done", seconds=seconds, port=s.port, received=received, heads=heads
        )
        if local is None:
            return
        if result is None:
            local.fail(SessionError("this party received no result"))
        elif isinstance(result, Trained):
            assert isinstance(s.req, TrainRequest)
            local.finish(
                "result", session=s.sid, seconds=seconds, **self.training.answer(result, s.req)
            )
        elif isinstance(result, Pending):
            local.finish("result", session=s.sid, seconds=seconds, model=result.req.record.ref)
        else:
            assert isinstance(s.req, Request)
            local.finish(
                "result",
                session=s.sid,
                seconds=seconds,
                model=s.req.model_id,  # every result names the version and digest it came from
                model_digest=s.req.model_digest,
                **result_fields(result),
            )

    def _commit(self, pending: Pending) -> SessionError | None:
        """Store a published version's files and record here; why not, if that fails."""
        try:
            self.publishing.commit(pending)
        except (MpcCreditError, OSError) as exc:
            log.error("session %s: version not recorded: %s", pending.req.session, exc)
            return SessionError(f"party {self.party} could not record {pending.req.record.ref}")
        return None
