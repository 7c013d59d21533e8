"""The deployment path: mosquitto 2 with the generated configuration (TLS client
certificates bound to client ids, per-party ACLs, a size limit, TCP_NODELAY) and three
daemons connecting over TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess

import aiomqtt
import pytest

from mpc_credit.consortium.requester import score_request
from tests.cluster import expected_scores
from tests.mosquitto import (
    HARDENED,
    MOSQUITTO,
    client,
    mosquitto_cluster,
    needs_mosquitto,
    party_tls,
)

pytestmark = needs_mosquitto


async def test_sessions_through_mosquitto_with_tls_and_acls(tmp_path) -> None:
    c, _ = mosquitto_cluster(tmp_path)
    prefix = c.cons.topic_prefix
    try:
        # the ACL, before the daemons connect (a party's certificate is one connection: the
        # broker binds the client id to it): telco may not publish a request, nor bank's status
        seen: list[str] = []
        async with (
            client(c.broker_port, party_tls(c.root / "telco"), "acl-probe") as telco,
            client(c.broker_port, party_tls(c.root / "bank"), "acl-probe") as bank,
        ):
            await bank.subscribe(f"{prefix}/#")
            await telco.publish(f"{prefix}/request", b'{"type":"request"}', qos=1)
            await telco.publish(f"{prefix}/session/x/bank", b"{}", qos=1)
            await telco.publish(f"{prefix}/session/x/telco", b"{}", qos=1)
            async with asyncio.timeout(10):
                async for m in bank.messages:
                    seen.append(str(m.topic))
                    if str(m.topic) == f"{prefix}/session/x/telco":
                        break  # published last: the two before it were dropped, not late
        assert seen == [f"{prefix}/session/x/telco"]

        # without a client certificate the broker refuses the connection
        plain = ssl.create_default_context(cafile=str(c.root / "broker" / "ca.crt"))
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", c.broker_port, tls_context=plain, timeout=3):
                pass

        c.start()
        await c.wait_idle()
        ids = ["A0191", "A0922"]
        out = await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        assert out.rows == expected_scores(ids)
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), codes


def test_mosquitto_accepts_the_generated_config(tmp_path) -> None:
    """`mosquitto -c conf` starts (syntax and files check) and stops on SIGTERM."""
    c, conf = mosquitto_cluster(tmp_path)
    assert c.broker is not None and c.broker.poll() is None
    c.stop_broker()
    lines = conf.read_text().splitlines()
    for line in HARDENED:
        assert line in lines
    assert subprocess.run([MOSQUITTO, "-h"], capture_output=True).returncode in (0, 3)  # type: ignore[list-item]


async def test_a_new_version_through_mosquitto_carries_no_point_and_obeys_the_acl(
    tmp_path,
) -> None:
    """Publish, approve and score a version through mosquitto with TLS and the generated ACLs:
    an observer of every topic sees names and digests, never a point or a bin edge; telco may
    neither publish a version nor write bank's registry topic."""
    from dataclasses import replace

    from mpc_credit.consortium.control import DECIDE, PUBLISH, ControlRequest
    from mpc_credit.consortium.requester import registry_op
    from mpc_credit.scorecard.model import dump_model, load_model, to_dict
    from tests.conftest import MODEL
    from tests.mosquitto import observer_tls

    c, _ = mosquitto_cluster(tmp_path, observer=True)
    prefix = c.cons.topic_prefix
    base = load_model(MODEL)
    v2 = replace(base, intercept=(base.intercept or 0) + 7)
    dump_model(v2, tmp_path / "v2.json")
    try:
        seen: list[tuple[str, bytes]] = []
        async with client(c.broker_port, observer_tls(c.root, tmp_path / "obs"), "obs") as obs:
            await obs.subscribe(f"{prefix}/#")

            async def watch() -> None:
                async for m in obs.messages:
                    seen.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]

            watcher = asyncio.create_task(watch())
            # telco's certificate is one connection (its client id): probe before it runs
            async with client(c.broker_port, party_tls(c.root / "telco"), "probe") as telco:
                await telco.publish(f"{prefix}/publish", b'{"type":"publish"}', qos=1)
                await telco.publish(f"{prefix}/registry/bank", b'{"type":"registry"}', qos=1)
            c.start()
            await c.wait_idle()
            op = ControlRequest(PUBLISH, model=to_dict(v2), status="champion", timeout=30.0)
            ref = (await registry_op(c.config("bank"), op, timeout=30.0))["model"]
            for party in ("bureau", "telco"):
                approve = ControlRequest(DECIDE, model_id=ref, approve=True)
                await registry_op(c.config(party), approve, timeout=30.0)
            await asyncio.sleep(0.5)
            ids = ["A0191", "A0922"]
            out = await score_request(c.config("bank"), ids, reveal="score", timeout=30)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert (out.model, out.rows) == (ref, expected_scores(ids, "score", tmp_path / "v2.json"))
        topics = [t for t, _ in seen]
        assert f"{prefix}/publish" in topics  # bank's publish request went through
        assert not any(
            t == f"{prefix}/registry/bank" and p == b'{"type":"registry"}' for t, p in seen
        )
        assert b'{"type":"publish"}' not in [p for _, p in seen]  # telco's was dropped
        for topic, payload in seen:
            assert b'"points"' not in payload and b'"edges"' not in payload, topic
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), codes
