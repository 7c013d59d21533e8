"""Joint training as a consortium job: `train --config` through three real party daemons.

One consortium serves the module: the German credit parties, the bank's training CSV with the
label joined (tests/local/train_inputs.py), bank the only trainer, telco with a privacy budget
of 0.5. The success path trains without DP on the linear sigmoid (fast) and compares the model
with the one-machine `train` on the same files and options: the lender's secret permutation
changes the fixed-point rounding, so the kept features and edges must be equal and the points
within 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.audit import ENVELOPE, SESSION_EXTRAS, TRAIN_RECORD_FIELDS, verify
from mpc_credit.consortium.requester import train_request
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.consortium.train_request import TRAIN_LABEL, TrainJob, new_train_request
from mpc_credit.errors import RefusedError
from mpc_credit.local.train import Training, train_locally
from tests.cluster import NAMES, Cluster
from tests.local.train_inputs import cli, write_inputs

FAST = TrainJob(
    name="joint", label="default", cutoff=520, sigmoid="linear", newton_steps=2, polish_steps=2
)
TELCO_BUDGET = 0.5


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
    with c.running() as running:
        yield running


def _train_args(cluster: Cluster, *extra: str) -> list[str]:
    return [
        "train", "--config", str(cluster.config("bank")), "--label", "bank:default",
        "--model-owner", "bank", "--name", "joint", "--cutoff", "520", *extra,
    ]  # fmt: skip


def _features(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in model["features"]}


def test_training_through_the_daemons_gives_the_one_machine_model(
    cluster: Cluster, inputs: dict[str, Path], tmp_path: Path
) -> None:
    fast = ("--no-dp", "--sigmoid", "linear", "--newton-steps", "2", "--polish-steps", "2")
    proc = cli(*_train_args(cluster, *fast, "--out", "daemons.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "trained 'joint' on 1000 rows of bank through the consortium daemons" in proc.stdout
    assert "no differential privacy" in proc.stderr  # --no-dp is stated loudly
    got = json.loads((tmp_path / "daemons.json").read_text())

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
    train_locally(local)
    want = json.loads((tmp_path / "local.json").read_text())
    assert got["name"] == want["name"] and got["cutoff"] == want["cutoff"]
    g, w = _features(got), _features(want)
    assert list(g) == list(w) and len(g) >= 5  # the same kept features, in order
    for name, f in w.items():
        assert g[name]["owner"] == f["owner"]
        assert g[name].get("edges") == f.get("edges"), name
        assert g[name].get("categories") == f.get("categories"), name
        diffs = [abs(a - b) for a, b in zip(g[name]["points"], f["points"])]
        assert len(g[name]["points"]) == len(f["points"]) and max(diffs) <= 1, name

    # every party audited the session before it ran, then its end; public facts only
    for party in NAMES:
        pub = cluster.cons.party(party).public_key
        assert verify(cluster.root / party / "audit.jsonl", pub).ok
        recs = [r for r in cluster.audit(party) if r.get("job") == "train"]
        assert [r["outcome"] for r in recs][-2:] == ["accepted", "done"], (party, recs)
        for r in recs[-2:]:
            assert set(r) <= TRAIN_RECORD_FIELDS | set(SESSION_EXTRAS) | ENVELOPE
            assert r["epsilon"] is None and r["requester"] == "bank"
        assert recs[-1]["received"] is (party == "bank")
        assert not (cluster.root / party / "privacy.json").exists()  # no DP: nothing charged


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
    ledger = cluster.root / "telco" / "privacy.json"
    assert not ledger.exists()
    job = TrainJob(name="joint", label="default", cutoff=520, epsilon=1.0, newton_steps=1)
    with pytest.raises(RefusedError) as caught:
        await train_request(cluster.config("bank"), job, timeout=30)
    assert str(caught.value) == (
        f"party telco refused: privacy budget exceeded (its budget: epsilon {TELCO_BUDGET} "
        "at delta 1e-06)"
    )
    assert not ledger.exists()  # telco's ledger unchanged
    refused = await cluster.audited(
        "telco", lambda r: r.get("job") == "train" and r["outcome"] == "refused"
    )
    assert "over its budget of 0.5" in refused[-1]["reason"]
