"""Joint training as a consortium job: `train --config` through three real party daemons.

One consortium serves the module: the German credit parties, the bank's training CSV with the
label joined (tests/local/train_inputs.py), bank the only trainer, telco with a privacy budget
of 0.5, and a policy that prohibits two of telco's columns (sex and marital status, age). The
success path trains without DP on the linear sigmoid (fast) and compares the model with the
one-machine `train` on the same files and options (less the prohibited columns): the lender's
secret permutation changes the fixed-point rounding, so the kept features and edges must be
equal and the points within 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.audit import (
    ENVELOPE,
    REJECTED_FIELDS,
    SESSION_EXTRAS,
    TRAIN_RECORD_FIELDS,
    verify,
)
from mpc_credit.consortium.config import load_consortium
from mpc_credit.consortium.requester import train_request
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.consortium.train_request import TRAIN_LABEL, TrainJob, new_train_request
from mpc_credit.errors import RefusedError, SessionError
from mpc_credit.local.train import Training, run_training
from mpc_credit.training.ledger import rho_for
from tests.cluster import NAMES, Cluster
from tests.local.train_inputs import cli, write_inputs

FAST = TrainJob(
    name="joint", label="default", cutoff=520, sigmoid="linear", newton_steps=2, polish_steps=2
)
TELCO_BUDGET = 0.5
PROHIBITED = ("personal_status_and_sex", "age_in_years")  # telco's columns


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("train-inputs"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("consortium"), training={n: inputs[n] for n in NAMES})
    toml = c.config("telco")
    text = toml.read_text()
    assert "privacy_budget = 10.0" in text
    toml.write_text(text.replace("privacy_budget = 10.0", f"privacy_budget = {TELCO_BUDGET}"))
    policy = dataclasses.replace(c.cons.policy, prohibited_features=PROHIBITED)
    dataclasses.replace(c.cons, policy=policy).dump(c.root / "consortium.json")
    c.cons = load_consortium(c.root / "consortium.json")
    assert c.cons.policy.prohibited_features == PROHIBITED
    with c.running() as running:
        yield running


def _train_args(cluster: Cluster, *extra: str) -> list[str]:
    return [
        "train", "--config", str(cluster.config("bank")), "--label", "bank:default",
        "--model-owner", "bank", "--name", "joint", "--cutoff", "520", *extra,
    ]  # fmt: skip


def _features(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in model["features"]}


def _ledger(cluster: Cluster, party: str) -> list[dict[str, Any]]:
    """The runs in the party's privacy ledger (none while it has no file)."""
    path = cluster.root / party / "privacy.json"
    return json.loads(path.read_text())["runs"] if path.exists() else []


def _dp_runs(cluster: Cluster, party: str) -> list[dict[str, Any]]:
    return [r for r in _ledger(cluster, party) if r.get("dp", True)]


