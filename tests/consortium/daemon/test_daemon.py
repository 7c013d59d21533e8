"""Party daemons end to end: three daemon processes, the embedded broker, the CLI side.

One consortium (keys, configurations, broker, daemons) serves the whole module; tests
that stop or kill a daemon restart it and check that the next session succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.requester import score_request, submit_request
from mpc_credit.errors import RefusedError, SessionError, TimedOutError
from tests.cluster import NAMES, Cluster, csv_rows, expected_scores
from tests.conftest import PARTIES, ROOT

ALLOWED = ("score", "decision", "reasons")  # `pd` is not allowed by this test's policy
IDS = ["A0191", "A0922", "A0755"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("consortium"), reveals=ALLOWED).running() as c:
        yield c


async def score(cluster: Cluster, ids: list[str], **kw: Any) -> Any:
    kw.setdefault("timeout", 30.0)
    return await score_request(cluster.config("bank"), ids, **kw)


async def test_happy_path(cluster: Cluster) -> None:
    await cluster.wait_idle()
    seen: list[str] = []
    out = await score(cluster, IDS, reveal="score", progress=seen.append)
    assert out.columns == ["applicant_id", "score"]
    assert out.rows == expected_scores(IDS)
    assert any("connected to all parties" in m for m in seen)
    out = await score(cluster, IDS, reveal="reasons")
    assert out.rows == expected_scores(IDS, "reasons")
    sid = out.session
    for party in NAMES:
        rec = await cluster.session_records(party, sid)
        assert [r["outcome"] for r in rec] == ["accepted", "done"], (party, rec)  # write-ahead
        assert rec[1]["received"] is (party == "bank")
        assert (cluster.root / party / "audit.jsonl").stat().st_mode & 0o777 == 0o600


async def test_batch_ids_travel_by_digest(cluster: Cluster) -> None:
    await cluster.wait_idle()
    ids = list(csv_rows("bank"))  # more than MAX_INLINE_IDS: the request has a digest only
    out = await score(cluster, ids, reveal="decision")
    assert out.rows == expected_scores(ids, "decision")
    recs = await cluster.session_records("telco", out.session)
    assert [r["outcome"] for r in recs] == ["accepted", "applicants", "done"]
    assert "ids" not in recs[0] and recs[0]["count"] == len(ids)
    assert recs[1]["ids"] == ids  # audited once they arrived over the MPC links


def _leaves(obj: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of every leaf; a list's items under the list's key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from _leaves(v, k)
            else:
                yield k, v
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v, key) if isinstance(v, (dict, list)) else [(key, v)]


async def test_broker_never_carries_inputs_or_results(cluster: Cluster) -> None:
    """Capture every message the broker forwards during sessions; none holds a feature
    value of the requested applicants or a revealed score."""
    await cluster.wait_idle()
    async with cluster.sniffing() as captured:
        outs = [await score(cluster, IDS, reveal=r) for r in ("score", "reasons")]
    scores = {int(r[1]) for r in outs[0].rows}
    secret_numbers: set[float] = set(scores)
    secret_strings: set[str] = {str(s) for s in scores}
    for party in NAMES:
        rows = csv_rows(party)
        for aid in IDS:
            for col, v in rows.get(aid, {}).items():
                if col == "applicant_id" or not v:
                    continue
                secret_strings.add(v)
                with contextlib.suppress(ValueError):
                    secret_numbers.add(float(v))
    long_strings = {s for s in secret_strings if len(s) >= 8}
    assert len(captured) > 10
    # party index, batch size, audit head (a line count and a hash): public session metadata
    public = {"pid", "count", "head"}
    for topic, payload in captured:
        assert "result" not in topic
        text = payload.decode()
        for s in long_strings:
            assert s not in text, (topic, s)
        for key, value in _leaves(json.loads(payload)):
            if key in public:
                continue
            assert not (isinstance(value, str) and value in secret_strings), (topic, key, value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert float(value) not in secret_numbers, (topic, key, value)
    # the result never went through the broker: 'approve'/'decline' appear nowhere
    assert not any(b"approve" in p or b"decline" in p for _, p in captured)


async def test_two_requests_at_once(cluster: Cluster) -> None:
    await cluster.wait_idle()
    a, b = await asyncio.gather(
        score(cluster, IDS[:1], reveal="score"), score(cluster, IDS[1:], reveal="decision")
    )
    assert a.rows == expected_scores(IDS[:1])
    assert b.rows == expected_scores(IDS[1:], "decision")


# ---------------------------------------------------------------- refusals


async def _publish_and_collect(cluster: Cluster, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return await cluster.collect(body)


def _request(cluster: Cluster, signer: str = "bank", **kw: Any) -> dict[str, Any]:
    return cluster.request(signer, **{"ids": IDS[:1], **kw})


def _resign(cluster: Cluster, body: dict[str, Any], signer: str = "bank") -> dict[str, Any]:
    return cluster.resign(body, signer)


REFUSALS = {  # a signed request each party refuses: the public category on the broker
    "requester not allowed": (
        lambda c: _request(c, signer="bureau"),
        "not allowed by the consortium policy",
    ),
    "reveal not allowed": (
        lambda c: _request(c, reveal="pd"),
        "not allowed by the consortium policy",
    ),
    "stale timestamp": (
        lambda c: _request(c, now=time.time() - 1000, timeout=1100),
        "timestamp outside the window",
    ),
    "model digest": (lambda c: _request(c, model_digest="0" * 64), "model not available"),
}
UNSIGNED = {  # no valid signature of the requester it names: no answer, a bounded audit line
    "bad signature": (lambda c: {**_request(c), "reveal": "decision"}, "bad signature"),
    "unknown requester": (
        lambda c: _resign(c, {**_request(c), "requester": "mallory"}),
        "not a party of the consortium",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_every_party_refuses(cluster: Cluster, case: str) -> None:
    await cluster.wait_idle()
    make, category = REFUSALS[case]
    got = await _publish_and_collect(cluster, make(cluster))
    assert set(got) == set(NAMES), got
    for party, d in got.items():
        assert d.get("phase") == "refuse" and d["reason"] == f"{party}: refused: {category}"


@pytest.mark.parametrize("case", list(UNSIGNED))
async def test_an_unsigned_request_gets_no_answer(cluster: Cluster, case: str) -> None:
    """Its session id is not the sender's to claim: a refusal there could abort the genuine
    session of that id; each party audits a summary instead."""
    await cluster.wait_idle()
    make, reason = UNSIGNED[case]
    body = make(cluster)
    assert await cluster.collect(body, wait=1.0) == {}
    for party in NAMES:
        rec = await cluster.audited(party, lambda r: r.get("claimed_session") == body["session"])
        assert len(rec) == 1 and rec[0]["outcome"] == "rejected", (party, rec)
        assert reason in rec[0]["reason"]


async def submit(cluster: Cluster, body: dict[str, Any], ids: list[str]) -> Any:
    """Hand bank's daemon a request this test signed (or tampered with) itself."""
    return await submit_request(cluster.config("bank"), body, ids, timeout=30.0)


