"""Running one accepted session: wait for every party's ack, connect, compute, finish.

MPyC keeps its runtime in module globals, so a daemon runs one session at a time (its
queue orders them as the broker delivered the requests, the same order at every party).
A session is of one of two kinds, and only its computation differs: a scoring session runs
`mpc_credit.engine`, a training session `mpc_credit.training` (daemon/train_job.py), each on
the ports every party acknowledged, over mutual TLS;
a watchdog aborts it when an MPC link drops or an MPyC coroutine fails, and the deadline
bounds every wait. A batch's ids, once they arrived over the MPC links, must be as many as
the signed count, match its digest and pass the per-applicant limit; they are audited before
they are scored. The result is released to the local client only when every party reported
done; any abort is reported on the broker (unless learnt from there) with a public reason
only, and audited with the full one.

(A little over 300 lines: a session's life from the acks to its end, with the watchdog and
the deadline's reasons, reads best in one place; what differs per kind is in `_score` and
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
from mpc_credit.consortium.daemon.audit import DaemonAudit
from mpc_credit.consortium.daemon.control import LocalClient
from mpc_credit.consortium.daemon.mqtt import MqttLink
from mpc_credit.consortium.daemon.session import (
    PolicyRefusal,
    Session,
    link_failures,
    public,
    until,
    until_task,
)
from mpc_credit.consortium.daemon.tables import LocalData
from mpc_credit.consortium.daemon.train_job import Trained, TrainingSide
from mpc_credit.consortium.ledger import QueryLedger
from mpc_credit.consortium.messages import DONE, FAILED, ids_digest
from mpc_credit.consortium.policy import check_applicants
from mpc_credit.consortium.train_request import TrainRequest
from mpc_credit.engine.exchange import agree_session, share_ids
from mpc_credit.engine.links import (
    MPC_FAILURES,
    LinkClosedError,
    TlsContexts,
    connect_runtime,
    install_mpc_guard,
    lost_peers,
    quiet_exception_handler,
    stalled_peer,
    teardown_runtime,
    unconnected_peers,
)
from mpc_credit.engine.runtime import close_runtime, make_runtime
from mpc_credit.engine.session import Prepared, SessionSpec, assemble, execute
from mpc_credit.errors import DataError, MpcCreditError, SessionError, TimedOutError
from mpc_credit.scorecard.reveal import Result, result_fields

log = logging.getLogger("mpc_credit.daemon")
SHUTDOWN_GRACE = 5.0  # seconds for MPyC's closing barrier
WATCH_EVERY = 0.05  # seconds between the watchdog's looks at the links
PAUSED = 2.0  # seconds between two looks: this party itself was not running (SIGSTOP, starved)
PEER_REPORT_WAIT = 0.5  # seconds to wait for the report of a peer that closed its link


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
    ) -> None:
        self.party, self.cons, self.listen, self.tls = party, cons, listen, tls
        self.training = training
        self.pid = cons.party(party).pid
        self.data, self.link, self.audit, self.ledger = data, link, audit, ledger
        self.locals = locals_
        self.sessions_run = 0
        self._looked, self._gap = time.monotonic(), 0.0  # the watchdog's last look, the gap before

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
        await until(s.all_acked, s.aborted, timeout=s.remaining())
        if not s.aborted.is_set() and not s.all_acked.is_set():
            missing = ", ".join(p for p in s.parties if p not in s.ports)
            s.abort(TimedOutError(f"party {missing} did not accept before the deadline"))
        if s.aborted.is_set():
            self._release(s)
            await self._fail(s, s.error)
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

    async def _fail(self, s: Session, error: SessionError | None) -> None:
        """Tell the others (unless they told us), audit, answer the local client."""
        error = error or SessionError(f"party {self.party}: session aborted")
        if not s.remote:
            await self.link.report(s.sid, FAILED, reason=public(error, self.party), kind=error.kind)
        self.finish(s, None, error)

    async def _secure_part(
        self, s: Session, local: LocalClient | None
    ) -> tuple[Result | Trained | None, SessionError | None]:
        """The MPC: the result (None for a non-receiver), or why it failed."""
        s.phase = "connecting"
        addresses = [(self.cons.party(p).host, s.ports[p]) for p in s.parties]
        mpc = make_runtime(self.pid, addresses, ssl=self.tls is not None)
        install_mpc_guard()
        MPC_FAILURES.clear()
        asyncio.get_running_loop().set_exception_handler(quiet_exception_handler)
        task = asyncio.ensure_future(self._compute(s, mpc, local))
        self._looked, self._gap = time.monotonic(), 0.0
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
            teardown_runtime(mpc)
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
                exc = MPC_FAILURES[0]
                if not isinstance(exc, SessionError):  # a refused link says why itself
                    exc = SessionError(
                        f"party {self.party}: MPC error: {type(exc).__name__}: {exc}"
                    )
                s.abort(exc)
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

    async def _compute(
        self, s: Session, mpc: Any, local: LocalClient | None
    ) -> Result | Trained | None:
        """Connect, check the session, then score or train."""
        t0 = time.perf_counter()
        with link_failures():
            await connect_runtime(mpc, self.listen, self.tls, names=s.parties)
        s.phase = "computing"
        t1 = time.perf_counter()
        if local is not None:
            local.send("progress", message=f"connected to all parties in {1000 * (t1 - t0):.0f} ms")
        with link_failures():
            await agree_session(mpc, s.sid, s.parties)
        if isinstance(s.req, TrainRequest):
            result: Result | Trained | None = await self.training.run(mpc, s)
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
        assert not isinstance(req, TrainRequest)
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

    def _prepare(self, s: Session, ids: list[str]) -> Prepared:
        """The engine's input from the cached model and table (no file I/O per session)."""
        req = s.req
        assert not isinstance(req, TrainRequest)
        info = self.cons.model(req.model_id)
        assert info is not None
        spec = SessionSpec(
            session_id=req.session,
            party=self.party,
            parties=s.parties,
            mode=req.mode,  # type: ignore[arg-type]
            reveal=req.reveal,  # type: ignore[arg-type]
            receiver=req.receiver,
            model_owner=info.owner,
        )
        try:
            model = self.data.models[(req.model_id, req.mode)]
            return assemble(spec, model, list(ids), self.data.table(req.model_id, req.mode))
        except MpcCreditError as exc:
            raise SessionError(f"party {self.party}: {exc}") from exc  # the cause: its category

    def finish(
        self, s: Session, result: Result | Trained | None, error: SessionError | None
    ) -> None:
        """End a session: audit, hand the result (receiver) or the reason to the local client."""
        s.phase = "ended"
        seconds = round(time.perf_counter() - s.t0, 4)
        local = self.locals.pop(s.sid, None)
        self.sessions_run += 1
        if error is not None:
            log.info("session %s aborted: %s", s.sid, error)
            self.audit.ended(
                s.req, "aborted", str(error), kind=error.kind, seconds=seconds, port=s.port
            )
            if local is not None:
                local.fail(error)
            return
        self.audit.ended(s.req, "done", seconds=seconds, port=s.port, received=result is not None)
        if local is None:
            return
        if result is None:
            local.fail(SessionError("this party received no result"))
        elif isinstance(result, Trained):
            assert isinstance(s.req, TrainRequest)
            local.finish(
                "result", session=s.sid, seconds=seconds, **self.training.answer(result, s.req)
            )
        else:
            local.finish("result", session=s.sid, seconds=seconds, **result_fields(result))
