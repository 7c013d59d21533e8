"""The model registry through real daemons and a broker: publish, approve, serve side by side,
promote, retire, restart; the broker never carries a bin edge or a point."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.control import DECIDE, MODELS, PUBLISH, SET_STATUS, ControlRequest
from mpc_credit.consortium.requester import registry_op, score_request
from mpc_credit.errors import RefusedError, UsageError
from mpc_credit.scorecard.model import HiddenFeature, dump_model, load_model, to_dict
from tests.cluster import NAMES, Cluster, expected_scores
from tests.conftest import MODEL, ROOT

BASE = load_model(MODEL)
V1, V2 = f"{BASE.name}@1", f"{BASE.name}@2"
IDS = ["A0191", "A0922", "A0755"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("registry")
    with Cluster(root, reveals=("score", "decision", "reasons")).running() as c:
        yield c


@pytest.fixture(scope="module")
def v2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model with 7 more points of intercept: the same id, another digest."""
    path = tmp_path_factory.mktemp("models") / "v2.json"
    dump_model(replace(BASE, intercept=(BASE.intercept or 0) + 7), path)
    return path


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


async def ask(cluster: Cluster, party: str, op: ControlRequest) -> dict[str, Any]:
    return await registry_op(cluster.config(party), op, timeout=30.0)


async def statuses(cluster: Cluster, party: str) -> dict[str, str]:
    listed = await ask(cluster, party, ControlRequest(MODELS))
    return {m["model"]: m["status"] for m in listed["models"]}


async def score(cluster: Cluster, model_id: str | None = None, reveal: str = "score") -> Any:
    return await score_request(
        cluster.config("bank"), IDS, reveal=reveal, model_id=model_id, timeout=30.0
    )


async def test_the_whole_life_of_a_version(cluster: Cluster, v2_file: Path) -> None:
    await cluster.wait_idle()
    assert await statuses(cluster, "telco") == {V1: "champion"}

    # publish v2 as challenger while v1 is serving: both sessions succeed
    publish = ControlRequest(
        PUBLISH, model=to_dict(load_model(v2_file)), status="challenger", timeout=30.0
    )
    async with cluster.sniffing() as seen:
        served, published = await asyncio.gather(score(cluster), ask(cluster, "bank", publish))
    assert published["model"] == V2
    assert served.model == V1 and served.rows == expected_scores(IDS)
    for topic, payload in seen:  # names and digests only: never a point or a bin edge
        assert b'"points"' not in payload and b'"edges"' not in payload, topic
        assert b'"categories"' not in payload, topic
    # each feature owner holds its own part, nothing of another's features
    for party in ("bureau", "telco"):
        part = load_model(cluster.root / party / "models" / V2 / "shared.json")
        for f in part.features:
            assert isinstance(f, HiddenFeature) is (f.owner != party), (party, f.name)
    assert await statuses(cluster, "bank") == {V1: "champion", V2: "candidate"}
    with pytest.raises(UsageError, match=r"@2 is not in service \(awaiting approval of bureau"):
        await score(cluster, V2)

    # requests without a model keep coming through approval and promotion: none fails,
    # each is exactly the model it names
    stop = asyncio.Event()
    stream: list[Any] = []

    async def keep_scoring() -> None:
        while not stop.is_set():
            stream.append(await score(cluster))

    streaming = asyncio.create_task(keep_scoring())

    # each feature owner approves (twice is not an error)
    for party in ("bureau", "telco", "telco"):
        done = cli(cluster, "model", "approve", V2, "--config", str(cluster.config(party)))
        assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"approved {V2} (already)")
    await asyncio.sleep(0.5)  # the approvals reach bank's daemon over the broker
    for party in NAMES:
        assert await statuses(cluster, party) == {V1: "champion", V2: "challenger"}, party

    # both versions side by side, each exactly its own model
    one, two = await asyncio.gather(score(cluster, V1), score(cluster, V2, "reasons"))
    assert (one.model, one.rows) == (V1, expected_scores(IDS))
    assert (two.model, two.rows) == (V2, expected_scores(IDS, "reasons", v2_file))
    assert two.model_digest == load_model(v2_file).digest()

    promote = ControlRequest(SET_STATUS, model_id=V2, status="champion")
    assert (await ask(cluster, "bank", promote))["status"] == "champion"
    while not any(o.model == V2 for o in stream):  # the stream has seen the switch
        await asyncio.sleep(0.1)
    stop.set()
    await streaming  # none failed
    assert {o.model for o in stream} == {V1, V2}  # it ran across the switch
    for o in stream:
        reference = v2_file if o.model == V2 else MODEL
        assert o.model in (V1, V2) and o.rows == expected_scores(IDS, "score", reference)

    # a daemon restarted in the middle keeps the registry
    cluster.signal("bureau", 15)
    assert cluster.wait("bureau") == 0
    cluster.start("bureau")
    await cluster.wait_idle()

    # retire v1: nobody serves it; requests without a model take v2
    await ask(cluster, "bank", ControlRequest(SET_STATUS, model_id=V1, status="retired"))
    await asyncio.sleep(0.5)
    for party in NAMES:
        assert await statuses(cluster, party) == {V1: "retired", V2: "champion"}, party
    default = await score(cluster)
    assert (default.model, default.rows) == (V2, expected_scores(IDS, "score", v2_file))
    with pytest.raises(UsageError, match=r"@1 is not in service"):
        await score(cluster, V1)


