"""Audit cost and audit truth against real daemons and the embedded broker (issue 12, item 7).

A member floods refused requests of 100 ids: each party's refused line summarizes them (count
and SHA-256, never the ids) and its refusal reports on the broker stop at the per-requester
burst, the rest counted in `party status`. After a few sessions bank edits its own audit log
(cuts its tail, re-signs it with its own key, moves a timestamp back): `mpc-credit audit
verify --against` telco's log names the divergence.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.crosscheck import recorded_heads
from mpc_credit.consortium.daemon.mqtt import REFUSALS_BURST, REFUSALS_PERIOD
from mpc_credit.consortium.messages import REFUSE, Topics, ids_digest
from mpc_credit.consortium.requester import score_request
from mpc_credit.consortium.signing import load_signing_key
from tests.cluster import NAMES, Cluster, expected_scores
from tests.consortium.test_audit import _cli
from tests.consortium.test_crosscheck import DAY, rewrite_log

FLOOD = 60  # refused requests; every one is audited (REFUSED_BURST: 60 a minute)
IDS = ["A0191", "A0922", "A0755"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("truth"), reveals=("score",)).running() as c:
        yield c


def _refused(cluster: Cluster, n: int) -> dict[str, Any]:
    """Bank's n-th signed request of 100 long ids with a reveal the policy does not allow."""
    ids = [f"{n:04d}-{i:03d}-" + "Z" * 55 for i in range(100)]
    return cluster.request("bank", ids=ids, reveal="pd")


async def test_a_refusal_flood_is_summarized_and_its_reports_throttled(cluster: Cluster) -> None:
    await cluster.wait_idle()
    bodies = [_refused(cluster, n) for n in range(FLOOD)]
    topic = Topics(cluster.cons.topic_prefix).request
    sizes = {p: (cluster.root / p / "audit.jsonl").stat().st_size for p in NAMES}
    start = time.monotonic()
    async with cluster.sniffing() as seen:
        async with cluster.client(identifier=f"flood-{time.monotonic_ns()}") as c:
            for body in bodies:
                await c.publish(topic, json.dumps(body).encode(), qos=1)
        for p in NAMES:
            await cluster.audited(p, lambda r: _of(r, bodies[-1]), timeout=30)
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - start
    reports = _refusals(cluster, seen)
    windows = 1 + int(elapsed // REFUSALS_PERIOD)
    for p in NAMES:
        assert REFUSALS_BURST <= reports[p] <= REFUSALS_BURST * windows, (reports, elapsed)
        assert (await cluster.status(p))["refusals_unreported"] == FLOOD - reports[p]
        lines = [r for r in cluster.audit(p) if r.get("outcome") == "refused"]
        assert len(lines) == FLOOD
        first = next(r for r in lines if r["session"] == bodies[0]["session"])
        assert "ids" not in first and first["count"] == 100
        assert first["ids_sha256"] == ids_digest(bodies[0]["ids"])
        log = (cluster.root / p / "audit.jsonl").read_bytes()
        assert b"ZZZZZZZZZZ" not in log  # no id of the flood is in the log
        per_line = (len(log) - sizes[p]) / FLOOD
        print(f"{p}: {per_line:.0f} audit bytes per refused 100-id request, {reports[p]} reported")
        assert per_line < 1500


def _of(record: dict[str, Any], body: dict[str, Any]) -> bool:
    return record.get("session") == body["session"] and record.get("outcome") == "refused"


def _refusals(cluster: Cluster, seen: list[tuple[str, bytes]]) -> dict[str, int]:
    """Refuse reports on the broker, per reporting party."""
    topics = Topics(cluster.cons.topic_prefix)
    counts = dict.fromkeys(NAMES, 0)
    for topic, payload in seen:
        kind = topics.parse(topic)
        if kind and kind[0] == "session" and json.loads(payload).get("phase") == REFUSE:
            counts[kind[2]] += 1
    return counts


async def test_audit_verify_against_names_a_cut_a_rewrite_and_a_backdating(
    cluster: Cluster, tmp_path: Path
) -> None:
    sids = []
    for _ in range(3):
        await cluster.wait_idle()
        out = await score_request(cluster.config("bank"), IDS, reveal="score", timeout=30)
        assert out.rows == expected_scores(IDS)
        sids.append(out.session)
    for p in NAMES:
        end = (await cluster.session_records(p, sids[-1]))[-1]
        assert set(end["heads"]) == set(NAMES) - {p}  # the others' heads, as they reported
    await cluster.wait_idle()
    logs = _copies(cluster, tmp_path)
    bank, telco = logs["bank"], logs["telco"]
    good = _verify(cluster, bank, *logs.values())
    assert good.returncode == 0, good.stderr
    assert "holds all" in good.stdout
    heads = recorded_heads(telco, "bank")
    assert [h.session for h in heads[-3:]] == sids

    last = heads[-1]  # bank cuts its log before the last head telco recorded
    lines = bank.read_bytes().splitlines(keepends=True)
    bank.write_bytes(b"".join(lines[: last.seq - 1]))
    said = _refused_by(_verify(cluster, bank, telco))
    assert said.startswith(f"{bank}: bank's log ends at entry {last.seq - 1}, but telco ")
    assert f"recorded entry {last.seq} (session {last.session}, at " in said
    assert said.endswith("the tail was cut")

    key = load_signing_key(cluster.root / "bank" / "signing.key")
    shutil.copyfile(cluster.root / "bank" / "audit.jsonl", bank)
    rewrite_log(bank, key, lambda lines: lines[1:])  # its first line gone, all re-signed
    said = _refused_by(_verify(cluster, bank, telco))
    assert f"bank's entry {heads[0].seq} differs from the head telco recorded in session " in said
    assert said.endswith("the log was rewritten")

    shutil.copyfile(cluster.root / "bank" / "audit.jsonl", bank)
    rewrite_log(bank, key, lambda lines: _backdate(lines, 5))
    said = _refused_by(_verify(cluster, bank, telco))
    assert said.startswith(f"{bank}: line 5 is backdated: seq 5 is dated ")
    assert ", before seq 4's " in said


def _copies(cluster: Cluster, folder: Path) -> dict[str, Path]:
    """A copy of every party's audit log (the running daemons keep theirs)."""
    out = {}
    for p in NAMES:
        out[p] = folder / f"{p}.jsonl"
        shutil.copyfile(cluster.root / p / "audit.jsonl", out[p])
    return out


def _verify(cluster: Cluster, log: Path, *against: Path) -> Any:
    flags = [a for other in against if other != log for a in ("--against", str(other))]
    return _cli("verify", str(log), "--config", str(cluster.config("bank")), *flags)


def _refused_by(done: Any) -> str:
    """The one line of a verify that exited 6."""
    assert done.returncode == 6, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1
    return done.stderr.strip().removeprefix("mpc-credit: ")


def _backdate(lines: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    lines[seq - 1]["ts"] -= 3 * DAY
    return lines
