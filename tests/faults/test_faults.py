"""Faults in the middle of a session, against real party daemons and a real broker.

One consortium serves the module: the embedded broker and three daemon processes on
loopback, bureau's audit log on a small tmpfs of its own so that the last test can fill
its disk. Each test injects one fault while a session runs (SIGKILL or SIGSTOP of a party,
the broker restarted, the audit disk full) and then checks what every party did: the
requester gets a typed failure naming the cause, no party but the receiver ever holds a
result, every audit log verifies and holds the session's lines, and the next request
succeeds with all three parties. /work/notes/faults_table.md lists the observed results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.audit import read_records, verify
from mpc_credit.consortium.config import load_party_config
from mpc_credit.consortium.ledger import APPLICANTS
from mpc_credit.consortium.requester import ScoreOutcome, score_request
from mpc_credit.errors import RefusedError, SessionError, TimedOutError
from tests.cluster import NAMES, Cluster, csv_rows, expected_scores

RECEIVER = "bank"  # the requester: bank's daemon asks, and receives the result
KILLED, STOPPED, DISK = "telco", "bureau", "bureau"  # DISK: whose audit log is on the tmpfs
IDS = ["A0191", "A0922", "A0755"]
BATCH = list(csv_rows("bank"))  # 1000 applicants with reason codes: seconds of MPC
STOP_DEADLINE = 5.0  # seconds: the SIGSTOP session's timeout (acks and links come first)


@dataclass(frozen=True)
class AuditDisk:
    """A small tmpfs for one party's audit log, or why there is none."""

    path: Path | None
    problem: str = ""


@pytest.fixture(scope="module")
def audit_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditDisk]:
    mnt = tmp_path_factory.mktemp("audit-disk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        yield AuditDisk(None, f"cannot mount a small tmpfs: {done.stderr.strip()}")
        return
    try:
        yield AuditDisk(mnt)
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)], check=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, audit_disk: AuditDisk) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("consortium"), reveals=("score", "decision", "reasons"))
    if audit_disk.path is not None:
        toml = c.config(DISK)
        text = toml.read_text()
        assert 'audit = "audit.jsonl"' in text
        toml.write_text(text.replace("audit.jsonl", str(audit_disk.path / "audit.jsonl"), 1))
    c.start_broker()
    c.start()
    try:
        yield c
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(code == 0 for code in codes.values()), f"daemon exit codes {codes}: {c.errors}"


@pytest.fixture(autouse=True)
def healed(cluster: Cluster) -> Iterator[None]:
    """After each test, whatever it did: the broker up, every daemon running and awake."""
    yield
    if cluster.broker is None:
        cluster.start_broker()
    for name, proc in list(cluster.daemons.items()):
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        else:
            cluster.start(name)


# ---------------------------------------------------------------- what the parties recorded


def audit_path(c: Cluster, party: str) -> Path:
    return load_party_config(c.config(party)).audit


def last_seq(c: Cluster, party: str) -> int:
    return max((r["seq"] for r in read_records(audit_path(c, party))), default=0)


def lines(c: Cluster, party: str, sid: str) -> list[dict[str, Any]]:
    """A party's audit records of session `sid`, oldest first."""
    return [r for r in read_records(audit_path(c, party)) if r.get("session") == sid]


def session_since(c: Cluster, seq: int) -> str:
    """The first session the receiver recorded after its audit line `seq`."""
    sids = [
        r["session"]
        for r in read_records(audit_path(c, RECEIVER))
        if r["seq"] > seq and r.get("session")
    ]
    assert sids, f"{RECEIVER} recorded no session after line {seq}"
    return sids[0]


