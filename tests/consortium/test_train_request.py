"""Training requests: one strict schema on the broker and the control socket, their own
signature label, the consortium policy's trainers and the party's own privacy budget.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium import policy, reasons
from mpc_credit.consortium.audit import TRAIN_RECORD_FIELDS, train_record
from mpc_credit.consortium.broker import mosquitto_acl
from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.control import TRAIN, ControlRequest, parse_control
from mpc_credit.consortium.daemon.train_job import TrainingSide, session_options
from mpc_credit.consortium.fields import MessageError
from mpc_credit.consortium.ledger import QueryLedger, restore
from mpc_credit.consortium.messages import REQUEST_LABEL, Topics, decode_request
from mpc_credit.consortium.policy import NonceCache, check_train
from mpc_credit.consortium.reasons import public_reason
from mpc_credit.consortium.signing import sign
from mpc_credit.consortium.train_request import (
    TRAIN_LABEL,
    TrainJob,
    TrainRequest,
    decode_train_request,
    new_train_request,
)
from mpc_credit.errors import UsageError
from tests.conftest import MODEL
from tests.consortium.members import members

M = members().with_policy(trainers=("bank",))
JOB = TrainJob(name="joint", label="default", cutoff=520, epsilon=1.0)


def signed(signer: str = "bank", job: TrainJob = JOB, **kw: Any) -> TrainRequest:
    return new_train_request(M.keys[signer], requester=signer, job=job, timeout=60.0, **kw)


def check(req: TrainRequest, nonces: NonceCache | None = None) -> reasons.Refusal | None:
    return check_train(req, M.cons, nonces or NonceCache(M.cons.policy.timestamp_window))


def test_a_training_request_round_trips_and_is_accepted() -> None:
    req = signed()
    assert decode_train_request(req.to_json(), M.cons) == req
    assert check(req) is None


def test_the_job_on_the_control_socket_has_the_same_schema() -> None:
    op = ControlRequest(TRAIN, job=JOB, timeout=90.0)
    assert parse_control(op.to_json()) == op
    body = json.loads(op.to_json())
    body["job"]["bins"] = 0
    with pytest.raises(MessageError, match="field 'bins'"):
        parse_control(json.dumps(body))
    body["job"]["bins"], body["job"]["coefficients"] = 10, [1.0]
    with pytest.raises(MessageError, match="unknown field 'coefficients'"):
        parse_control(json.dumps(body))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("epsilon", 0.0, "field 'epsilon'"),
        ("epsilon", 1, "field 'epsilon'"),  # a signed float stays a float
        ("epsilon", 1e3, "field 'epsilon'"),
        ("bins", True, "field 'bins'"),
        ("bins", 101, "field 'bins'"),
        ("cutoff", 520.0, "field 'cutoff'"),
        ("pdo", -20.0, "field 'pdo'"),
        ("sigmoid", "linear", "no DP bound"),  # with an epsilon
        ("sigmoid", "tanh", "field 'sigmoid'"),
        ("newton_steps", 10_000, "field 'newton_steps'"),
        ("name", "x" * 65, "field 'name'"),
        ("label", "a\nb", "field 'label'"),
        ("exclude", "sex", "field 'exclude': expected a list of at most 200"),
        ("exclude", [f"f{i}" for i in range(201)], "field 'exclude': expected a list"),
        ("exclude", ["sex", 1], "field 'exclude': a feature name is not"),
        ("exclude", ["x" * 65], "field 'exclude': a feature name is not"),
        ("exclude", ["se\u202ex"], "field 'exclude': a feature name is not"),  # bidi control
        ("exclude", ["sex", "sex"], "field 'exclude': a feature is listed twice"),
        ("monotone", {"age": "ascending"}, "field 'monotone': expected a list"),
        ("monotone", [["a", "auto"]] * 201, "field 'monotone': expected a list of at most 200"),
        ("monotone", [["age", "ascending", "x"]], "field 'monotone': expected \\[feature"),
        ("monotone", ["age:ascending"], "field 'monotone': expected \\[feature"),
        ("monotone", [["", "ascending"]], "field 'monotone': a feature name is not"),
        ("monotone", [["age", "up"]], "field 'monotone': a trend is not one of"),
        ("monotone", [["age", "auto"], ["age", "none"]], "field 'monotone': a feature is listed"),
        ("c", 0.0, "field 'c'"),
        ("c", 1, "field 'c'"),  # a signed float stays a float
        ("c", 2e6, "field 'c'"),
        ("c", None, "field 'c'"),
        ("clip", 0.001, "field 'clip'"),
        ("clip", 101.0, "field 'clip'"),
        ("clip", 4, "field 'clip'"),
        ("clip", "4.0", "field 'clip'"),
        ("regression", "ridge", "field 'regression'"),
        ("regression", None, "field 'regression'"),
        ("regression", "logistic", "field 'regression': the exact logistic regression has no DP"),
    ],
)
def test_a_job_outside_its_bounds_is_refused(field: str, value: Any, error: str) -> None:
    body = signed().body()
    body["job"][field] = value
    with pytest.raises(MessageError, match=error):
        decode_train_request(json.dumps(body), M.cons)


FULL = TrainJob(
    name="joint",
    label="default",
    cutoff=520,
    bins=8,
    exclude=("personal_status_and_sex", "age_in_years"),
    monotone=(("duration_in_month", "descending"), ("credit_history", "none")),
    c=0.5,
    clip=2.5,
)


def test_the_jobs_feature_and_regression_options_round_trip_signed() -> None:
    logistic = TrainJob(name="joint", label="default", cutoff=520, regression="logistic", c=3.0)
    for job in (FULL, logistic):
        req = signed(job=job)
        assert decode_train_request(req.to_json(), M.cons) == req
        assert check(req) is None  # the signature covers the new fields as sent
    body = json.loads(signed(job=FULL).to_json())["job"]
    assert body["exclude"] == ["personal_status_and_sex", "age_in_years"]
    assert body["monotone"] == [["duration_in_month", "descending"], ["credit_history", "none"]]
    assert (body["c"], body["clip"], body["regression"]) == (0.5, 2.5, "quadratic")
    assert json.loads(signed().to_json())["job"]["clip"] is None
    # the job as a caller builds it from lists is the job decoded: tuples, hashable
    assert TrainJob(**{**body, "exclude": list(FULL.exclude)}) == FULL
    hash(FULL)


def test_a_job_maps_onto_the_sessions_options() -> None:
    o = FULL.options()
    assert o.exclude == FULL.exclude and o.monotone_features == FULL.monotone
    assert (o.c, o.clip, o.woe_clip(), o.regression, o.bins) == (0.5, 2.5, 2.5, "quadratic", 8)
    assert o.trend("duration_in_month") == "descending" and o.trend("other") == "auto"
    d = JOB.options()
    assert (d.exclude, d.monotone_features, d.c, d.clip, d.regression) == (
        (),
        (),
        1.0,
        None,
        "quadratic",
    )


@pytest.mark.parametrize("field", ["exclude", "monotone", "c", "clip", "regression"])
def test_a_job_of_an_older_version_without_the_new_fields_is_refused(field: str) -> None:
    body = signed().body()
    del body["job"][field]
    with pytest.raises(MessageError, match=f"missing field '{field}'"):
        decode_train_request(json.dumps(body), M.cons)


def test_a_party_excludes_the_jobs_and_the_policys_features() -> None:
    m = M.with_policy(prohibited_features=("age_in_years", "foreign_worker", "sex"))
    job = TrainJob(name="j", label="default", cutoff=520, exclude=("telephone", "age_in_years"))
    columns = ["duration_in_month", "Foreign_Worker", "SEX", "telephone", "housing"]
    o = session_options(job, m.cons, columns)
    want = ("telephone", "age_in_years", "foreign_worker", "sex", "Foreign_Worker", "SEX")
    assert o.exclude == want  # the job's, the policy's, and the CSV's spelling of them
    assert o == dataclasses.replace(job.options(), exclude=want)  # nothing else changes
    assert policy.exclusion(job, M.cons) == job.exclude  # no policy: the job's alone
    assert session_options(JOB, m.cons).exclude == m.cons.policy.prohibited_features


def test_the_signature_labels_keep_scoring_and_training_apart() -> None:
    body = signed().body()
    as_scoring = sign(REQUEST_LABEL, body, M.keys["bank"])  # signed under the other label
    refusal = check(TrainRequest.from_dict(as_scoring))
    assert refusal is not None and refusal.category == reasons.BAD_SIGNATURE
    with pytest.raises(MessageError):  # and it is no scoring request either
        decode_request(json.dumps(as_scoring), M.cons)
    assert TRAIN_LABEL != REQUEST_LABEL


def test_only_the_policys_trainers_may_train() -> None:
    refusal = check(signed("bureau"))
    assert refusal is not None and refusal.category == reasons.NOT_ALLOWED
    assert "does not allow 'bureau' to train" in refusal
    assert public_reason(refusal, "telco") == "telco: refused: not allowed by the consortium policy"


def test_freshness_is_the_scoring_requests() -> None:
    nonces = NonceCache(M.cons.policy.timestamp_window)
    req = signed()
    assert check(req, nonces) is None
    nonces.add(req.nonce, req.ts)
    assert check(req, nonces).category == reasons.REPLAYED  # type: ignore[union-attr]
    old = signed(now=time.time() - 3600)
    assert check(old).category == reasons.CLOCK  # type: ignore[union-attr]


def test_the_training_topic_is_parsed_and_only_trainers_may_write_it() -> None:
    topics = Topics("mpc-credit/demo")
    assert topics.parse(topics.train) == ("train",)
    acl = mosquitto_acl(M.cons).split("\n\n")
    bank = next(b for b in acl if "user bank" in b)
    bureau = next(b for b in acl if "user bureau" in b)
    assert "topic write mpc-credit/demo/train" in bank.replace(M.cons.topic_prefix, topics.prefix)
    assert f"topic write {M.cons.topic_prefix}/train" not in bureau
    assert f"topic read {M.cons.topic_prefix}/train" in bureau


def test_the_audit_record_holds_public_facts_only() -> None:
    rec = train_record(signed(), "done", kind="failed", seconds=1.5, received=True)
    assert set(rec) - {"kind", "seconds", "received"} == TRAIN_RECORD_FIELDS
    assert rec["epsilon"] == 1.0 and rec["dp"] is True and rec["job"] == "train"
    assert rec["model_name"] == "joint"


def test_pki_init_writes_trainers_training_data_and_a_budget(tmp_path: Path) -> None:
    from mpc_credit.consortium.create import init_consortium

    train = tmp_path / "bank-train.csv"
    train.write_text("applicant_id,default\nA1,0\n")
    init_consortium(tmp_path, MODEL, trainers=("bank", "telco"), training={"bank": train})
    cons = load_consortium(tmp_path / "consortium.json")
    assert cons.policy.trainers == ("bank", "telco")
    bank = load_party_config(tmp_path / "bank" / "party.toml")
    assert bank.training_data == train.resolve() and bank.privacy_budget == 10.0
    assert bank.privacy_ledger == (tmp_path / "bank" / "privacy.json").resolve()
    assert load_party_config(tmp_path / "telco" / "party.toml").training_data is None
    with pytest.raises(UsageError, match="--trainer 'nobody'"):
        init_consortium(tmp_path / "x", MODEL, trainers=("nobody",))


def test_a_party_refuses_without_training_data_or_past_its_budget(tmp_path: Path) -> None:
    from mpc_credit.consortium.create import init_consortium

    train = tmp_path / "t.csv"
    train.write_text("applicant_id,default\nA1,0\n")
    init_consortium(tmp_path, MODEL, training={"bank": train})
    toml = tmp_path / "bank" / "party.toml"
    toml.write_text(toml.read_text().replace("privacy_budget = 10.0", "privacy_budget = 1.2"))
    telco = TrainingSide(load_party_config(tmp_path / "telco" / "party.toml"))
    refusal = telco.refusal(signed())
    assert refusal is not None and refusal.category == reasons.NO_TRAINING_DATA
    bank = TrainingSide(load_party_config(toml))
    first, second = signed(), signed()
    assert bank.refusal(first) is None
    bank.charge(first)
    refusal = bank.refusal(second)  # 1.0 twice composes past 1.2
    assert refusal is not None and "over its budget of 1.2" in refusal
    assert public_reason(refusal, "bank") == (
        "bank: refused: privacy budget exceeded (its budget: epsilon 1.2 at delta 1e-06)"
    )
    again = TrainingSide(load_party_config(toml))  # the charge is on disk
    assert [r["run"] for r in again.ledger.runs] == [first.session]
    again.refund(first)
    assert TrainingSide(load_party_config(toml)).ledger.runs == []


def test_a_run_without_dp_is_recorded_at_acceptance_and_never_refunded(tmp_path: Path) -> None:
    from mpc_credit.consortium.create import init_consortium

    train = tmp_path / "t.csv"
    train.write_text("applicant_id,default\nA1,0\n")
    init_consortium(tmp_path, MODEL, training={"bank": train})
    bank = TrainingSide(load_party_config(tmp_path / "bank" / "party.toml"))
    req = signed(job=TrainJob(name="joint", label="default", cutoff=520))
    assert bank.refusal(req) is None and bank.charge(req) is None
    bank.refund(req)  # the record says the run was accepted: it stays
    again = TrainingSide(load_party_config(tmp_path / "bank" / "party.toml")).ledger
    assert [(r["run"], r["rho"], r["dp"]) for r in again.runs] == [(req.session, None, False)]
    assert again.no_dp_runs() == 1 and again.spent() == 0.0
    replay = bank.charge(req)
    assert replay is not None and replay.category == reasons.REPLAYED
    rec = train_record(req, "accepted", port=30000)
    assert rec["dp"] is False and rec["epsilon"] is None


def test_training_without_dp_is_the_partys_choice(tmp_path: Path) -> None:
    from mpc_credit.consortium.create import init_consortium

    train = tmp_path / "t.csv"
    train.write_text("applicant_id,default\nA1,0\n")
    init_consortium(tmp_path, MODEL, training={"bank": train})
    toml = tmp_path / "bank" / "party.toml"
    assert load_party_config(toml).allow_no_dp  # the demo consortium of `pki init` allows it
    toml.write_text(toml.read_text().replace("allow_no_dp = true", "allow_no_dp = false"))
    bank = TrainingSide(load_party_config(toml))
    no_dp = signed(job=TrainJob(name="joint", label="default", cutoff=520))
    refusal = bank.refusal(no_dp)
    assert refusal is not None and refusal.category == reasons.NO_DP_NOT_ALLOWED
    assert public_reason(refusal, "bank") == "bank: refused: no-DP training not allowed"
    assert bank.refusal(signed()) is None  # with DP it trains
    assert bank.ledger.runs == []
    toml.write_text(toml.read_text().replace("allow_no_dp = false", 'allow_no_dp = "yes"'))
    with pytest.raises(UsageError, match="allow_no_dp"):
        load_party_config(toml)


def test_a_party_limits_its_training_runs_per_day(tmp_path: Path) -> None:
    from mpc_credit.consortium.create import init_consortium

    train = tmp_path / "t.csv"
    train.write_text("applicant_id,default\nA1,0\n")
    init_consortium(tmp_path, MODEL, training={"bank": train})
    toml = tmp_path / "bank" / "party.toml"
    assert load_party_config(toml).max_training_runs_per_day == 10
    limit = "max_training_runs_per_day = 2"
    toml.write_text(toml.read_text().replace("max_training_runs_per_day = 10", limit))
    old = {"run": "0" * 32, "rho": 0.001, "at": time.time() - 90_000}  # over a day ago
    ledger = tmp_path / "bank" / "privacy.json"
    ledger.write_text(json.dumps({"party": "bank", "runs": [old]}))
    bank = TrainingSide(load_party_config(toml))
    stale = TrainingSide(load_party_config(toml))  # another process on the same ledger
    dp, no_dp = signed(), signed(job=TrainJob(name="joint", label="default", cutoff=520))
    for req in (dp, no_dp):  # runs with and without DP count alike
        assert bank.refusal(req) is None and bank.charge(req) is None
    third = signed()
    refusal = bank.refusal(third)
    assert refusal is not None and refusal.category == reasons.run_limit(2)
    assert public_reason(refusal, "bank") == "bank: refused: training run limit reached (2 per day)"
    late = stale.charge(third)  # its pre-check saw no run; the charge, under the lock, sees two
    assert late is not None and late.category == reasons.run_limit(2)
    assert len(json.loads(ledger.read_text())["runs"]) == 3
    for bad in ("-1", "1.5", '"ten"'):
        toml.write_text(toml.read_text().replace(limit, f"max_training_runs_per_day = {bad}"))
        with pytest.raises(UsageError, match="max_training_runs_per_day"):
            load_party_config(toml)
        toml.write_text(toml.read_text().replace(f"max_training_runs_per_day = {bad}", limit))


def test_privacy_budget_must_be_a_finite_epsilon(tmp_path: Path) -> None:
    from mpc_credit.consortium.create import init_consortium

    init_consortium(tmp_path, MODEL)
    toml = tmp_path / "bank" / "party.toml"
    toml.write_text(toml.read_text().replace("privacy_budget = 10.0", "privacy_budget = -1"))
    with pytest.raises(UsageError, match="privacy_budget"):
        load_party_config(toml)


def test_a_training_requests_nonce_survives_a_restart_and_charges_no_scoring_budget() -> None:
    req = signed()
    rec = {**train_record(req, "accepted", port=30000), "ts": time.time()}
    nonces, ledger = NonceCache(M.cons.policy.timestamp_window), QueryLedger()
    restore([rec, {**train_record(req, "done"), "ts": time.time()}], nonces, ledger)
    assert check(req, nonces).category == reasons.REPLAYED  # type: ignore[union-attr]
    assert ledger.used("bank", time.time()) == 0
