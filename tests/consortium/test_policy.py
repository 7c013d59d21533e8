"""Budgets and deadlines cannot be talked around: each check fails closed, charges are made at
the party's own clock, the per-applicant limit holds across requesters, and the memory of
what a party accepted survives a restart through its audit records."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc_credit.consortium import policy, reasons
from mpc_credit.consortium.config import load_consortium
from mpc_credit.consortium.ledger import DAY, NonceCache, QueryLedger, record_accepted, restore
from mpc_credit.consortium.messages import REQUEST_LABEL, Request
from mpc_credit.consortium.policy import check_applicants, check_request
from mpc_credit.consortium.reasons import Refusal, public_reason
from mpc_credit.consortium.signing import sign
from mpc_credit.errors import UsageError
from tests.conftest import MODEL
from tests.consortium.members import Members, members

M = members(requesters=("bank", "bureau"))


def check(m: Members, req: Request, ledger: QueryLedger | None = None, **kw: Any) -> Refusal | None:
    nonces = kw.pop("nonces", NonceCache(m.cons.policy.timestamp_window))
    return check_request(req, m.cons, m.models, nonces, ledger=ledger, **kw)


def resigned(m: Members, req: Request, **changes: Any) -> Request:
    """`req` changed and signed again by its requester: only the policy can refuse it."""
    body = {**dataclasses.asdict(req), **changes}
    body["ids"] = list(body["ids"]) if body["ids"] is not None else None
    return Request.from_dict(
        sign(REQUEST_LABEL, {**body, "type": "request"}, m.keys[req.requester])
    )


def category(refusal: Refusal | None) -> str:
    assert refusal is not None, "accepted"
    return refusal.category


def test_a_good_request_is_accepted() -> None:
    assert check(M, M.request()) is None


@pytest.mark.parametrize("field", ["ts", "deadline"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_times_are_refused(field: str, value: float) -> None:
    req = resigned(M, M.request(), **{field: value})
    assert category(check(M, req)) == reasons.MALFORMED


def test_the_window_check_itself_fails_closed_on_nan() -> None:
    """Even without the shape check first, a NaN timestamp is outside every window."""
    nan = resigned(M, M.request(), ts=math.nan)
    refusal = policy._fresh(nan, M.cons.policy, NonceCache(120), time.time())
    assert category(refusal) == reasons.CLOCK


@pytest.mark.parametrize("count", [math.inf, 10**30, 0, -1, True, 1.0])
def test_a_count_outside_its_bounds_is_refused(count: Any) -> None:
    req = dataclasses.replace(M.request(ids=[f"X{i}" for i in range(200)]), count=count)
    assert category(check(M, req)) == reasons.MALFORMED


def test_count_over_the_batch_limit_is_refused_before_the_signature_is_checked() -> None:
    rule = dataclasses.replace(M.cons.policy.requesters["bank"], max_batch=100)
    m = M.with_policy(requesters={"bank": rule})
    unsigned = dataclasses.replace(M.request(ids=[f"X{i}" for i in range(200)]), sig="")
    assert category(check(m, unsigned)) == reasons.BATCH_TOO_LARGE


def test_inline_ids_must_be_as_many_as_the_signed_count() -> None:
    req = resigned(M, M.request(ids=["A1", "A2"]), count=1)
    assert category(check(M, req)) == reasons.MALFORMED
    assert "count and digest" in str(check(M, req))


def test_a_deadline_30_days_out_is_refused() -> None:
    req = M.request(timeout=30 * DAY)
    assert category(check(M, req)) == reasons.DEADLINE
    assert "beyond the policy's 3600 s" in str(check(M, req))


def test_the_deadline_bound_is_measured_from_this_partys_clock() -> None:
    """A request dated 100 s ahead (within the window) cannot stretch the longest session
    (a policy whose decision ceiling is the longest session, so only that bound counts)."""
    now = time.time()
    longest = M.cons.policy.max_session_seconds
    m = M.with_policy(max_decision_seconds=longest)
    ahead = m.request(now=now + 100, timeout=longest)
    assert category(check(m, ahead, now=now)) == reasons.DEADLINE
    behind = m.request(now=now - 100, timeout=longest)
    assert check(m, behind, now=now) is None


def test_a_deadline_ceiling_suits_the_job() -> None:
    """One applicant: max_decision_seconds; a batch: more per applicant, at most the longest
    session; training: the longest session. The refusal names the ceiling."""
    pol = M.cons.policy
    assert policy.deadline_ceiling(pol, 1)[0] == 60
    assert policy.deadline_ceiling(pol, 1000)[0] == pytest.approx(160)
    assert policy.deadline_ceiling(pol, 100_000) == (3600, "max_session_seconds")
    assert policy.deadline_ceiling(pol, None) == (3600, "max_session_seconds")
    assert check(M, M.request(timeout=60.0)) is None
    one = check(M, M.request(timeout=61.0))
    assert category(one) == reasons.DEADLINE
    assert "beyond the policy's 60 s (max_decision_seconds for one applicant)" in str(one)
    ids = [f"A{i:04d}" for i in range(100)]
    assert check(M, M.request(ids=ids, timeout=70.0)) is None
    batch = check(M, M.request(ids=ids, timeout=71.0))
    assert "per_applicant_seconds x 100 applicants" in str(batch)


def test_the_budget_is_charged_at_the_local_clock_not_the_requests() -> None:
    rule = dataclasses.replace(M.cons.policy.requesters["bank"], daily_budget=5)
    m = M.with_policy(requesters={"bank": rule}, max_decision_seconds=300)
    now = time.time()
    ledger = QueryLedger()
    early = m.request(ids=["A1", "A2", "A3", "A4"], now=now - 100, timeout=300)  # 100 s back
    assert check(m, early, ledger, now=now) is None
    record_accepted(early, NonceCache(120), ledger, now=now)
    later = now + DAY - 50  # a day after the request's date, not yet after its acceptance
    assert ledger.used("bank", later) == 4
    refusal = check(m, m.request(ids=["B1", "B2"], now=later), ledger, now=later)
    assert category(refusal) == reasons.DAILY_BUDGET
    assert public_reason(refusal, "telco") == "telco: refused: daily budget exceeded"
    assert (
        check(m, m.request(ids=["B1", "B2"], now=now + DAY + 1), ledger, now=now + DAY + 1) is None
    )


def test_the_per_applicant_limit_holds_across_requesters() -> None:
    m = M.with_policy(per_applicant_daily=2)
    now = time.time()
    ledger = QueryLedger()
    nonces = NonceCache(120)
    for signer in ("bank", "bureau"):
        req = m.request(signer, ids=["A1"], now=now)
        assert check(m, req, ledger, now=now, nonces=nonces) is None
        record_accepted(req, nonces, ledger, now=now)
    third = m.request("bank", ids=["A2", "A1"], now=now)
    refusal = check(m, third, ledger, now=now)
    assert category(refusal) == reasons.PER_APPLICANT and "'A1' was scored 2 times" in refusal
    assert public_reason(refusal, "bank") == "bank: refused: per-applicant limit reached"
    assert "A1" not in public_reason(refusal, "bank")
    assert check(m, m.request("bank", ids=["A2"], now=now), ledger, now=now) is None
    tomorrow = now + DAY + 1
    assert check(m, m.request("bank", ids=["A1"], now=tomorrow), ledger, now=tomorrow) is None


def test_a_batchs_ids_are_checked_once_they_arrived() -> None:
    m = M.with_policy(per_applicant_daily=2)
    ledger = QueryLedger()
    now = time.time()
    ledger.add_applicants(["A1"], now - 10)
    assert check_applicants(["A1", "A2", "A3"], ledger, m.cons.policy, now) is None
    refusal = check_applicants(["A2", "A1", "A1"], ledger, m.cons.policy, now)
    assert category(refusal) == reasons.PER_APPLICANT  # A1 once before, twice more now
    assert check_applicants(["A1"] * 5, ledger, M.cons.policy, now) is None  # no limit set


def _audit(req: Request, outcome: str, ts: float, **extra: Any) -> dict[str, Any]:
    """The fields of a party's audit record that the ledger is rebuilt from."""
    return {
        "ts": ts,
        "outcome": outcome,
        "session": req.session,
        "requester": req.requester,
        "count": req.count,
        "nonce": req.nonce,
        "request_ts": req.ts,
        "ids": list(req.ids) if req.ids is not None else None,
        **extra,
    }