async def test_replayed_request_is_refused(cluster: Cluster) -> None:
    await cluster.wait_idle()
    sent = _request(cluster)
    out = await submit(cluster, sent, IDS[:1])
    assert out.rows == expected_scores(IDS[:1])
    await cluster.wait_idle()
    assert await cluster.collect(sent, wait=1.0) == {}  # no answer: nobody waits for one
    for party in NAMES:
        refused = await cluster.audited(
            party, lambda r: r["outcome"] == "refused" and r.get("session") == sent["session"]
        )
        assert "nonce" in refused[-1]["reason"], refused


async def test_refusal_reaches_the_cli(cluster: Cluster) -> None:
    await cluster.wait_idle()
    with pytest.raises(RefusedError, match=r"party bank refused: .*reveal policy 'pd'"):
        await score(cluster, IDS[:1], reveal="pd")
    with pytest.raises(RefusedError, match="refused: bad signature"):
        await submit(cluster, {**_request(cluster), "nonce": "f" * 32}, IDS[:1])


def test_cli_exit_codes(cluster: Cluster) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-c",
        "from mpc_credit.cli.app import main; raise SystemExit(main())",
        "score",
        "--config",
        str(cluster.config("bank")),
    ]
    ok = subprocess.run([*cmd, "--applicant", "A0191", "--json"], capture_output=True, env=env)
    assert ok.returncode == 0, ok.stderr
    record = json.loads(ok.stdout)["results"][0]
    assert record == {"applicant_id": "A0191", "score": int(expected_scores(["A0191"])[0][1])}
    refused = subprocess.run(
        [*cmd, "--applicant", "A0191", "--reveal", "pd"], capture_output=True, env=env
    )
    assert refused.returncode == 4
    assert len(refused.stderr.decode().strip().splitlines()) == 1
    unknown = subprocess.run([*cmd, "--applicant", "NOPE"], capture_output=True, env=env)
    assert unknown.returncode == 2 and b"NOPE" in unknown.stderr


