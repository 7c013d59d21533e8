"""The tamper-evident audit trail: chained signed lines, write-ahead on a real (full) disk,
bounded records, and the `mpc-credit audit` commands."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mpc_credit.consortium.audit import (
    MAX_REASON,
    REJECTED_FIELDS,
    SESSION_EXTRAS,
    SESSION_FIELDS,
    AuditError,
    AuditLog,
    read_records,
    rejected_record,
    session_record,
    verify,
)
from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.messages import Request, ids_digest, new_request
from mpc_credit.consortium.signing import load_signing_key, new_signing_key
from tests.conftest import MODEL

BANK = new_signing_key()
OTHER = new_signing_key()
OUTCOMES = ("accepted", "done", "accepted", "refused", "accepted", "aborted")


def _request(inline: bool = True) -> Request:
    return new_request(
        BANK,
        requester="bank",
        model_id="german-credit-demo",
        model_digest="d" * 64,
        mode="shared",
        reveal="score",
        ids=["A0191", "A0192"],
        timeout=30.0,
        inline=inline,
    )


def _write(path: Path, n: int = len(OUTCOMES), key=BANK) -> None:  # type: ignore[no-untyped-def]
    with AuditLog(path, "bank", key) as log:
        for i in range(n):
            log.append(session_record(_request(), OUTCOMES[i % len(OUTCOMES)]))


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_round_trip_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "bank" / "audit.jsonl"
    _write(path, 4)
    assert path.stat().st_mode & 0o777 == 0o600
    result = verify(path, BANK.public_key())
    assert result.ok and result.lines == 4
    assert result.head == hashlib.sha256(_lines(path)[-1][:-1]).hexdigest()
    assert result.message.startswith("4 lines, chain and signatures intact")
    with AuditLog(path, "bank", BANK) as log:  # continues the chain on disk
        assert log.seq == 4
        log.append(rejected_record("p/request", b"junk", "not JSON"))
    records = read_records(path)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["outcome"] for r in records] == [*OUTCOMES[:4], "rejected"]
    assert {r["party"] for r in records} == {"bank"} and "sig" not in records[0]
    assert verify(path, BANK.public_key()).lines == 5
    (tmp_path / "empty.jsonl").touch()
    assert verify(tmp_path / "empty.jsonl", BANK.public_key()).lines == 0


def test_every_altered_byte_is_named(tmp_path: Path) -> None:
    """Flip one bit of each byte of line 3 in turn (its newline too): line 3 is named."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    good = _lines(path)
    for pos in range(len(good[2])):
        line = bytearray(good[2])
        line[pos] ^= 0x01
        path.write_bytes(b"".join([*good[:2], bytes(line), *good[3:]]))
        result = verify(path, BANK.public_key())
        assert (result.bad_line, result.problem, result.lines) == (3, "altered", 2), pos


def _swap(i: int, j: int) -> Callable[[list[bytes]], list[bytes]]:
    def edit(lines: list[bytes]) -> list[bytes]:
        lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
        return lines

    return edit


@pytest.mark.parametrize(
    ("edit", "line", "problem"),
    [
        (lambda ls: ls[:2] + ls[3:], 3, "missing"),  # line 3 deleted
        (lambda ls: ls[1:], 1, "missing"),  # the first line deleted
        (lambda ls: ls[:2] + ls[4:], 3, "missing"),  # two lines deleted
        (_swap(3, 4), 3, "out of order"),
        (_swap(2, 5), 2, "out of order"),
        (lambda ls: ls[:3] + ls[1:2] + ls[3:], 4, "out of order"),  # line 2 replayed after 3
        (lambda ls: [*ls[:-1], ls[-1][:-20]], 6, "incomplete"),  # the last line cut short
        (lambda ls: [*ls[:-1], ls[-1][:-1]], 6, "incomplete"),  # only its newline cut
        (lambda ls: [*ls[:3], b" " + ls[3]], 4, "altered"),  # not canonical
        (lambda ls: [*ls[:3], b"\n", *ls[3:]], 4, "altered"),  # an empty line inserted
    ],
    ids=[
        "line-3-deleted",
        "first-line-deleted",
        "two-lines-deleted",
        "adjacent-swap",
        "distant-swap",
        "line-replayed",
        "last-line-cut",
        "final-newline-cut",
        "not-canonical",
        "empty-line",
    ],
)
def test_removed_reordered_or_cut_lines_are_named(
    tmp_path: Path, edit: Callable[[list[bytes]], list[bytes]], line: int, problem: str
) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    path.write_bytes(b"".join(edit(_lines(path))))
    result = verify(path, BANK.public_key())
    assert (result.bad_line, result.problem) == (line, problem), result.message
    assert result.message.startswith(f"line {line} is {problem}: ")


