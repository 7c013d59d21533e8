"""The daemon's inbox and audit trail without processes: hostile payloads are dropped with a
bounded trace, accepted sessions are on disk first and restore counts each once, a batch's
ids survive a restart in bounded lines."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from mpc_credit.consortium.audit import AuditError, read_records, verify
from mpc_credit.consortium.config import Consortium, load_consortium
from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.daemon.audit import REJECTED_BURST, DaemonAudit, Throttle
from mpc_credit.consortium.daemon.inbox import Inbox
from mpc_credit.consortium.ledger import NonceCache, QueryLedger
from mpc_credit.consortium.messages import Presence, Topics, presence
from mpc_credit.consortium.signing import load_signing_key
from tests.conftest import MODEL
from tests.consortium.daemon.test_admission import request

HOSTILE = [
    b'{"count": Infinity}',
    b"[" * 100_000,
    b"\xff\xfe{",
    b'{"ids": ["' + b"A" * 1_000_000 + b'"]}',
    b"",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inbox")
    init_consortium(out, MODEL, requesters=("bank",))
    return out


@pytest.fixture(scope="module")
def cons(root: Path) -> Consortium:
    return load_consortium(root / "consortium.json")


def test_throttle_counts_what_it_holds_back() -> None:
    t = Throttle(10.0, burst=2)
    assert [t.allow("a", now=0.0), t.allow("a", now=1.0)] == [0, 0]
    assert [t.allow("a", now=2.0), t.allow("a", now=3.0)] == [None, None]
    assert t.allow("b", now=3.0) == 0  # per key
    assert t.allow("a", now=10.5) == 2  # a new period: says how many it held back


def test_hostile_payloads_are_dropped_with_a_bounded_trace(
    root: Path, cons: Consortium, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = load_signing_key(root / "telco" / "signing.key")
    audit = DaemonAudit(tmp_path / "audit.jsonl", "telco", key)
    topics = Topics(cons.topic_prefix)
    inbox = Inbox(cons, topics, audit)
    sid = "0" * 32
    with caplog.at_level(logging.INFO, logger="mpc_credit.daemon"):
        for _ in range(10):
            for payload in HOSTILE:
                for topic in (topics.request, topics.presence("bank"), topics.session(sid, "bank")):
                    assert inbox.decode(topic, payload) is None
    assert inbox.dropped == 10 * len(HOSTILE) * 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all(len(x) < 200 for x in lines), lines  # one per kind
    raw = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    assert len(raw) == REJECTED_BURST and all(len(x) < 1024 for x in raw)  # requests only
    assert verify(tmp_path / "audit.jsonl", key.public_key()).ok
    audit.close()


def test_only_a_partys_newest_signed_presence_counts(root: Path, cons: Consortium) -> None:
    topics = Topics(cons.topic_prefix)
    inbox = Inbox(cons, topics, None)  # type: ignore[arg-type]  # presence is never audited
    key = load_signing_key(root / "bank" / "signing.key")
    got = inbox.decode(topics.presence("bank"), presence(key, "bank", "online"))
    assert isinstance(got, Presence) and got.state == "online"
    telco = load_signing_key(root / "telco" / "signing.key")
    assert inbox.decode(topics.presence("bank"), presence(telco, "bank", "offline")) is None


def test_accepted_is_on_disk_first_and_restore_counts_each_session_once(
    root: Path, cons: Consortium, tmp_path: Path
) -> None:
    key = load_signing_key(root / "telco" / "signing.key")
    path = tmp_path / "audit.jsonl"
    inline = request(root, cons, ["A0191", "A0922"])
    batch = request(root, cons, [f"A{i:04d}" for i in range(150)])
    audit = DaemonAudit(path, "telco", key)
    audit.accepted(inline, 12000)
    assert [r["outcome"] for r in read_records(path)] == ["accepted"]  # before it runs
    audit.ended(inline, "done", seconds=0.1, port=12000, received=False)
    audit.accepted(batch, 12001)
    ids = [f"applicant-{i:040d}" for i in range(3000)]  # ~150 KB of ids: several lines
    audit.applicants(batch.session, ids)
    audit.ended(batch, "aborted", "party bank vanished", kind="failed", port=12001)
    audit.close()
    raw = path.read_bytes().splitlines()
    assert len(raw) > 5 and all(len(x) < 100_000 for x in raw)

    nonces, ledger = NonceCache(cons.policy.timestamp_window), QueryLedger()
    again = DaemonAudit(path, "telco", key)  # as a restarted daemon does
    again.restore(nonces, ledger)
    again.close()
    now = time.time()
    assert ledger.used("bank", now) == inline.count + batch.count  # accepted + done: once
    assert nonces.seen(inline.nonce) and nonces.seen(batch.nonce)
    assert ledger.applicant_uses("A0191", now) == 1
    assert all(ledger.applicant_uses(a, now) == 1 for a in (ids[0], ids[1500], ids[-1]))


def test_a_second_writer_is_refused(root: Path, tmp_path: Path) -> None:
    key = load_signing_key(root / "telco" / "signing.key")
    first = DaemonAudit(tmp_path / "audit.jsonl", "telco", key)
    with pytest.raises(AuditError, match="another process"):
        DaemonAudit(tmp_path / "audit.jsonl", "telco", key)
    first.close()