def test_score_out_writes_the_file_and_prints_one_line(cluster: Cluster, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "scores.csv"
    ids = list(csv_rows("bank"))[:150]  # a batch: its ids travel by digest
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    cmd = [sys.executable, "-m", "mpc_credit", "score", "--config", str(cluster.config("bank"))]
    done = subprocess.run(
        [*cmd, "--batch", str(tmp_path / "ids.txt"), "--out", str(out), "--quiet"],
        capture_output=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"150 applicant(s) written to {out}"), lines
    with out.open(newline="") as fh:
        assert list(csv.reader(fh)) == [["applicant_id", "score"], *expected_scores(ids)]


# ---------------------------------------------------------------- failures


async def test_party_down_at_start(cluster: Cluster) -> None:
    await cluster.wait_idle()
    cluster.signal("telco", signal.SIGTERM)
    assert cluster.wait("telco") == 0
    await asyncio.sleep(0.2)
    t = time.perf_counter()
    with pytest.raises(SessionError, match="party telco"):
        await score(cluster, IDS[:1])
    assert time.perf_counter() - t < 2
    cluster.start("telco")
    await cluster.wait_idle()
    out = await score(cluster, IDS[:1])
    assert out.rows == expected_scores(IDS[:1])


async def test_party_killed_mid_session(cluster: Cluster) -> None:
    await cluster.wait_idle()
    ids = list(csv_rows("bank"))  # all 1000 applicants with reason codes: a few seconds
    victim = cluster.daemons["telco"]

    def progress(message: str) -> None:
        if "connected to all parties" in message and victim.poll() is None:
            victim.kill()

    t = time.perf_counter()
    with pytest.raises(SessionError, match="telco") as err:
        await score(cluster, ids, reveal="reasons", progress=progress)
    assert time.perf_counter() - t < 10
    assert len(str(err.value).splitlines()) == 1
    victim.wait(5)
    # every surviving party aborted and is idle again; nobody recorded a result
    sid = [r for r in cluster.audit("bank") if r.get("count") == len(ids)][-1]["session"]
    for party in ("bank", "bureau"):  # accepted (and the batch's ids) first, then the end
        rec = await cluster.audited(
            party, lambda r: r.get("session") == sid and r.get("outcome") in ("aborted", "done")
        )
        assert rec[-1]["outcome"] == "aborted", (party, rec)
        assert "telco" in rec[-1]["reason"]
    cluster.start("telco")
    await cluster.wait_idle()
    out = await score(cluster, IDS)
    assert out.rows == expected_scores(IDS)


async def test_deadline_passed(cluster: Cluster) -> None:
    await cluster.wait_idle()
    ids = list(csv_rows("bank"))
    with pytest.raises(TimedOutError):
        await score(cluster, ids, reveal="reasons", timeout=0.6)
    await cluster.wait_idle()
    out = await score(cluster, IDS[:1])
    assert out.rows == expected_scores(IDS[:1])


async def test_broker_restart_while_idle(cluster: Cluster) -> None:
    await cluster.wait_idle()
    cluster.stop_broker()
    await asyncio.sleep(0.5)
    with pytest.raises(SessionError, match="broker"):
        await score(cluster, IDS[:1])
    cluster.start_broker()
    await cluster.wait_idle(timeout=20)
    out = await score(cluster, IDS[:1])
    assert out.rows == expected_scores(IDS[:1])


async def test_sigterm_drains_a_running_session(cluster: Cluster) -> None:
    await cluster.wait_idle()
    ids = list(csv_rows("bank"))[:600]
    bureau = cluster.daemons["bureau"]

    def progress(message: str) -> None:
        if "connected to all parties" in message and bureau.poll() is None:
            bureau.send_signal(signal.SIGTERM)

    out = await score(cluster, ids, reveal="reasons", progress=progress)
    assert out.rows == expected_scores(ids, "reasons")
    assert bureau.wait(10) == 0
    cluster.start("bureau")
    await cluster.wait_idle()


def test_private_files_mode(cluster: Cluster) -> None:
    root = cluster.root
    text = (root / "consortium.json").read_text()
    assert "PRIVATE" not in text
    for p in [
        *root.glob("*/signing.key"),
        *root.glob("*/.config/*.key"),
        *root.glob("*/mqtt/*.key"),
        *root.glob("ca/*.key"),
        root / "broker" / "server.key",
    ]:
        assert p.stat().st_mode & 0o777 == 0o600, p
    for party in NAMES:
        assert Path(root / party / "daemon.sock").stat().st_mode & 0o777 == 0o600


async def test_local_consortium_demo() -> None:
    """What `mpc-credit demo` runs after the simulation: broker, three daemons, one request."""
    from mpc_credit.local.consortium import run_local_consortium_demo

    lines: list[str] = []
    out = await run_local_consortium_demo(
        PARTIES / "bank" / "german-credit-demo.json",
        {n: PARTIES / n / "applicants.csv" for n in NAMES},
        applicants=IDS,
        reveal="reasons",
        echo=lines.append,
    )
    assert out.rows == expected_scores(IDS, "reasons")
    assert out.columns[:2] == ["applicant_id", "decision"]
    assert any("broker" in x for x in lines)


def test_a_second_daemon_for_a_party_is_refused(cluster: Cluster) -> None:
    """Its audit log is locked by the running daemon: one line, exit 3, nothing disturbed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "mpc_credit", "party", "run", "--config"]
    second = subprocess.run(
        [*cmd, str(cluster.config("telco"))], capture_output=True, text=True, env=env, timeout=60
    )
    assert second.returncode == 3, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "another process is writing this audit log" in lines[0], lines
    assert cluster.daemons["telco"].poll() is None
