"""Attacks on the control plane (issue 7's table) against real daemon processes and a real
broker: each test performs the attack, asserts the refusal, and that a good request succeeds
afterwards.

One consortium serves the module (three daemons, the embedded broker, which has no ACLs:
anyone may publish anything anywhere, the strongest position for these attacks); its policy
has a daily budget and a per-applicant limit, and telco reads a copy of its CSV that one test
breaks. Each test scores applicants no other test scores (the per-applicant limit counts
them all), the SIGKILL test runs last. Attacks that are about the broker itself run against
mosquitto with the generated configuration (test_oversized_payloads_...; and
tests/attacks/test_broker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator

import aiomqtt
import pytest

from mpc_credit.consortium.messages import PRESENCE_LABEL, Topics, presence
from mpc_credit.consortium.requester import score_request, submit_request
from mpc_credit.consortium.signing import load_signing_key, sign
from mpc_credit.errors import SessionError
from mpc_credit.jsonwire import encode
from tests.cluster import NAMES, Cluster, csv_rows, expected_scores
from tests.conftest import PARTIES
from tests.mosquitto import (
    MOSQUITTO,
    client,
    mosquitto_cluster,
    needs_mosquitto,
    observer_tls,
    write_config,
)

BUDGET = 5000  # bank's daily budget, in applicants
LIMIT = 2  # scorings of one applicant per 24 hours, all requesters together
IDS = list(csv_rows("bank"))  # 1000 applicants; each test takes its own slice
JUNK = {  # what left every daemon off the broker for good before the fix
    "Infinity": b'{"type": "request", "count": Infinity, "ids": null}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "invalid UTF-8": b'{"type": "request", "requester": "\xff\xfe\xc0"}',
    "1 MB": b'{"ids": ["' + b"A" * 1_000_000 + b'"]}',
}
SECRET = "SECRET-CELL-4711"  # a malformed cell's value in telco's CSV


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("attacks")
    c = Cluster(
        root / "consortium",
        reveals=("score", "decision", "reasons"),
        requesters=("bank", "bureau"),
        daily_budget=BUDGET,
        per_applicant_daily=LIMIT,
    )
    csv = root / "telco.csv"  # telco's data, a copy the CSV test may break
    shutil.copyfile(PARTIES / "telco" / "applicants.csv", csv)
    toml = c.config("telco")
    toml.write_text(re.sub(r"(?m)^data = .*$", f'data = "{csv}"', toml.read_text()))
    with c.running():
        yield c


async def good(c: Cluster, ids: list[str], requester: str = "bank") -> None:
    """A good request succeeds, with the plaintext reference result."""
    await c.wait_idle()
    out = await score_request(c.config(requester), ids, reveal="score", timeout=30)
    assert out.rows == expected_scores(ids)


def stop_all(c: Cluster) -> dict[str, str]:
    """SIGTERM every daemon; what each wrote to its log (stderr). Each must exit 0."""
    procs = dict(c.daemons)
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    logs = {}
    for name, p in procs.items():
        p.communicate(timeout=20)
        logs[name] = c.log(name)
        assert p.returncode == 0, (name, logs[name][-2000:])
    c.daemons.clear()
    return logs


async def dropped(c: Cluster, parties: tuple[str, ...] = NAMES) -> dict[str, int]:
    """How many broker payloads each daemon dropped since it started."""
    return {n: (await c.status(n))["dropped"] for n in parties}


async def until_dropped(c: Cluster, at_least: dict[str, int]) -> None:
    for _ in range(200):
        got = await dropped(c, tuple(at_least))
        if all(got[n] >= k for n, k in at_least.items()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"dropped {got}, expected at least {at_least}")


# ---------------------------------------------------------------- no message stops a daemon


async def test_malformed_payloads_on_every_topic_leave_every_daemon_connected(
    cluster: Cluster,
) -> None:
    """`count: Infinity`, JSON nested 100,000 deep, invalid UTF-8 and 1 MB, on the request
    topic, retained on telco's own presence topic and retained on telco's session topics:
    every daemon stays connected and logs a short summary; a good request succeeds, also
    after all daemons restart with the retained ones still there."""
    c = cluster
    await c.wait_idle()
    topics = Topics(c.cons.topic_prefix)
    sessions = [topics.session(uuid.uuid4().hex, "telco") for _ in JUNK]
    before = await dropped(c)
    for payload, session_topic in zip(JUNK.values(), sessions):
        await c.publish(topics.request, payload)
        await c.publish(topics.presence("telco"), payload, retain=True)
        await c.publish(session_topic, payload, retain=True)
    await until_dropped(c, {n: before[n] + 3 * len(JUNK) for n in NAMES})
    assert all([(await c.status(n))["connected"] for n in NAMES])
    await good(c, IDS[0:2])
    for party in NAMES:  # the requests: one bounded audit line each, never the payload
        lines = (c.root / party / "audit.jsonl").read_bytes().splitlines()
        rejected = [x for x in lines if b'"outcome":"rejected"' in x]
        assert len(rejected) >= len(JUNK) and all(len(x) < 1024 for x in lines), party

    logs = stop_all(c)
    for party, text in logs.items():
        summaries = [x for x in text.splitlines() if "dropped a" in x]
        assert 1 <= len(summaries) <= 6, (party, summaries)  # one per topic kind per 10 s
        assert all(len(x) < 400 for x in summaries), summaries
        assert "Traceback" not in text and "AAAAAAAA" not in text, party
    # the retained junk is still on the broker; telco's own stop overwrote its presence topic
    await c.publish(topics.presence("telco"), JUNK["deep nesting"], retain=True)
    c.start("bank", "bureau")  # they read the retained junk before telco announces again
    await until_dropped(c, dict.fromkeys(("bank", "bureau"), 1 + len(JUNK)))
    c.start("telco")
    await good(c, IDS[2:4])


# ---------------------------------------------------------------- budgets and deadlines


async def test_a_batch_declaring_one_id_with_the_digest_of_150_is_aborted(cluster: Cluster) -> None:
    """A requester signs `count: 1` with the digest of 150 ids and its daemon sends the 150
    over the MPC links: every party aborts before scoring, charges 1, counts no applicant."""
    c = cluster
    await c.wait_idle()
    ids = IDS[100:250]
    body = c.request(ids=ids)  # more than MAX_INLINE_IDS: a batch, by digest
    assert body["ids"] is None
    body = c.resign({**body, "count": 1})
    with pytest.raises(SessionError, match="150 ids, more than 1"):
        await submit_request(c.config("bank"), body, ids, timeout=30)
    for party in NAMES:
        recs = await c.audited(
            party, lambda r: r.get("session") == body["session"] and r["outcome"] == "aborted"
        )
        recs = [r for r in c.audit(party) if r.get("session") == body["session"]]
        assert [r["outcome"] for r in recs] == ["accepted", "aborted"], (party, recs)
        assert recs[0]["count"] == 1  # the signed count is all that is charged
    await good(c, ids[:2])  # none of the 150 was counted against the per-applicant limit
    await good(c, ids[:2], requester="bureau")


async def test_a_nan_timestamp_is_refused_and_never_replays(cluster: Cluster) -> None:
    """`ts: NaN` (signed): no party accepts it, none answers; each keeps a bounded summary;
    after a restart the same bytes are refused again."""
    c = cluster
    await c.wait_idle()
    body = c.resign({**c.request(ids=IDS[4:5]), "ts": float("nan")})
    payload = json.dumps(body).encode()
    assert b"NaN" in payload
    digest = hashlib.sha256(payload).hexdigest()

    async def refused_everywhere(parties: tuple[str, ...], times: int) -> None:
        assert await c.collect(body, payload, wait=1.0) == {}
        for party in parties:
            recs = await c.audited(party, lambda r: r.get("sha256") == digest)
            for _ in range(100):
                if len(recs) >= times:
                    break
                await asyncio.sleep(0.05)
                recs = [r for r in c.audit(party) if r.get("sha256") == digest]
            assert len(recs) == times and recs[-1]["outcome"] == "rejected", (party, recs)
            assert "non-finite number NaN" in recs[-1]["reason"], recs
            assert not [r for r in c.audit(party) if r.get("session") == body["session"]]

    await refused_everywhere(NAMES, 1)
    c.signal("telco", signal.SIGTERM)
    assert c.wait("telco") == 0
    c.start("telco")
    await c.wait_idle()
    await refused_everywhere(("telco",), 2)
    await good(c, IDS[4:6])


async def test_per_applicant_limit_holds_across_requesters(cluster: Cluster) -> None:
    """An applicant scored LIMIT times a day (by bank and by bureau) is refused a third time,
    inline or hidden in a batch whose ids arrive over the MPC links."""
    c = cluster
    target, others = IDS[10], IDS[11:14]
    await good(c, [target])
    await good(c, [target], requester="bureau")
    with pytest.raises(SessionError, match="limit of 2 per applicant"):
        await score_request(c.config("bank"), [target], timeout=30)
    batch = [*IDS[400:500], target]  # 101 ids: a batch, the ids travel by digest
    with pytest.raises(SessionError, match=r"per.applicant"):  # bureau's own words or others'
        await score_request(c.config("bureau"), batch, timeout=30)
    await good(c, others)


# ---------------------------------------------------------------- presence


async def test_a_forged_or_replayed_offline_is_ignored(cluster: Cluster) -> None:
    """On bank's presence topic (no ACLs on the embedded broker): an unsigned `offline`, one
    signed by telco, and bank's own old signed `offline` replayed. Nobody sees bank offline;
    bank announces itself again; sessions still run."""
    c = cluster
    await c.wait_idle()
    topics = Topics(c.cons.topic_prefix)
    bank_key = load_signing_key(c.root / "bank" / "signing.key")
    telco_key = load_signing_key(c.root / "telco" / "signing.key")
    old = {"type": "presence", "party": "bank", "state": "offline", "ts": time.time() - 60}
    forged = [
        encode({"type": "presence", "party": "bank", "state": "offline", "ts": time.time()}),
        presence(telco_key, "bank", "offline", reason="connection lost"),
    ]
    before = await dropped(c)
    for payload in forged:
        await c.publish(topics.presence("bank"), payload, retain=True)
    await until_dropped(c, {n: before[n] + len(forged) for n in NAMES})
    async with c.client(identifier="watcher") as watcher:
        await watcher.subscribe(topics.presence("bank"), qos=1)
        replayed_at = time.time()
        before = await dropped(c)
        async with c.client(identifier="replayer") as replayer:  # in this order, then a marker
            await replayer.publish(
                topics.presence("bank"), encode(sign(PRESENCE_LABEL, old, bank_key)), qos=1
            )
            await replayer.publish(topics.presence("bureau"), b"marker", qos=1)
        await until_dropped(c, {n: before[n] + 1 for n in NAMES})  # the replay was read
        for party in ("bureau", "telco"):  # before bank announces itself again
            assert (await c.status(party))["presence"]["bank"] == "online", party
        async with asyncio.timeout(10):
            async for m in watcher.messages:
                if str(m.topic) != topics.presence("bank"):
                    continue  # amqtt also replays other topics' retained messages
                with contextlib.suppress(ValueError):
                    d = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                    if d.get("state") == "online" and d.get("ts", 0) > replayed_at:
                        break  # bank said it again: later subscribers read the truth
    for party in NAMES:
        assert (await c.status(party))["presence"]["bank"] == "online", party
    await good(c, IDS[14:16])


# ---------------------------------------------------------------- failures say why, not what


async def test_a_malformed_cell_in_telcos_csv_never_reaches_the_broker(cluster: Cluster) -> None:
    """The session fails naming telco and a category; no payload on any topic carries the
    file's path, the column or the value; telco's own audit line has the details."""
    c = cluster
    await c.wait_idle()
    csv = c.root.parent / "telco.csv"
    original = csv.read_text()
    lines = original.splitlines()
    cells = lines[1].split(",")
    cells[3] = SECRET  # age_in_years
    lines[1] = ",".join(cells)
    try:
        async with c.sniffing() as sniffed:
            csv.write_text("\n".join(lines) + "\n")
            with pytest.raises(SessionError, match="telco failed: input error in its data file"):
                await score_request(c.config("bank"), IDS[16:18], timeout=30)
            await c.wait_idle()
    finally:
        csv.write_text(original)
    captured = [topic.encode() + b" " + payload for topic, payload in sniffed]
    failed = [p for p in captured if b'"phase":"failed"' in p and b"telco" in p]
    assert failed, captured
    for p in captured:
        for secret in (SECRET.encode(), str(csv).encode(), csv.name.encode(), b"age_in_years"):
            assert secret not in p, (secret, p[:200])
    rec = [r for r in c.audit("telco") if r["outcome"] == "aborted"][-1]
    assert SECRET in rec["reason"] or "telco.csv" in rec["reason"], rec
    await good(c, IDS[18:20])


# ---------------------------------------------------------------- write-ahead (runs last)


async def test_sigkill_mid_session_keeps_the_nonce_and_the_budget(cluster: Cluster) -> None:
    """telco is killed during a session; restarted, it still knows the session (its
    `accepted` line was on disk before it ran): a replay is refused, and the budget counts
    it, so a request that would fit without it is refused by telco too."""
    c = cluster
    await c.wait_idle()
    ids = IDS[300:1000]
    body = c.request(ids=ids, reveal="reasons", timeout=30.0)
    victim = c.daemons["telco"]

    def progress(message: str) -> None:
        if "connected to all parties" in message and victim.poll() is None:
            victim.kill()

    with pytest.raises(SessionError, match="telco"):
        await submit_request(c.config("bank"), body, ids, timeout=30, progress=progress)
    victim.wait(5)
    c.start("telco")
    await c.wait_idle()
    recs = [r for r in c.audit("telco") if r.get("session") == body["session"]]
    assert recs and recs[0]["outcome"] == "accepted" and recs[0]["count"] == len(ids), recs

    assert await c.collect(body, wait=1.0) == {}  # the same signed request again
    replayed = await c.audited(
        "telco", lambda r: r["outcome"] == "refused" and r.get("session") == body["session"]
    )
    assert "replayed request" in replayed[-1]["reason"], replayed

    charged = {
        r["session"]: r["count"]
        for r in c.audit("telco")
        if r["outcome"] == "accepted" and r.get("requester") == "bank"
    }
    fits_without = BUDGET - (sum(charged.values()) - charged[body["session"]])
    probe = c.resign({**c.request(ids=IDS[20:21]), "count": fits_without, "ids": None})
    got = await c.collect(probe)
    assert got["telco"]["reason"] == "telco: refused: daily budget exceeded", got
    await good(c, IDS[21:23])


# ---------------------------------------------------------------- against mosquitto


@needs_mosquitto
async def test_oversized_payloads_and_bad_signatures_leave_a_bounded_trace(tmp_path) -> None:
    """mosquitto with the generated configuration drops 1,000,000 ids and 10 MB fields (its
    size limit); what fits under the limit but fails parsing or the signature check grows
    each party's audit file by one summary line under 1 KB. A good request succeeds."""
    c, _ = mosquitto_cluster(tmp_path, observer=True)
    prefix = c.cons.topic_prefix
    c.stop_broker()  # the test's own client may also publish requests, as a requester could
    conf = write_config(c.root, tmp_path / "mosquitto", c.broker_port, observer=True)
    acl = tmp_path / "mosquitto" / "acl"
    acl.write_text(acl.read_text() + f"topic write {prefix}/request\n")
    tls = observer_tls(c.root, tmp_path / "observer")
    body = c.request(ids=["A0191"])
    huge = [
        json.dumps({**body, "ids": [f"A{i:07d}" for i in range(1_000_000)]}).encode(),
        json.dumps({**body, "model_id": "m" * 10_000_000}).encode(),
    ]
    under = [
        json.dumps({**body, "ids": [f"A{i:05d}" for i in range(5_000)]}).encode(),  # 50 KB
        json.dumps({**body, "reveal": "decision"}).encode(),  # a bad signature
    ]
    with c.running([MOSQUITTO, "-c", str(conf)]):  # type: ignore[list-item]
        await c.wait_idle()
        sizes = {n: (c.root / n / "audit.jsonl").stat().st_size for n in NAMES}
        for payload in huge:
            with contextlib.suppress(aiomqtt.MqttError):  # the broker may drop the sender
                async with client(c.broker_port, tls, "observer") as obs:
                    await obs.publish(f"{prefix}/request", payload, qos=1)
        async with client(c.broker_port, tls, "observer") as obs:
            for payload in under:
                await obs.publish(f"{prefix}/request", payload, qos=1)
        digests = {hashlib.sha256(p).hexdigest() for p in under}
        for party in NAMES:
            await c.audited(
                party, lambda r: r.get("sha256") == hashlib.sha256(under[1]).hexdigest()
            )
            new = (c.root / party / "audit.jsonl").read_bytes()[sizes[party] :].splitlines()
            assert len(new) == len(under) and all(len(x) < 1024 for x in new), (party, new)
            recs = c.audit(party)[-len(under) :]
            assert {r["sha256"] for r in recs} == digests  # the huge ones never arrived
        await c.wait_idle()
        out = await score_request(c.config("bank"), ["A0191"], reveal="score", timeout=30)
        assert out.rows == expected_scores(["A0191"])
