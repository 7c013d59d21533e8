"""A member that accepts sessions and then stalls costs the others seconds, not an hour.

Real daemons (bank, bureau) and the embedded broker. Telco is hostile: with its own valid
signing key it publishes scoring requests and acknowledges each at once with a signed `ack`,
but runs no MPC (its daemon is not running), so no session it asked for can connect. Before,
each such session held every other party's queue (one session at a time, in broker order)
until its deadline, up to `max_session_seconds` (3600 s). Now each aborts `connect_seconds`
after it starts, naming telco; the parties count the stall; a requester past `max_stalls` is
refused (and its sessions still queued are dropped without a wait); the per-requester share
of the queue refuses the extra session; a deadline beyond the ceiling for one applicant is
refused naming it; and an honest request then returns the reference result.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mpc_credit.consortium.messages import ACK, Topics, status
from mpc_credit.consortium.requester import score_request, submit_request
from mpc_credit.consortium.signing import load_signing_key
from mpc_credit.errors import RefusedError
from tests.cluster import Cluster, expected_scores

HONEST = ("bank", "bureau")
CONNECT = 2.0  # the test consortium's connect_seconds (default 10)
MAX_STALLS = 3
SHARE = 4  # max_queue_per_requester at the honest parties
IDS = ["A0191", "A0922"]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Bank and bureau running with a short connect window; telco a requester, not running."""
    c = Cluster(tmp_path / "consortium", reveals=("score",), requesters=("bank", "telco"))
    cons = json.loads((c.root / "consortium.json").read_text())
    cons["policy"].update(connect_seconds=CONNECT, max_stalls=MAX_STALLS)
    (c.root / "consortium.json").write_text(json.dumps(cons))
    for party in HONEST:
        toml = c.config(party)
        text = toml.read_text()
        assert 'audit = "audit.jsonl"' in text
        share = f'audit = "audit.jsonl"\nmax_queue_per_requester = {SHARE}'
        toml.write_text(text.replace('audit = "audit.jsonl"', share, 1))
    c.start_broker()
    c.start(*HONEST)
    try:
        await c.wait_idle(parties=HONEST, online=HONEST)
        yield c
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(code == 0 for code in codes.values()), c.errors


async def stall(c: Cluster, n: int) -> list[str]:
    """Telco publishes `n` requests, each acknowledged at once by its signed `ack`; it never
    connects. The session ids, in order."""
    key = load_signing_key(c.root / "telco" / "signing.key")
    topics = Topics(c.cons.topic_prefix)
    port = c.cons.party("telco").mpc_port
    bodies = [c.request("telco", ids=["A0191"]) for _ in range(n)]
    async with c.client(identifier=f"hostile-{time.monotonic_ns()}") as client:
        for body in bodies:
            sid = body["session"]
            await client.publish(topics.request, json.dumps(body).encode(), qos=1)
            ack = status(key, sid, "telco", ACK, port=port)
            await client.publish(topics.session(sid, "telco"), ack, qos=1)
    return [b["session"] for b in bodies]


async def ended(c: Cluster, party: str, sid: str) -> dict[str, Any]:
    """The party's last record of `sid`: how it ended (aborted, done or refused)."""
    ends = ("done", "aborted", "refused")
    found = await c.audited(
        party, lambda r: r.get("session") == sid and r.get("outcome") in ends, timeout=60
    )
    return found[-1]


async def test_a_member_that_acks_and_never_connects(cluster: Cluster) -> None:
    c = cluster
    t0 = time.time()
    sids = await stall(c, SHARE + 1)
    *stalled, dropped, extra = sids

    for party in HONEST:
        for sid in stalled:  # each waited for at most the connect window, naming telco
            rec = await ended(c, party, sid)
            assert rec["outcome"] == "aborted" and rec["kind"] == "timeout", (party, rec)
            assert rec["reason"] == f"party telco did not connect within {CONNECT:g} s", rec
            assert rec["stalled"] == ["telco"], rec
        rec = await ended(c, party, dropped)  # queued before telco's third stall: not waited for
        assert rec["outcome"] == "aborted" and rec["kind"] == "refused", (party, rec)
        assert "requester telco left 3 sessions stalled in the last 10 min" in rec["reason"]
        rec = await ended(c, party, extra)  # past telco's share of the queue
        assert rec["outcome"] == "refused", (party, rec)
        assert "requester telco has 4 sessions queued or running" in rec["reason"], rec
    await c.wait_idle(parties=HONEST, online=HONEST)  # the queue drained
    last = max(r["ts"] for r in c.audit("bank") if r.get("session") in sids)
    print(
        f"\n{len(sids) - 1} sessions of a staller held bank's queue {last - t0:.1f} s "
        f"({len(stalled)} stalls at connect_seconds {CONNECT:g}, then dropped); before: each "
        f"until its deadline, up to max_session_seconds (3600 s)"
    )

    for party in HONEST:
        assert (await c.status(party))["stalls"] == {"telco": MAX_STALLS}
    (late,) = await stall(c, 1)  # telco is refused for the rest of the window
    for party in HONEST:
        rec = await ended(c, party, late)
        assert rec["outcome"] == "refused", (party, rec)
        assert "requester telco left 3 sessions stalled in the last 10 min" in rec["reason"]

    # a restart keeps the count (rebuilt from the audit log's `stalled` fields)
    c.signal("bank", 15)
    assert c.wait("bank") == 0
    c.start("bank")
    assert (await c.status("bank"))["stalls"] == {"telco": MAX_STALLS}

    # a deadline beyond the ceiling for one applicant is refused, naming it
    body = c.request("bank", ids=IDS[:1], timeout=120.0)
    with pytest.raises(RefusedError, match=r"beyond the policy's 60 s \(max_decision_seconds"):
        await submit_request(c.config("bank"), body, IDS[:1], timeout=10)

    # the honest requester is served as soon as telco runs an honest daemon again
    c.start("telco")
    await c.wait_idle()
    out = await score_request(c.config("bank"), IDS, reveal="score", timeout=30)
    assert out.rows == expected_scores(IDS)
