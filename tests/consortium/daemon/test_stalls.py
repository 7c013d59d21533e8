"""Stalls and fair shares without processes: who stalled, who is refused for it, the queue share.

The pure parts of issue 12's fifth item: `daemon/stalls.py` (the book and its refusal),
`admission.requester_cap` and the share refusal, the policy's and party.toml's new fields,
and the connect timeout's public reason. tests/attacks/test_stall.py runs them in daemons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.daemon import admission, stalls
from mpc_credit.consortium.daemon.session import ConnectTimeout, public, stall_facts
from mpc_credit.consortium.daemon.stalls import STALL_WINDOW, StallBook
from mpc_credit.consortium.reasons import public_reason
from mpc_credit.errors import TimedOutError, UsageError
from tests.conftest import MODEL
from tests.consortium.daemon.test_admission import here, request

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stalls")
    init_consortium(out, MODEL, reveals=("score",), requesters=("bank", "telco"))
    return out


def test_a_requester_is_refused_at_max_stalls_within_the_window() -> None:
    assert stalls.refusal("telco", [NOW - 60, NOW - 30], 3, NOW) is None
    refused = stalls.refusal("telco", [NOW - 60, NOW - 30, NOW - 10], 3, NOW)
    assert refused is not None
    assert refused.category == "requester telco left 3 sessions stalled in the last 10 min"
    assert str(refused).endswith(f"refused for {STALL_WINDOW - 60:.0f} s more")
    assert public_reason(refused, "bank") == f"bank: refused: {refused.category}"
    old = NOW - STALL_WINDOW - 1  # out of the window: it no longer counts
    assert stalls.refusal("telco", [old, NOW - 30, NOW - 10], 3, NOW) is None


def test_the_book_counts_every_staller_and_a_requesters_own_stalls() -> None:
    book = StallBook()
    book.record("bank", ["telco"], NOW)  # telco stalled bank's session: not bank's fault
    book.record("telco", ["telco", "bureau"], NOW + 1)
    assert book.counts == {"telco": 2, "bureau": 1}
    assert {k: list(v) for k, v in book.times().items()} == {"telco": [NOW + 1]}


def test_the_book_is_rebuilt_from_the_audit_records() -> None:
    records: list[dict[str, Any]] = [
        {"outcome": "aborted", "requester": "telco", "stalled": ["telco"], "ts": NOW},
        {"outcome": "aborted", "requester": "bank", "stalled": ["telco"], "ts": NOW},
        {"outcome": "aborted", "requester": "bank", "reason": "x", "ts": NOW},
        {"outcome": "done", "requester": "telco", "stalled": ["telco"], "ts": NOW},
        {"outcome": "aborted", "requester": "telco", "stalled": "telco", "ts": "soon"},
    ]
    book = StallBook()
    book.restore(records)
    assert book.counts == {"telco": 2}
    assert list(book.times()["telco"]) == [NOW]


def test_a_connect_timeout_names_the_stallers_publicly() -> None:
    error = ConnectTimeout(["telco"], 10.0)
    assert isinstance(error, TimedOutError) and error.kind == "timeout"
    assert public(error, "bank") == "bank: party telco did not connect within 10 s"
    assert stall_facts(error) == {"stalled": ["telco"]}
    assert stall_facts(TimedOutError("deadline")) == {}


def test_a_requesters_share_of_the_queue() -> None:
    assert admission.requester_cap(None, 16, {"bank"}) == 16
    assert admission.requester_cap(None, 16, {"bank", "telco"}) == 8
    assert admission.requester_cap(None, 1, {"bank", "telco"}) == 1
    assert admission.requester_cap(3, 16, {"bank", "telco"}) == 3


def test_admission_refuses_past_the_share_and_a_staller(root: Path) -> None:
    cons = load_consortium(root / "consortium.json")
    req = request(root, cons, requester="telco")
    share: dict[str, Any] = {"max_per_requester": 2, "queued": 2}
    full = admission.refusal(req, here(cons, per_requester={"telco": 2}, **share), holds_batch=1)
    assert full is not None
    assert full.category == "requester telco has 2 sessions queued or running (its share)"
    mine = here(cons, per_requester={"bank": 2}, **share)  # another requester's sessions
    assert admission.refusal(req, mine, holds_batch=True) is None
    now = req.ts
    stalled = here(cons, stalls={"telco": [now - 3, now - 2, now - 1]})
    refused = admission.refusal(req, stalled, holds_batch=True, now=now)
    assert refused is not None and "left 3 sessions stalled" in refused


def test_the_new_policy_fields_and_their_defaults(root: Path, tmp_path: Path) -> None:
    pol = load_consortium(root / "consortium.json").policy
    assert (pol.connect_seconds, pol.max_decision_seconds, pol.max_stalls) == (10, 60, 3)
    assert pol.per_applicant_seconds == 0.1
    data = json.loads((root / "consortium.json").read_text())
    data["policy"].update(connect_seconds=2, max_stalls=5)
    (tmp_path / "c.json").write_text(json.dumps(data))
    pol = load_consortium(tmp_path / "c.json").policy
    assert (pol.connect_seconds, pol.max_stalls) == (2.0, 5)
    for field, bad in (("connect_seconds", 0), ("max_decision_seconds", "60"), ("max_stalls", 0)):
        data["policy"][field] = bad
        (tmp_path / "c.json").write_text(json.dumps(data))
        with pytest.raises(UsageError, match=rf"policy\.{field}: expected"):
            load_consortium(tmp_path / "c.json")
        data["policy"].pop(field)


def test_party_toml_may_set_a_requesters_share(root: Path, tmp_path: Path) -> None:
    text = (root / "bank" / "party.toml").read_text()
    assert load_party_config(root / "bank" / "party.toml").max_queue_per_requester is None
    line = 'audit = "audit.jsonl"'
    for value, expected in (("4", 4), ("0", None), ("true", None)):
        toml = root / "bank" / "share.toml"
        toml.write_text(text.replace(line, f"{line}\nmax_queue_per_requester = {value}", 1))
        if expected is None:
            with pytest.raises(UsageError, match="max_queue_per_requester: expected"):
                load_party_config(toml)
        else:
            assert load_party_config(toml).max_queue_per_requester == expected
