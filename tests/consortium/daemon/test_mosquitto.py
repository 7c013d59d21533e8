"""The deployment path: mosquitto 2 with the generated configuration (TLS client
certificates bound to client ids, per-party ACLs, a size limit, TCP_NODELAY) and three
daemons connecting over TLS."""

from __future__ import annotations

import asyncio
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
