"""Admission without processes: the daemon's decisions on requests, submissions and reports.

A consortium made by `pki init` in a temporary folder, requests signed with its keys, and the
pure functions of mpc_credit.consortium.daemon.admission.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.config import Consortium, load_consortium
from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.daemon import admission
from mpc_credit.consortium.daemon.admission import Here, check_submission, read_status, refusal
from mpc_credit.consortium.messages import MAX_INLINE_IDS, Request, new_request
from mpc_credit.consortium.policy import NonceCache, QueryLedger
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.errors import RefusedError, SessionError, TimedOutError, UsageError
from mpc_credit.scorecard.model import load_model
from tests.conftest import MODEL, OWNERS

IDS = ["A0191", "A0922"]
ONLINE = dict.fromkeys(OWNERS, "online")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("admission")
    init_consortium(out, MODEL, reveals=("score", "decision"), requesters=("bank",))
    return out


@pytest.fixture(scope="module")
def cons(root: Path) -> Consortium:
    return load_consortium(root / "consortium.json")


def here(cons: Consortium, party: str = "bank", **kw: Any) -> Here:
    models = {(cons.models[0].id, "shared"): load_model(MODEL)}
    window = cons.policy.timestamp_window
    return Here(party, cons, models, NonceCache(window), QueryLedger(), **kw)


def request(root: Path, cons: Consortium, ids: list[str] = IDS, **kw: Any) -> Request:
    info = cons.models[0]
    args: dict[str, Any] = dict(
        requester="bank",
        model_id=info.id,
        model_digest=info.digest,
        mode="shared",
        reveal="score",
        ids=ids,
        timeout=30.0,
    )
    args.update(kw)
    return new_request(load_signing_key(root / args["requester"] / "signing.key"), **args)


def test_a_good_request_is_accepted_at_every_party(root: Path, cons: Consortium) -> None:
    req = request(root, cons)
    for party in OWNERS:
        assert refusal(req, here(cons, party), holds_batch=False) is None


def test_the_policy_decides_first(root: Path, cons: Consortium) -> None:
    tampered = Request.from_dict({**request(root, cons).body(), "reveal": "decision"})
    assert "bad signature" in (refusal(tampered, here(cons), holds_batch=True) or "")
    pd = request(root, cons, reveal="pd")
    assert "reveal policy 'pd'" in (refusal(pd, here(cons), holds_batch=True) or "")
    h = here(cons)
    req = request(root, cons)
    h.nonces.add(req.nonce, req.ts)
    assert "nonce" in (refusal(req, h, holds_batch=True) or "")


def test_a_draining_or_full_party_refuses(root: Path, cons: Consortium) -> None:
    req = request(root, cons)
    draining = refusal(req, here(cons, "telco", stopping=True), holds_batch=False)
    assert draining == "party telco is shutting down"
    full = refusal(req, here(cons, queued=16, max_queue=16), holds_batch=False)
    assert full == "16 sessions already queued"
    assert refusal(req, here(cons, queued=15, max_queue=16), holds_batch=False) is None


def test_a_batch_needs_its_ids_at_the_receiver_only(root: Path, cons: Consortium) -> None:
    ids = [f"A{i:04d}" for i in range(1, MAX_INLINE_IDS + 2)]
    req = request(root, cons, ids)
    assert req.ids is None  # a digest only
    assert "batch ids were not submitted" in (refusal(req, here(cons), holds_batch=False) or "")
    assert refusal(req, here(cons), holds_batch=True) is None
    assert refusal(req, here(cons, "bureau"), holds_batch=False) is None


def submission(req: Request, ids: list[str], h: Here, **kw: Any) -> Exception | None:
    args: dict[str, Any] = dict(connected=True, presence=ONLINE, known=None)
    args.update(kw)
    return check_submission(req, ids, h, **args)


def test_a_local_submission_that_can_go_out(root: Path, cons: Consortium) -> None:
    req = request(root, cons)
    assert submission(req, IDS, here(cons), known={*IDS, "A0001"}) is None


def test_local_and_broker_requests_get_the_same_decision(root: Path, cons: Consortium) -> None:
    """The local path refuses exactly what the broker path refuses, with the same reason."""
    cases = [
        request(root, cons),
        request(root, cons, reveal="pd"),
        request(root, cons, timeout=-1),
        request(root, cons, model_digest="ab" * 32),
        Request.from_dict({**request(root, cons).body(), "nonce": "f" * 32}),
    ]
    for req in cases:
        reason = refusal(req, here(cons), holds_batch=True)
        got = submission(req, IDS, here(cons))
        if reason is None:
            assert got is None
        else:
            assert isinstance(got, RefusedError) and str(got) == f"party bank refused: {reason}"


def test_what_only_the_requesters_daemon_checks(root: Path, cons: Consortium) -> None:
    req = request(root, cons)
    other = submission(req, IDS, here(cons, "bureau"))
    assert isinstance(other, UsageError) and "this daemon is bureau's" in str(other)
    offline = submission(req, IDS, here(cons), connected=False)
    assert isinstance(offline, SessionError) and "not connected to the broker" in str(offline)
    absent = submission(req, IDS, here(cons), presence={"bank": "online", "bureau": "draining"})
    assert isinstance(absent, SessionError) and not isinstance(absent, RefusedError)
    assert "bureau (draining), telco (never seen)" in str(absent)
    unknown = submission(req, IDS, here(cons), known={"A0191"}, data_name="bank.csv")
    assert isinstance(unknown, UsageError)
    assert str(unknown) == "applicant 'A0922' is not in bank's file bank.csv"
    two = submission(req, IDS, here(cons), known=set())
    assert "'A0191' and 1 more" in str(two)


def test_a_batch_must_come_with_its_ids(root: Path, cons: Consortium) -> None:
    ids = [f"A{i:04d}" for i in range(1, MAX_INLINE_IDS + 2)]
    req = request(root, cons, ids)
    assert submission(req, ids, here(cons)) is None
    wrong = submission(req, ids[::-1], here(cons))
    assert isinstance(wrong, UsageError) and "digest" in str(wrong)


def test_choose_model(cons: Consortium) -> None:
    assert admission.choose_model(cons, None) == cons.models[0]
    assert admission.choose_model(cons, cons.models[0].id) == cons.models[0]
    with pytest.raises(UsageError, match="'nope' is not registered"):
        admission.choose_model(cons, "nope")
    two = replace(cons, models=(cons.models[0], replace(cons.models[0], id="other")))
    with pytest.raises(UsageError, match="several models"):
        admission.choose_model(two, None)


def test_what_a_report_means(cons: Consortium) -> None:
    port = cons.party("telco").mpc_port
    ack = read_status("telco", {"phase": "ack", "port": port}, cons)
    assert ack is not None and (ack.what, ack.port) == ("ack", port)
    for bad in (port + 1000, True, "1", None):
        out = read_status("telco", {"phase": "ack", "port": bad}, cons)
        assert out is not None and out.what == "abort" and not out.remote
        assert "outside its range" in str(out.error)
    refused = read_status("telco", {"phase": "refuse", "reason": "busy"}, cons)
    assert refused is not None and isinstance(refused.error, RefusedError) and refused.remote
    assert str(refused.error) == "party telco refused: busy"
    painted = read_status("telco", {"phase": "refuse", "reason": "\x1b[31mbusy\x07"}, cons)
    assert painted is not None and str(painted.error) == "party telco refused: busy"
    kinds = {"timeout": TimedOutError, "refused": RefusedError, "failed": SessionError}
    kinds |= {"input": SessionError, "bogus": SessionError}  # another party's input is no usage
    for kind, error in kinds.items():
        failed = read_status("telco", {"phase": "failed", "reason": "x", "kind": kind}, cons)
        assert failed is not None and type(failed.error) is error, kind
        assert str(failed.error) == "party telco failed: x"
    done = read_status("telco", {"phase": "done"}, cons)
    assert done is not None and done.what == "done"
    progress = read_status("telco", {"phase": "progress", "message": 7}, cons)
    assert progress is not None and progress.message == "telco: "
    assert read_status("telco", {"phase": "dance"}, cons) is None


def test_a_refusal_has_a_public_category_and_a_signature_is_checked(
    root: Path, cons: Consortium
) -> None:
    req = request(root, cons)
    assert admission.signed(req, cons)
    for tampered in (replace(req, count=3), replace(req, requester="telco"), replace(req, sig="")):
        assert not admission.signed(tampered, cons)
    assert not admission.signed(replace(req, requester="mallory"), cons)
    why = refusal(req, here(cons, stopping=True), holds_batch=True)
    assert why is not None and why.category == admission.SHUTTING_DOWN
    why = refusal(req, here(cons, queued=16), holds_batch=True)
    assert why is not None and why.category == admission.BUSY
    why = refusal(replace(req, sig=req.sig[:-4] + "AAA="), here(cons), holds_batch=True)
    assert why is not None and why.category == "bad signature"


def test_refusal_takes_the_clock_it_is_given(root: Path, cons: Consortium) -> None:
    req = request(root, cons)
    late = req.ts + cons.policy.timestamp_window + 1
    assert "off this party's clock" in (refusal(req, here(cons), holds_batch=True, now=late) or "")
    assert refusal(req, here(cons), holds_batch=True, now=time.time()) is None