def test_a_replay_after_a_restart_is_refused_and_nothing_is_charged_twice() -> None:
    m = M.with_policy(per_applicant_daily=1)
    now = time.time()
    req = m.request(ids=["A1", "A2"], now=now)
    batch = m.request(ids=[f"B{i}" for i in range(150)], now=now)  # digest only
    records = [
        _audit(req, "accepted", now),
        _audit(req, "done", now + 3),
        _audit(batch, "accepted", now + 4),
        _audit(batch, "done", now + 9, ids=["B0", "B1"]),  # a batch's ids, once they arrived
        {"ts": "garbage", "nonce": 5, "outcome": "done", "count": True},
        _audit(m.request(ids=["C1"]), "refused", now + 10),
    ]
    nonces, ledger = NonceCache(120), QueryLedger()
    restore(records, nonces, ledger, now=now + 20)
    assert category(check(m, req, ledger, now=now + 20, nonces=nonces)) == reasons.REPLAYED
    assert ledger.used("bank", now + 20) == 2 + 150
    assert ledger.applicant_uses("A1", now + 20) == 1
    assert ledger.applicant_uses("B1", now + 20) == 1
    assert ledger.applicant_uses("C1", now + 20) == 0  # refused: not scored
    assert ledger.used("bank", now + 4 + DAY - 1) == 150  # charged when accepted, not when done


