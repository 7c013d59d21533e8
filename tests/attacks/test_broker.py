"""Attacks on the control-plane broker: against a real mosquitto started with the generated
configuration, and against the embedded broker's command line.

Each attack is refused, and (where daemons run) the next good request succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys

import aiomqtt
import pytest

from mpc_credit.consortium.requester import score_request
from mpc_credit.consortium.revoke import MQTT_CRL, revoke_party
from mpc_credit.jsonwire import MAX_BYTES
from tests.cluster import expected_scores
from tests.mosquitto import (
    MOSQUITTO,
    client,
    mosquitto_cluster,
    needs_mosquitto,
    observer_tls,
    party_tls,
    write_config,
)


def _presence(m: aiomqtt.Message) -> tuple[str, str]:
    state = json.loads(bytes(m.payload)).get("state") if m.payload else "cleared"  # type: ignore[arg-type]
    return str(m.topic).rsplit("/", 1)[1], str(state)


@needs_mosquitto
async def test_another_partys_client_id_does_not_throw_it_off(tmp_path) -> None:
    """telco's certificate with bank's client id: the broker replaces the id by telco's
    certificate identity, so only telco's own daemon is displaced; bank stays online."""
    c, _ = mosquitto_cluster(tmp_path, observer=True)
    prefix = c.cons.topic_prefix
    states: list[tuple[str, str]] = []
    try:
        c.start()
        await c.wait_idle()
        obs_tls = observer_tls(c.root, tmp_path / "observer")
        async with client(c.broker_port, obs_tls, "observer") as obs:
            await obs.subscribe(f"{prefix}/presence/+", qos=1)
            stolen = f"mpc-credit-{c.cons.name}-bank"  # the id bank's daemon connects with
            with contextlib.suppress(aiomqtt.MqttError):  # dropped when telco's daemon returns
                async with client(c.broker_port, party_tls(c.root / "telco"), stolen):
                    pass
            async with asyncio.timeout(30):
                async for m in obs.messages:
                    states.append(_presence(m))
                    if states[-1] == ("bank", "offline"):
                        break  # the attack worked
                    # the attack displaced telco's own daemon, which has come back since
                    if ("telco", "offline") in states and states[-1] == ("telco", "online"):
                        break
        assert ("bank", "offline") not in states, states
        assert (await c.status("bank"))["connected"]
        await c.wait_idle()
        out = await score_request(c.config("bank"), ["A0191"], reveal="score", timeout=30)
        assert out.rows == expected_scores(["A0191"])
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), (codes, c.errors)


@needs_mosquitto
async def test_oversized_publishes_are_dropped(tmp_path) -> None:
    """A payload over jsonwire.MAX_BYTES never reaches a subscriber; a packet far over it
    ends the sender's connection before the broker reads it."""
    c, _ = mosquitto_cluster(tmp_path, observer=True)
    topic = f"{c.cons.topic_prefix}/session/x/telco"  # telco may write here
    try:
        obs_tls = observer_tls(c.root, tmp_path / "observer")
        async with client(c.broker_port, obs_tls, "observer") as obs:
            await obs.subscribe(topic, qos=1)
            async with client(c.broker_port, party_tls(c.root / "telco"), "telco") as telco:
                await telco.publish(topic, b"x" * (MAX_BYTES + 1), qos=1)
                await telco.publish(topic, b"marker", qos=1)
            sizes = []
            async with asyncio.timeout(10):
                async for m in obs.messages:
                    sizes.append(len(bytes(m.payload)))  # type: ignore[arg-type]
                    if m.payload == b"marker":
                        break  # published after the big one, on the same topic: in order
            assert sizes == [len(b"marker")]

            with contextlib.suppress(aiomqtt.MqttError):
                async with client(c.broker_port, party_tls(c.root / "telco"), "telco") as telco:
                    await telco.publish(topic, b"y" * (4 * MAX_BYTES), qos=1)
                    await telco.publish(topic, b"after", qos=1)
                pytest.fail("the connection survived a packet four times the limit")
            async with client(c.broker_port, party_tls(c.root / "telco"), "telco") as telco:
                await telco.publish(topic, b"marker2", qos=1)
            async with asyncio.timeout(10):
                async for m in obs.messages:
                    assert m.payload == b"marker2"  # neither the huge packet nor "after"
                    break
    finally:
        c.stop_broker()


@needs_mosquitto
async def test_a_revoked_certificate_cannot_connect(tmp_path) -> None:
    c, _ = mosquitto_cluster(tmp_path)
    c.stop_broker()
    revoke_party(c.root, "telco")
    conf = write_config(c.root, tmp_path / "mosquitto", c.broker_port, crlfile=c.root / MQTT_CRL)
    assert f"crlfile {(c.root / MQTT_CRL).resolve()}" in conf.read_text().splitlines()
    c.start_broker([MOSQUITTO, "-c", str(conf)])  # type: ignore[list-item]
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with client(c.broker_port, party_tls(c.root / "telco"), "telco"):
                pass
        async with client(c.broker_port, party_tls(c.root / "bank"), "bank") as bank:
            await bank.publish(f"{c.cons.topic_prefix}/session/x/bank", b"{}", qos=1)
    finally:
        c.stop_broker()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0: the embedded broker listens on loopback only"),
        (["--certfile", "x"], "--certfile: the embedded broker cannot enforce client certificates"),
        (
            ["--cafile", "ca.crt"],
            "--cafile: the embedded broker cannot enforce client certificates",
        ),
    ],
)
def test_the_embedded_broker_refuses_what_it_cannot_enforce(args, reason) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mpc_credit", "broker", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mpc-credit: {reason}"), proc.stderr