async def test_hostile_registry_input_is_refused_in_one_line(
    cluster: Cluster, v2_file: Path
) -> None:
    await cluster.wait_idle()
    # a non-owner cannot publish (refused at its own daemon, naming the rule)
    publish = ControlRequest(PUBLISH, model=to_dict(load_model(v2_file)), status="champion")
    with pytest.raises(RefusedError, match="telco may not publish models"):
        await ask(cluster, "telco", publish)
    # a feature owner cannot set a status; nobody approves a version it has no part of
    with pytest.raises(UsageError, match="its owner sets its status"):
        await ask(cluster, "telco", ControlRequest(SET_STATUS, model_id=V1, status="champion"))
    with pytest.raises(UsageError, match="owns no feature"):
        await ask(cluster, "bank", ControlRequest(DECIDE, model_id=V1, approve=True))
    # a model name that is not a safe name never reaches a path
    bad = cli(cluster, "model", "approve", "../evil", "--config", str(cluster.config("telco")))
    assert bad.returncode == 2 and "not a safe name" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


async def test_publish_prints_the_version_and_a_stale_version_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.wait_idle()
    v3 = tmp_path / "v3.json"
    dump_model(replace(BASE, intercept=(BASE.intercept or 0) + 9), v3)
    out = cli(
        cluster,
        "model",
        "publish",
        str(v3),
        "--config",
        str(cluster.config("bank")),
        "--as",
        "candidate",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{BASE.name}@3"
    listed = json.loads(
        cli(cluster, "model", "list", "--config", str(cluster.config("telco")), "--json").stdout
    )
    row = next(m for m in listed["models"] if m["model"] == f"{BASE.name}@3")
    assert row["pending"] == ["bureau", "telco"] and row["offered"] == []


async def test_forged_and_replayed_registry_records_change_nothing(cluster: Cluster) -> None:
    from mpc_credit.consortium.model_parts import publish_fields
    from mpc_credit.consortium.records import PUBLISH, make_record, record_bytes
    from mpc_credit.consortium.signing import load_signing_key

    await cluster.wait_idle()
    before = {p: await statuses(cluster, p) for p in NAMES}
    topics = cluster.cons.topic_prefix
    telco_key = load_signing_key(cluster.root / "telco" / "signing.key")
    body = publish_fields(
        replace(BASE, name="telcos-own"),
        cluster.cons,
        owner="telco",
        version=1,
        modes=("shared",),
        reveal=("score",),
        status="champion",
    )
    own = make_record(telco_key, PUBLISH, "telco", 1, **body)  # telco is no model owner
    as_bank = make_record(telco_key, PUBLISH, "bank", 99, **{**body, "model": "x"})  # bank's name
    for party, records in (("telco", [own]), ("bank", [as_bank])):
        snap = {"type": "registry", "party": party, "records": [records[0]]}
        await cluster.publish(f"{topics}/registry/{party}", record_bytes(snap))
    # bank's first record alone, as an old snapshot of bank's (a replay): nothing new
    first = json.loads((cluster.root / "bank" / "registry.jsonl").read_text().splitlines()[0])
    old = {"type": "registry", "party": "bank", "records": [first]}
    await cluster.publish(f"{topics}/registry/bank", record_bytes(old))
    await asyncio.sleep(0.5)
    after = {p: await statuses(cluster, p) for p in NAMES}
    assert after == before


async def test_automatic_approval_and_the_challenger_kept_for_monitoring(
    cluster: Cluster, tmp_path: Path, v2_file: Path
) -> None:
    await cluster.wait_idle()
    for party in ("bureau", "telco"):  # approve bank's versions as soon as the part is here
        toml = cluster.config(party)
        toml.write_text('auto_approve = ["bank"]\n' + toml.read_text())  # a top-level key
        cluster.signal(party, 15)
        assert cluster.wait(party) == 0
        cluster.start(party)
    await cluster.wait_idle()
    v4 = tmp_path / "v4.json"
    dump_model(replace(BASE, intercept=(BASE.intercept or 0) + 11), v4)
    publish = ControlRequest(PUBLISH, model=to_dict(load_model(v4)), status="challenger")
    ref = (await ask(cluster, "bank", publish))["model"]
    await asyncio.sleep(0.5)
    assert (await statuses(cluster, "bank"))[ref] == "challenger"

    out = cli(
        cluster,
        "score",
        "--config",
        str(cluster.config("bank")),
        "--applicant",
        "A0191",
        "--applicant",
        "A0922",
        "--json",
        "--with-challenger",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    ids = ["A0191", "A0922"]

    def rows(records: list[dict[str, Any]]) -> list[list[str]]:
        return [[r["applicant_id"], str(r["score"])] for r in records]

    assert doc["model"] == V2  # the champion decides
    assert rows(doc["results"]) == expected_scores(ids, "score", v2_file)
    challenger = doc["challenger"]  # apart, for monitoring only, exact for its own model
    assert challenger["monitoring_only"] is True and challenger["model"] == ref
    assert rows(challenger["results"]) == expected_scores(ids, "score", v4)
    kept = (cluster.root / "bank" / "challenger.jsonl").read_text().splitlines()
    line = json.loads(kept[-1])
    assert line["challenger"]["model"] == ref and line["champion"]["model"] == V2
    assert (cluster.root / "bank" / "challenger.jsonl").stat().st_mode & 0o777 == 0o600