def test_a_nonce_whose_time_cannot_be_read_is_kept() -> None:
    req = M.request()
    nonces = NonceCache(120)
    restore([_audit(req, "refused", time.time(), request_ts=math.nan)], nonces, QueryLedger())
    assert nonces.seen(req.nonce)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(list(_audit(M.request(), "done", 0.0))),
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats()
            | st.text(max_size=8)
            | st.lists(st.text(max_size=4), max_size=3),
        )
    )
)
def test_restore_skips_malformed_records(records: list[dict[str, Any]]) -> None:
    restore(records, NonceCache(120), QueryLedger())


def test_per_applicant_daily_is_part_of_the_consortium_file(tmp_path: Path) -> None:
    m = M.with_policy(per_applicant_daily=3)
    m.cons.dump(tmp_path / "consortium.json")
    assert load_consortium(tmp_path / "consortium.json").policy.per_applicant_daily == 3
    data = json.loads((tmp_path / "consortium.json").read_text())
    for bad in (0, True, 1.5, "3", -1):
        data["policy"]["per_applicant_daily"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(UsageError, match=r"policy\.per_applicant_daily: expected a whole"):
            load_consortium(tmp_path / "bad.json")
    data["policy"]["per_applicant_daily"] = None
    data["policy"]["max_session_seconds"] = 30 * DAY
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"policy\.max_session_seconds: expected seconds"):
        load_consortium(tmp_path / "bad.json")


def test_pki_init_sets_the_per_applicant_limit(tmp_path: Path) -> None:
    from mpc_credit.cli.app import main

    args = ["pki", "init", "--out", str(tmp_path), "--model", str(MODEL)]
    assert main([*args, "--per-applicant-daily", "3"]) == 0
    assert load_consortium(tmp_path / "consortium.json").policy.per_applicant_daily == 3


def test_prohibited_features_are_part_of_the_consortium_file(tmp_path: Path) -> None:
    m = M.with_policy(prohibited_features=("personal_status_and_sex", "age_in_years"))
    m.cons.dump(tmp_path / "consortium.json")
    cons = load_consortium(tmp_path / "consortium.json")
    assert cons.policy.prohibited_features == ("personal_status_and_sex", "age_in_years")
    data = json.loads((tmp_path / "consortium.json").read_text())
    del data["policy"]["prohibited_features"]  # a file without it: nothing is prohibited
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_consortium(tmp_path / "old.json").policy.prohibited_features == ()
    for bad, error in (
        ("sex", ": expected a list of at most 200 feature names"),
        ([f"f{i}" for i in range(201)], ": expected a list of at most 200 feature names"),
        (["sex", 3], ": 3 is not a feature name"),
        ([""], ": '' is not a feature name"),
        (["  "], ": '  ' is not a feature name"),
        (["x" * 65], r": 'x+\.\.\. is not a feature name"),
        (["sex\n"], r": 'sex\\n' has a control character"),
        (["sex", "Sex "], ": a feature is listed twice"),
    ):
        data["policy"]["prohibited_features"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(UsageError, match=r"policy\.prohibited_features" + error):
            load_consortium(tmp_path / "bad.json")


def test_prohibited_in_matches_whole_names_ignoring_case_and_spaces() -> None:
    m = M.with_policy(prohibited_features=("sex", "Age_In_Years"))
    names = ["duration", "Sex", "age_in_years", "sex_code", "sex", " SEX ", "Sex"]
    assert policy.prohibited_in(names, m.cons) == ["Sex", "age_in_years", "sex", " SEX "]
    assert policy.prohibited_in(names, M.cons) == []  # no policy, nothing prohibited


def test_pki_init_sets_the_prohibited_features(tmp_path: Path, capsys: Any) -> None:
    from mpc_credit.cli.app import main

    args = ["pki", "init", "--out", str(tmp_path), "--model", str(MODEL)]
    assert main([*args, "--prohibit", "age_in_years", "--prohibit", "foreign_worker"]) == 0
    cons = load_consortium(tmp_path / "consortium.json")
    assert cons.policy.prohibited_features == ("age_in_years", "foreign_worker")
    assert main([*args, "--force", "--prohibit", "sex", "--prohibit", "SEX"]) == 2
    assert "--prohibit: a feature is listed twice" in capsys.readouterr().err
