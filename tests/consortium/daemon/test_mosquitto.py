"""The deployment path: mosquitto 2 with the generated configuration (TLS client
certificates, per-party ACLs, TCP_NODELAY) and three daemons connecting over TLS."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from mpc_credit.consortium.broker import write_mosquitto_files
from mpc_credit.consortium.requester import score_request
from tests.cluster import Cluster, expected_scores

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)
pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="the mosquitto binary is absent (apt-get install mosquitto)"
)


def mosquitto_cluster(tmp_path: Path) -> tuple[Cluster, Path]:
    """A consortium with broker TLS, and mosquitto running the generated configuration."""
    c = Cluster(tmp_path / "consortium", broker_tls=True)
    conf, _ = write_mosquitto_files(
        c.cons,
        tmp_path / "mosquitto",
        tmp_path / "consortium" / "broker",
        port=c.broker_port,
        bind="127.0.0.1",
        user="root" if os.geteuid() == 0 else None,
    )
    c.start_broker([MOSQUITTO, "-c", str(conf)])  # type: ignore[list-item]
    return c, conf


async def test_sessions_through_mosquitto_with_tls_and_acls(tmp_path) -> None:
    c, _ = mosquitto_cluster(tmp_path)
    try:
        c.start()
        await c.wait_idle()
        ids = ["A0191", "A0922"]
        out = await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        assert out.rows == expected_scores(ids)

        # the ACL: telco's certificate may not publish a request, nor bank's status
        ctx = ssl.create_default_context(cafile=str(c.root / "telco" / "mqtt" / "ca.crt"))
        ctx.load_cert_chain(
            str(c.root / "telco" / "mqtt" / "client.crt"),
            str(c.root / "telco" / "mqtt" / "client.key"),
        )
        seen: list[str] = []
        async with (
            aiomqtt.Client(
                "127.0.0.1", c.broker_port, tls_context=ctx, identifier="acl-probe-telco"
            ) as telco,
            aiomqtt.Client(
                "127.0.0.1", c.broker_port, tls_context=_bank_ctx(c), identifier="acl-probe-bank"
            ) as bank,
        ):
            await bank.subscribe(f"{c.cons.topic_prefix}/#")
            await telco.publish(f"{c.cons.topic_prefix}/request", b'{"type":"request"}', qos=1)
            await telco.publish(f"{c.cons.topic_prefix}/session/x/bank", b"{}", qos=1)
            await telco.publish(f"{c.cons.topic_prefix}/session/x/telco", b"{}", qos=1)
            try:
                async with asyncio.timeout(1.0):
                    async for m in bank.messages:
                        seen.append(str(m.topic))
            except TimeoutError:
                pass
        assert f"{c.cons.topic_prefix}/session/x/telco" in seen
        assert f"{c.cons.topic_prefix}/request" not in seen
        assert f"{c.cons.topic_prefix}/session/x/bank" not in seen

        # without a client certificate the broker refuses the connection
        plain = ssl.create_default_context(cafile=str(c.root / "broker" / "ca.crt"))
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", c.broker_port, tls_context=plain, timeout=3):
                pass
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), codes


def _bank_ctx(c: Cluster) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(c.root / "bank" / "mqtt" / "ca.crt"))
    ctx.load_cert_chain(
        str(c.root / "bank" / "mqtt" / "client.crt"), str(c.root / "bank" / "mqtt" / "client.key")
    )
    return ctx


def test_mosquitto_accepts_the_generated_config(tmp_path) -> None:
    """`mosquitto -c conf` starts (syntax and files check) and stops on SIGTERM."""
    c, conf = mosquitto_cluster(tmp_path)
    assert c.broker is not None and c.broker.poll() is None
    c.stop_broker()
    text = conf.read_text()
    assert "set_tcp_nodelay true" in text and "require_certificate true" in text
    assert subprocess.run([MOSQUITTO, "-h"], capture_output=True).returncode in (0, 3)  # type: ignore[list-item]