def test_a_line_signed_by_another_party_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path)
    result = verify(path, OTHER.public_key())
    assert (result.bad_line, result.problem) == (1, "altered")
    # the same line 3, re-signed with another party's key
    from mpc_credit.consortium.audit import AUDIT_LABEL, encode_line
    from mpc_credit.consortium.signing import sign

    lines = _lines(path)
    forged = encode_line(sign(AUDIT_LABEL, json.loads(lines[2]), OTHER)) + b"\n"
    assert forged != lines[2]
    path.write_bytes(b"".join([*lines[:2], forged, *lines[3:]]))
    result = verify(path, BANK.public_key())
    assert (result.bad_line, result.detail) == (3, "signature does not match")
    _write(tmp_path / "theirs.jsonl", 2, OTHER)
    with pytest.raises(AuditError, match="not bank's audit line"):
        AuditLog(tmp_path / "theirs.jsonl", "bank", BANK)


def test_opening_refuses_a_broken_tail_and_a_second_writer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, 3)
    with AuditLog(path, "bank", BANK), pytest.raises(AuditError, match="another process"):
        AuditLog(path, "bank", BANK)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(AuditError, match="last line is incomplete"):
        AuditLog(path, "bank", BANK)
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text('{"outcome":"done","session":"x"}\n')
    with pytest.raises(AuditError, match="not bank's audit line"):
        AuditLog(legacy, "bank", BANK)


def test_unauditable_records_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, "bank", BANK) as log:
        log.append({"outcome": "done"})
        with pytest.raises(ValueError, match="reserved"):
            log.append({"seq": 7})
        with pytest.raises(AuditError, match="as JSON"):
            log.append({"outcome": "done", "seconds": float("nan")})
        with pytest.raises(AuditError, match="over the limit"):
            log.append({"outcome": "done", "reason": "x" * 300_000})
        with pytest.raises(AuditError, match="nested deeper"):
            log.append({"outcome": "done", "deep": [[[[[[[[["x"]]]]]]]]]})
        log.append({"outcome": "done"})
    assert verify(path, BANK.public_key()).lines == 2


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 64 KB filesystem (tmpfs), so that writes fail with ENOSPC."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 64 KB tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_refuses_to_audit_and_leaves_the_log_whole(small_disk: Path) -> None:
    path = small_disk / "audit.jsonl"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 48 * 1024)
    written = 0
    with AuditLog(path, "bank", BANK) as log:
        with pytest.raises(AuditError, match="No space left on device"):
            for _ in range(1000):
                log.append(session_record(_request(), "accepted"))
                written += 1
        assert written > 0
        result = verify(path, BANK.public_key())
        assert result.ok and result.lines == written
        assert path.read_bytes().endswith(b"\n")
        ballast.unlink()  # space again: the chain goes on where it stopped
        log.append(session_record(_request(), "accepted"))
    assert verify(path, BANK.public_key()).lines == written + 1
    with AuditLog(path, "bank", BANK) as log:
        assert log.seq == written + 1


APPENDER = """
import sys
from mpc_credit.consortium.audit import AuditLog
from mpc_credit.consortium.signing import load_signing_key
log = AuditLog(sys.argv[1], "bank", load_signing_key(sys.argv[2]))
for _ in range(100_000):
    log.append({"outcome": "accepted", "pad": "x" * 3000})
    print(log.seq, flush=True)
"""