async def ended(c: Cluster, party: str, sid: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The party's records of `sid` once it wrote how the session ended."""
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        got = lines(c, party, sid)
        if got and got[-1]["outcome"] in ("done", "aborted", "refused"):
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{party} recorded no end of session {sid}: {lines(c, party, sid)}")


def intact(c: Cluster, party: str) -> None:
    """The party's audit log verifies: every line whole, signed, chained, in order."""
    result = verify(audit_path(c, party), c.cons.party(party).public_key)
    assert result.ok, f"{party}: {result.message}"


def outcomes(records: list[dict[str, Any]]) -> list[str]:
    """How a party's records of one session went, without its batch-id lines."""
    return [r["outcome"] for r in records if r["outcome"] != APPLICANTS]


async def aborted_everywhere(c: Cluster, sid: str, parties: tuple[str, ...], kind: str) -> None:
    """Each party accepted `sid` (write-ahead), then aborted it with `kind`, holding no result."""
    for party in parties:
        got = await ended(c, party, sid)
        assert outcomes(got) == ["accepted", "aborted"], (party, got)
        assert got[-1]["kind"] == kind, (party, got[-1])
        intact(c, party)


async def score(c: Cluster, ids: list[str], **kw: Any) -> ScoreOutcome:
    kw.setdefault("timeout", 30.0)
    return await score_request(c.config(RECEIVER), ids, **kw)


async def next_request_succeeds(c: Cluster) -> None:
    """All three parties run the next session; the result is right and only at the receiver."""
    await c.wait_idle(timeout=20)
    try:
        out = await score(c, IDS, reveal="decision")
    except SessionError as exc:  # each party's own words are in its audit log
        ends = {n: [r.get("reason") for r in read_records(audit_path(c, n))][-2:] for n in NAMES}
        raise AssertionError(f"the next request failed: {exc}; last audit reasons: {ends}") from exc
    assert out.rows == expected_scores(IDS, "decision")
    for party in NAMES:
        got = await ended(c, party, out.session)
        assert outcomes(got) == ["accepted", "done"], (party, got)
        assert got[-1]["received"] is (party == RECEIVER), (party, got[-1])
        intact(c, party)


@contextlib.asynccontextmanager
async def once_computing(c: Cluster, party: str, act: Callable[[], object]) -> AsyncIterator[None]:
    """Run `act()` once `party` has audited the batch's ids: its MPC scoring starts then."""
    seq = last_seq(c, party)

    async def watch() -> None:
        while not any(
            r["seq"] > seq and r["outcome"] == APPLICANTS
            for r in read_records(audit_path(c, party))
        ):
            await asyncio.sleep(0.02)
        act()

    task = asyncio.ensure_future(watch())
    try:
        yield
        assert task.done(), f"the session ended before {party} started computing"
    finally:
        task.cancel()


# ---------------------------------------------------------------- the faults


async def test_sigkill_of_a_party_mid_session(cluster: Cluster) -> None:
    """The others abort naming the killed party, no result anywhere, every log whole; the
    killed party's log still holds the session it accepted, and it rejoins after a restart."""
    await cluster.wait_idle()
    mark = last_seq(cluster, RECEIVER)
    victim = cluster.daemons[KILLED]
    with pytest.raises(SessionError) as err:
        async with once_computing(cluster, KILLED, victim.kill):
            await score(cluster, BATCH, reveal="reasons")
    assert type(err.value) is SessionError and err.value.exit_code == 3, repr(err.value)
    assert KILLED in str(err.value) and len(str(err.value).splitlines()) == 1
    assert victim.wait(5) == -signal.SIGKILL
    sid = session_since(cluster, mark)
    await aborted_everywhere(cluster, sid, (RECEIVER, "bureau"), "failed")
    for party in (RECEIVER, "bureau"):
        assert KILLED in lines(cluster, party, sid)[-1]["reason"]
    intact(cluster, KILLED)  # written ahead, before the session ran: still there
    assert outcomes(lines(cluster, KILLED, sid)) == ["accepted"]
    cluster.start(KILLED)
    await next_request_succeeds(cluster)


async def test_sigstop_of_a_party_mid_session(cluster: Cluster) -> None:
    """The others abort at the deadline naming the stopped party; once continued, it drops
    the session without a result and rejoins without a restart."""
    await cluster.wait_idle()
    mark = last_seq(cluster, RECEIVER)
    stopped = cluster.daemons[STOPPED]
    stop = partial(stopped.send_signal, signal.SIGSTOP)
    try:
        with pytest.raises(TimedOutError) as err:
            async with once_computing(cluster, STOPPED, stop):
                await score(cluster, BATCH, reveal="reasons", timeout=STOP_DEADLINE)
        assert f"waiting for party {STOPPED}" in str(err.value), str(err.value)
        sid = session_since(cluster, mark)
        await aborted_everywhere(cluster, sid, (RECEIVER, "telco"), "timeout")
        for party in (RECEIVER, "telco"):
            assert f"waiting for party {STOPPED}" in lines(cluster, party, sid)[-1]["reason"]
        assert outcomes(lines(cluster, STOPPED, sid)) == ["accepted"]  # still asleep
    finally:
        stopped.send_signal(signal.SIGCONT)
    await aborted_everywhere(cluster, sid, (STOPPED,), "timeout")
    assert f"{STOPPED} could not run" in lines(cluster, STOPPED, sid)[-1]["reason"]
    await next_request_succeeds(cluster)
    assert cluster.daemons[STOPPED] is stopped and stopped.poll() is None  # never restarted


async def test_broker_restarted_mid_session(cluster: Cluster) -> None:
    """Every party aborts the session when its broker link drops (it could no longer learn
    the others' reports); the daemons reconnect by themselves and the next request runs."""
    await cluster.wait_idle()
    mark = last_seq(cluster, RECEIVER)

    def restart_broker() -> None:
        cluster.stop_broker()
        cluster.start_broker()  # the same port; its retained messages are gone

    with pytest.raises(SessionError) as err:
        async with once_computing(cluster, RECEIVER, restart_broker):
            await score(cluster, BATCH, reveal="reasons")
    assert type(err.value) is SessionError and "broker" in str(err.value), repr(err.value)
    sid = session_since(cluster, mark)
    await aborted_everywhere(cluster, sid, NAMES, "failed")
    await next_request_succeeds(cluster)


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; the ballast file to remove."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
        with pytest.raises(OSError, match="No space left"):
            os.write(fd, b"\0")
    finally:
        os.close(fd)
    return ballast


async def test_full_audit_disk_refuses_the_session(cluster: Cluster, audit_disk: AuditDisk) -> None:
    """A party that cannot write its audit log refuses the session: no party runs it
    unaudited. Refused already when the disk lacks the room to record the session to its
    end, so a full disk never costs a session its end line (the log's last page may have
    room for the accepted line, not for both). With space again, the next request runs and
    the log goes on whole."""
    if audit_disk.path is None:
        pytest.skip(audit_disk.problem)
    await cluster.wait_idle()
    mark = last_seq(cluster, RECEIVER)
    seen: list[str] = []
    ballast = fill(audit_disk.path)
    try:
        with pytest.raises(RefusedError) as err:
            await score(cluster, IDS, timeout=10, progress=seen.append)
        assert err.value.exit_code == 4, repr(err.value)
        assert f"party {DISK} refused: audit log not writable" in str(err.value), str(err.value)
        sid = session_since(cluster, mark)
        await aborted_everywhere(cluster, sid, (RECEIVER, "telco"), "refused")
        assert not any("connect" in m for m in seen), seen  # nobody started the MPC
        assert "accepted" not in outcomes(lines(cluster, DISK, sid))
        intact(cluster, DISK)
    finally:
        ballast.unlink(missing_ok=True)
    await next_request_succeeds(cluster)
