"""Audit truth: timestamps never run backwards, and a log checked against the heads the other
parties recorded of it (a cut tail, a log re-signed with its own key)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium import audit as audit_module
from mpc_credit.consortium.audit import (
    AUDIT_LABEL,
    GENESIS,
    AuditLog,
    encode_line,
    line_hash,
    rejected_record,
    verify,
)
from mpc_credit.consortium.crosscheck import divergence, log_party, recorded_heads
from mpc_credit.consortium.signing import new_signing_key, sign

BANK, TELCO = new_signing_key(), new_signing_key()
DAY = 86_400.0
Edit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def rewrite_log(path: Path, key: Any, edit: Edit) -> None:
    """The log at `path` edited (its lines as dicts), then chained and signed again with
    `key` from the first line: what a party holding its own key can do to its log."""
    lines = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    prev, out = GENESIS, []
    for seq, line in enumerate(edit(lines), 1):
        body = {k: v for k, v in line.items() if k != "sig"} | {"seq": seq, "prev": prev}
        raw = encode_line(sign(AUDIT_LABEL, body, key))
        out.append(raw + b"\n")
        prev = line_hash(raw)
    path.write_bytes(b"".join(out))


def _logs(tmp_path: Path, sessions: int = 4) -> tuple[Path, Path]:
    """bank's log and telco's, telco recording bank's head at the end of each session."""
    bank, telco = tmp_path / "bank.jsonl", tmp_path / "telco.jsonl"
    with AuditLog(bank, "bank", BANK) as b, AuditLog(telco, "telco", TELCO) as t:
        for n in range(sessions):
            for _ in range(3):
                b.append(rejected_record("p/request", b"x", "a line of bank's"))
            seq, digest = b.head
            t.append({"outcome": "done", "session": f"{n:032x}", "heads": {"bank": [seq, digest]}})
    return bank, telco


def _check(bank: Path, telco: Path) -> str:
    """What `audit verify bank --against telco` says beyond bank's own chain."""
    heads = recorded_heads(telco, "bank")
    result = verify(bank, BANK.public_key(), {h.seq for h in heads})
    assert result.ok, result.message
    return divergence(result.lines, result.hashes, heads)


def test_a_good_log_holds_every_head_the_others_recorded(tmp_path: Path) -> None:
    bank, telco = _logs(tmp_path)
    assert [h.seq for h in recorded_heads(telco, "bank")] == [3, 6, 9, 12]
    assert recorded_heads(telco, "telco") == [] and log_party(bank) == "bank"
    assert _check(bank, telco) == ""
    assert verify(telco, TELCO.public_key()).ok


def test_a_cut_tail_is_named(tmp_path: Path) -> None:
    bank, telco = _logs(tmp_path)
    lines = bank.read_bytes().splitlines(keepends=True)
    bank.write_bytes(b"".join(lines[:10]))  # its own chain still verifies
    said = _check(bank, telco)
    assert said.startswith("bank's log ends at entry 10, but telco recorded entry 12 (session ")
    assert said.endswith(": the tail was cut") and "\n" not in said


def test_a_log_re_signed_with_the_partys_own_key_is_named(tmp_path: Path) -> None:
    bank, telco = _logs(tmp_path)
    rewrite_log(bank, BANK, lambda lines: lines[:4] + lines[5:])  # line 5 gone, chain redone
    assert verify(bank, BANK.public_key()).ok
    said = _check(bank, telco)
    assert said.startswith("bank's entry 6 differs from the head telco recorded in session ")
    assert said.endswith("the log was rewritten")


def test_timestamps_moved_back_are_named(tmp_path: Path) -> None:
    bank, _telco = _logs(tmp_path)

    def backdate(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines[6]["ts"] -= 3 * DAY
        return lines

    rewrite_log(bank, BANK, backdate)
    result = verify(bank, BANK.public_key())
    assert not result.ok and result.bad_line == 7 and result.problem == "backdated"
    assert result.lines == 6
    assert result.message.startswith("line 7 is backdated: seq 7 is dated ")
    assert ", before seq 6's " in result.message and result.message.count("Z") == 2


def test_the_writer_never_dates_a_line_before_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bank.jsonl"
    with AuditLog(path, "bank", BANK) as log:
        log.append(rejected_record("p", b"x", "now"))
    first = json.loads(path.read_bytes())["ts"]
    monkeypatch.setattr(audit_module.time, "time", lambda: first - DAY)  # the clock steps back
    with AuditLog(path, "bank", BANK) as log:  # reopened: the last ts comes from the file
        log.append(rejected_record("p", b"x", "a day earlier by the clock"))
        log.append(rejected_record("p", b"x", "still"))
        assert log.head == (3, line_hash(path.read_bytes().splitlines()[-1]))
    stamps = [json.loads(raw)["ts"] for raw in path.read_bytes().splitlines()]
    assert stamps == [first, first, first]
    assert verify(path, BANK.public_key()).ok


def test_heads_recorded_malformed_say_nothing(tmp_path: Path) -> None:
    path = tmp_path / "telco.jsonl"
    with AuditLog(path, "telco", TELCO) as log:
        for heads in ({"bank": [0, "a" * 64]}, {"bank": [2, "A" * 64]}, {"bank": "x"}, []):
            log.append({"outcome": "done", "heads": heads})
        log.append({"outcome": "aborted", "session": "s", "heads": {"bank": [2, "b" * 64]}})
    (head,) = recorded_heads(path, "bank")
    assert (head.seq, head.hash, head.by, head.session) == (2, "b" * 64, "telco", "s")