def test_sigkill_while_appending_loses_no_acknowledged_line(tmp_path: Path) -> None:
    """A writer killed mid-stream: every line it had acknowledged is there, the log verifies
    and the chain goes on after a restart."""
    from mpc_credit.consortium.signing import write_signing_key

    path, key_file = tmp_path / "audit.jsonl", tmp_path / "signing.key"
    write_signing_key(key_file, BANK)
    cmd = [sys.executable, "-c", APPENDER, str(path), str(key_file)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        acknowledged = 0
        while acknowledged < 40:
            acknowledged = int(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
    result = verify(path, BANK.public_key())
    assert result.ok and result.lines >= acknowledged
    with AuditLog(path, "bank", BANK) as log:
        log.append({"outcome": "done"})
    assert verify(path, BANK.public_key()).lines == result.lines + 1


def test_rejected_payloads_leave_a_bounded_summary(tmp_path: Path) -> None:
    marker = b"SECRET-FEATURE-VALUE"
    payload = b'{"type":"request","requester":"bank","ids":["' + marker * 524_288 + b'"]}'
    assert len(payload) > 10_000_000
    rec = rejected_record("mpc-credit/request", payload, "bad signature " * 100)
    text = json.dumps(rec)
    assert len(text) < 1024 and b"SECRET" not in text.encode()
    assert rec["size"] == len(payload)
    assert rec["sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(rec["reason"]) == MAX_REASON and set(rec) <= REJECTED_FIELDS
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, "bank", BANK) as log:
        log.append(rec)
    assert path.stat().st_size < 1024 and marker not in path.read_bytes()
    # a small payload's claims are kept only when they look like a name and a session id
    sid = "ab" * 16
    small = json.dumps({"requester": "telco", "session": sid, "x": 1}).encode()
    claims = rejected_record("t", small, "bad signature")
    assert (claims["claimed_requester"], claims["claimed_session"]) == ("telco", sid)
    for hostile in (
        {"requester": "bank\n[red]x", "session": "../../etc"},
        {"requester": "b" * 65, "session": 5},
    ):
        assert set(rejected_record("t", json.dumps(hostile).encode(), "r")) == {
            "outcome",
            "topic",
            "size",
            "sha256",
            "reason",
        }
    assert rejected_record("t" * 10_000, b"\xff\xfe", "")["topic"].endswith("...")


def test_session_records_hold_only_their_documented_fields() -> None:
    inline, batch = _request(inline=True), _request(inline=False)
    listed = SESSION_FIELDS - {"ids_sha256"}
    assert set(session_record(inline, "accepted")) == listed
    assert session_record(inline, "accepted")["ids"] == ["A0191", "A0192"]
    refused = session_record(inline, "refused", "no budget")  # its ids summarized, not listed
    assert set(refused) == SESSION_FIELDS - {"ids"} and refused["count"] == 2
    assert refused["ids_sha256"] == ids_digest(["A0191", "A0192"])
    assert set(session_record(batch, "refused", "no budget")) == listed - {"ids"}
    extras = {"kind": "timeout", "seconds": 1.5, "port": 9, "received": False}
    extras["stalled"] = ["telco"]  # who did not connect in time (daemon/stalls.py)
    ended = session_record(batch, "aborted", "x", heads={"telco": [3, "a" * 64]}, **extras)
    assert set(ended) == listed - {"ids"} | set(SESSION_EXTRAS)
    for bad in (
        {"result": [1, 2]},
        {"rows": "A0191,712"},
        {"received": [[712]]},
        {"seconds": "1"},
        {"port": True},
        {"kind": "whatever"},
        {"heads": {"telco": [3, "A" * 64]}},
        {"heads": {"../x": [3, "a" * 64]}},
        {"heads": {"telco": [True, "a" * 64]}},
        {"stalled": "telco"},
    ):
        with pytest.raises(ValueError, match="not an audit field"):
            session_record(batch, "done", **bad)
    for outcome in ("rejected", "scored"):
        with pytest.raises(ValueError, match="unknown outcome"):
            session_record(batch, outcome)
    assert len(session_record(batch, "aborted", "y" * 5000)["reason"]) == MAX_REASON


def test_read_records_skips_what_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert read_records(path) == []
    _write(path, 4)
    lines = _lines(path)
    path.write_bytes(b"".join([lines[0], b"{not json\n", *lines[1:], b'{"seq":']))
    assert [r["seq"] for r in read_records(path)] == [1, 2, 3, 4]


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def cons_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("c")
    init_consortium(out, MODEL, reveals=("score",), requesters=("bank",))
    return out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mpc_credit", "audit", *args]
    env = {**os.environ, "COLUMNS": "240"}  # a wide table: no cell is folded
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, env=env)


def test_cli_verify(cons_dir: Path) -> None:
    config = str(cons_dir / "bank" / "party.toml")
    path = cons_dir / "bank" / "audit.jsonl"
    _write(path, key=load_signing_key(cons_dir / "bank" / "signing.key"))
    done = _cli("verify", "--config", config)
    assert done.returncode == 0, done.stderr
    assert f"{len(OUTCOMES)} lines, chain and signatures intact" in done.stdout
    lines = _lines(path)
    path.write_bytes(b"".join([lines[0], *lines[2:]]))
    done = _cli("verify", "--config", config)
    assert done.returncode == 6
    assert done.stderr.count("\n") == 1 and "line 2 is missing" in done.stderr
    done = _cli("verify", "--config", str(cons_dir / "telco" / "party.toml"))
    assert done.returncode == 2 and "no audit log" in done.stderr


def test_cli_show(cons_dir: Path) -> None:
    config = str(cons_dir / "bureau" / "party.toml")
    path = cons_dir / "bureau" / "audit.jsonl"
    with AuditLog(path, "bureau", load_signing_key(cons_dir / "bureau" / "signing.key")) as log:
        for outcome in OUTCOMES:
            log.append(session_record(_request(), outcome, "\x1b[2Jbudget spent"))
        log.append(rejected_record("p/request", b'{"requester":"mallory"}', "bad signature"))
    done = _cli("show", "--config", config, "--outcome", "accepted", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and [r["seq"] for r in rows] == [1, 3, 5]
    done = _cli("show", "--config", config, "--requester", "bank", "--since", "2000-01-01")
    assert done.returncode == 0 and "aborted" in done.stdout and "mallory" not in done.stdout
    assert "\x1b" not in done.stdout and "[2J" not in done.stdout
    assert "budget spent" in done.stdout
    done = _cli("show", "--config", config, "--since", "4102444800", "--json")
    assert done.returncode == 0 and done.stdout == ""
    done = _cli("show", "--config", config, "--since", "yesterday")
    assert done.returncode == 2 and "--since" in done.stderr