async def test_training_through_the_daemons_gives_the_one_machine_model(
    cluster: Cluster, inputs: dict[str, Path], tmp_path: Path
) -> None:
    await cluster.wait_idle()
    fast = ("--no-dp", "--sigmoid", "linear", "--newton-steps", "2", "--polish-steps", "2")
    args = _train_args(cluster, *fast, "--out", "daemons.json")
    async with cluster.sniffing() as broker:
        proc = await asyncio.to_thread(cli, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the broker carried the signed request, acks and ends: no model, no count, no row
    prefix = cluster.cons.topic_prefix
    assert any(t == f"{prefix}/train" for t, _ in broker)
    for topic, payload in broker:
        assert topic.startswith((f"{prefix}/train", f"{prefix}/session/", f"{prefix}/presence/"))
        for secret in (b'"points"', b'"edges"', b'"intercept"', b"A0191", b"credit_amount"):
            assert secret not in payload, (topic, secret)
    assert "trained 'joint' on 1000 rows of bank through the consortium daemons" in proc.stdout
    assert "no differential privacy" in proc.stderr  # --no-dp is stated loudly
    got = json.loads((tmp_path / "daemons.json").read_text())

    local = Training(
        data={n: inputs[n] for n in NAMES},
        lender="bank",
        label="default",
        model_owner="bank",
        options=dataclasses.replace(FAST.options(), exclude=PROHIBITED),  # as the policy says
        out=tmp_path / "local.json",
        ledger_dir=tmp_path / "ledgers",
        budget=10.0,
    )
    await run_training(local)
    want = json.loads((tmp_path / "local.json").read_text())
    assert got["name"] == want["name"] and got["cutoff"] == want["cutoff"]
    g, w = _features(got), _features(want)
    assert list(g) == list(w) and len(g) >= 5  # the same kept features, in order
    assert not set(PROHIBITED) & set(g)
    for name, f in w.items():
        assert g[name]["owner"] == f["owner"]
        assert g[name].get("edges") == f.get("edges"), name
        assert g[name].get("categories") == f.get("categories"), name
        diffs = [abs(a - b) for a, b in zip(g[name]["points"], f["points"])]
        assert len(g[name]["points"]) == len(f["points"]) and max(diffs) <= 1, name

    # every party audited the session before it ran, then its end; public facts only
    for party in NAMES:
        await cluster.audited(party, lambda r: r.get("job") == "train" and r["outcome"] == "done")
        pub = cluster.cons.party(party).public_key
        assert verify(cluster.root / party / "audit.jsonl", pub).ok
        recs = [r for r in cluster.audit(party) if r.get("job") == "train"]
        assert [r["outcome"] for r in recs][-2:] == ["accepted", "done"], (party, recs)
        for r in recs[-2:]:
            assert set(r) <= TRAIN_RECORD_FIELDS | set(SESSION_EXTRAS) | ENVELOPE
            assert r["epsilon"] is None and r["dp"] is False and r["requester"] == "bank"
        assert recs[-1]["received"] is (party == "bank")
        # no DP: nothing charged, but the run is on record (exact statistics went into it)
        runs = _ledger(cluster, party)
        assert [(r["run"], r["rho"], r["dp"]) for r in runs] == [(recs[-1]["session"], None, False)]


async def test_prohibited_and_excluded_features_never_reach_the_model(
    cluster: Cluster, inputs: dict[str, Path], tmp_path: Path
) -> None:
    # on one machine, without exclusions, telco's age and housing are in the model
    local = Training(
        data={n: inputs[n] for n in NAMES},
        lender="bank",
        label="default",
        model_owner="bank",
        options=FAST.options(),
        out=tmp_path / "local.json",
        ledger_dir=tmp_path / "ledgers",
        budget=10.0,
    )
    await run_training(local)
    unrestricted = _features(json.loads((tmp_path / "local.json").read_text()))
    assert {"age_in_years", "housing"} <= set(unrestricted)
    await cluster.wait_idle()
    # through the daemons: the policy's prohibited features and the job's exclusion are out
    job = dataclasses.replace(FAST, exclude=("housing",))
    out = await train_request(cluster.config("bank"), job, timeout=120)
    got = _features(out.model)
    assert got and not {"housing", *PROHIBITED} & set(got)
    assert set(got) == set(unrestricted) - {"housing", "age_in_years"}
    assert out.kept["telco"] and not {"housing", *PROHIBITED} & set(out.kept["telco"])


async def test_a_party_not_allowed_to_train_is_refused_by_every_party(cluster: Cluster) -> None:
    await cluster.wait_idle()
    with pytest.raises(RefusedError, match="does not allow 'bureau' to train"):
        await train_request(cluster.config("bureau"), FAST, timeout=30)
    key = load_signing_key(cluster.root / "bureau" / "signing.key")
    body = new_train_request(key, requester="bureau", job=FAST, timeout=30).body()
    got = await cluster.collect(body, topic="train")
    assert set(got) == set(NAMES)
    for party, status in got.items():
        assert status["phase"] == "refuse"
        assert status["reason"] == f"{party}: refused: not allowed by the consortium policy"
    # a scoring signature does not make a training request
    assert TRAIN_LABEL != "mpc-credit/request@1"


async def test_a_run_past_a_partys_budget_is_refused_naming_it_and_its_budget(
    cluster: Cluster,
) -> None:
    await cluster.wait_idle()
    before = _ledger(cluster, "telco")
    assert not any(r.get("dp", True) for r in before)
    job = TrainJob(name="joint", label="default", cutoff=520, epsilon=1.0, newton_steps=1)
    with pytest.raises(RefusedError) as caught:
        await train_request(cluster.config("bank"), job, timeout=30)
    assert str(caught.value) == (
        f"party telco refused: privacy budget exceeded (its budget: epsilon {TELCO_BUDGET} "
        "at delta 1e-06)"
    )
    assert _ledger(cluster, "telco") == before  # telco's ledger unchanged
    refused = await cluster.audited(
        "telco", lambda r: r.get("job") == "train" and r["outcome"] == "refused"
    )
    assert "over its budget of 0.5" in refused[-1]["reason"]
    # the others charged the run when they accepted it, and gave it back: nothing ran
    sid = refused[-1]["session"]
    for party in ("bank", "bureau"):
        ended = await cluster.audited(
            party, lambda r: r.get("session") == sid and r["outcome"] == "aborted"
        )
        assert "telco refused" in ended[-1]["reason"]
        assert _dp_runs(cluster, party) == [], party


async def test_a_dp_run_charges_every_ledger_and_audits_its_epsilon(cluster: Cluster) -> None:
    await cluster.wait_idle()
    job = TrainJob(
        name="joint", label="default", cutoff=520, epsilon=0.4, newton_steps=1, polish_steps=0
    )
    out = await train_request(cluster.config("bank"), job, timeout=120)
    assert out.epsilon == 0.4 and out.budget == 10.0
    assert out.epsilon_spent is not None and abs(out.epsilon_spent - 0.4) < 1e-3
    assert out.model["features"] and set(out.kept) == set(NAMES)
    for party in NAMES:
        runs = _dp_runs(cluster, party)
        assert [r["run"] for r in runs] == [out.session]
        assert abs(runs[0]["rho"] - rho_for(0.4)) < 1e-12
        recs = await cluster.session_records(party, out.session)
        assert [r["outcome"] for r in recs] == ["accepted", "done"]
        assert all(r["epsilon"] == 0.4 and r["dp"] is True for r in recs)
    # the same run would now take telco past its budget (0.4 twice composes to more than 0.5)
    with pytest.raises(RefusedError, match="telco refused: privacy budget exceeded"):
        await train_request(cluster.config("bank"), job, timeout=30)
    assert [r["run"] for r in _dp_runs(cluster, "telco")] == [out.session]  # unchanged


async def test_a_failing_run_is_aborted_everywhere_with_a_public_reason(cluster: Cluster) -> None:
    await cluster.wait_idle()
    label = "duration_in_month"  # a column of the bank's CSV, but not 0/1
    job = TrainJob(name="joint", label=label, cutoff=520, sigmoid="linear")
    with pytest.raises(SessionError) as caught:
        await train_request(cluster.config("bank"), job, timeout=60)
    # the requester's command gets its own daemon's full reason: file, line, column
    assert f"bank.csv, line 2, column '{label}'" in str(caught.value)
    assert "is not 0 (good) or 1 (bad)" in str(caught.value)
    sid = None
    for party in ("bureau", "telco"):  # the others learnt the party and a category only
        end = await cluster.audited(
            party,
            lambda r: r.get("job") == "train" and r["label"] == label and r["outcome"] == "aborted",
        )
        assert end[-1]["reason"] == "party bank failed: input error in its data file"
        assert sid in (None, end[-1]["session"])
        sid = end[-1]["session"]
    for party in NAMES:  # the run started: its ledger record (--no-dp) and audit stand
        recs = [r["outcome"] for r in await cluster.session_records(party, sid)]
        assert recs == ["accepted", "aborted"], (party, recs)
        assert any(r["run"] == sid and r["dp"] is False for r in _ledger(cluster, party))
    await cluster.wait_idle()  # the daemons serve the next session


async def test_sigterm_drains_a_running_training_session(cluster: Cluster) -> None:
    await cluster.wait_idle()
    telco = cluster.daemons["telco"]

    def progress(message: str) -> None:
        if "connected to all parties" in message and telco.poll() is None:
            telco.send_signal(signal.SIGTERM)

    out = await train_request(cluster.config("bank"), FAST, timeout=120, progress=progress)
    assert out.model["features"] and out.kept["telco"]
    assert telco.wait(20) == 0  # it finished the session, then exited
    recs = [r["outcome"] for r in await cluster.session_records("telco", out.session)]
    assert recs == ["accepted", "done"]
    cluster.start("telco")
    await cluster.wait_idle()


def test_one_machine_options_and_other_roles_are_refused_with_config(
    cluster: Cluster, tmp_path: Path
) -> None:
    args = _train_args(cluster, "--no-dp", "--out", "m.json")
    proc = cli(*args, "--test-ids", "test.txt", "--budget", "3", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--config: --test-ids, --budget belong to a one-machine run" in proc.stderr
    args[args.index("--model-owner") + 1] = "bureau"
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--model-owner bureau: through the daemons the lender and the model owner" in proc.stderr
    assert not (tmp_path / "m.json").exists()


async def test_hostile_payloads_on_the_training_topic_are_dropped_with_a_bounded_trace(
    cluster: Cluster,
) -> None:
    await cluster.wait_idle()
    topic = f"{cluster.cons.topic_prefix}/train"
    body = new_train_request(
        load_signing_key(cluster.root / "bank" / "signing.key"),
        requester="bank",
        job=FAST,
        timeout=30,
    ).body()
    body["job"]["bins"] = 10**9  # out of bounds: never admitted, never answered
    for payload in (b"\xff" * 100, b"[]", json.dumps(body).encode()):
        await cluster.publish(topic, payload)
    for party in NAMES:
        found = await cluster.audited(
            party, lambda r: r["outcome"] == "rejected" and r.get("topic") == topic
        )
        assert all(set(r) - ENVELOPE <= REJECTED_FIELDS for r in found)
        assert not any(
            r.get("job") == "train" and r["outcome"] == "accepted" and r.get("bins") == 10**9
            for r in cluster.audit(party)
        )
    await cluster.wait_idle()
