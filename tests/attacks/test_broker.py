"""Attacks on the control-plane broker: against a real mosquitto started with the generated
configuration, and against the embedded broker's command line.

Each attack is refused, and (where daemons run) the next good request succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest

from mpc_credit.consortium.broker import MAX_CONNECTIONS, MAX_INFLIGHT, MAX_QUEUED
from mpc_credit.consortium.messages import OFFLINE, ONLINE, presence, status
from mpc_credit.consortium.requester import score_request
from mpc_credit.consortium.revoke import MQTT_CRL, revoke_party
from mpc_credit.consortium.signing import load_signing_key
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


FLOOD = 6000  # messages the hostile member sends
RETAINED = 2000  # of them retained, each on a session topic of its own


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@needs_mosquitto
async def test_a_member_flooding_every_topic_it_may_write_exhausts_no_daemon(tmp_path) -> None:
    """telco, with its own valid certificate and signing key, floods what the daemons read:
    FLOOD messages on its session topics (signed status reports of sessions nobody runs, junk,
    RETAINED of them retained) and its presence topic. bank's and bureau's daemons stay
    connected throughout with bounded memory; bureau, restarted with the retained junk still
    on the broker, sees bank's presence; once telco's daemon runs, a good request succeeds."""
    c, _ = mosquitto_cluster(tmp_path)
    prefix = c.cons.topic_prefix
    key = load_signing_key(c.root / "telco" / "signing.key")
    try:
        c.start("bank", "bureau")
        await c.wait_idle(parties=("bank", "bureau"), online=("bank", "bureau"))
        pids = {n: c.daemons[n].pid for n in ("bank", "bureau")}
        rss_before = {n: _rss_kib(pid) for n, pid in pids.items()}
        rss_peak = dict(rss_before)
        sent = 0
        quiet = logging.getLogger("tests.flooder")  # aiomqtt warns of every pending publish
        quiet.setLevel(logging.ERROR)
        async with client(
            c.broker_port, party_tls(c.root / "telco"), "telco", logger=quiet
        ) as telco:
            for batch in range(FLOOD // 100):  # bounded: FLOOD messages in batches of 100
                sends = []
                for k in range(100):
                    i = batch * 100 + k
                    sid = uuid.uuid4().hex
                    topic = f"{prefix}/session/{sid}/telco"
                    if i % 3 == 0:
                        payload = status(key, sid, "telco", "failed", reason="x" * 200)
                    elif i % 3 == 1:
                        payload = b'{"type":"status","junk":"' + b"y" * 2000 + b'"}'
                    else:
                        topic = f"{prefix}/presence/telco"
                        state = ONLINE if i % 2 else OFFLINE
                        payload = presence(key, "telco", state, reason="flood")
                    retain = i < RETAINED * 3 and i % 3 != 2  # session topics only
                    sends.append(telco.publish(topic, payload, qos=1, retain=retain))
                await asyncio.gather(*sends)
                sent += len(sends)
                if batch % 10 == 9:
                    for n, pid in pids.items():
                        rss_peak[n] = max(rss_peak[n], _rss_kib(pid))
                        assert (await c.status(n))["connected"], n
            # a retained empty message clears telco's presence topic for the next test step
            await telco.publish(f"{prefix}/presence/telco", b"", qos=1, retain=True)
        assert sent == FLOOD
        for n in pids:
            st = await c.status(n)
            assert st["connected"] and st["presence"].get("bank") == "online", (n, st)
            rss_peak[n] = max(rss_peak[n], _rss_kib(pids[n]))
            assert rss_peak[n] - rss_before[n] < 64 * 1024, (n, rss_before[n], rss_peak[n])

        # bureau reconnects with RETAINED retained messages on telco's session topics
        old = c.daemons.pop("bureau")
        old.terminate()  # SIGTERM: drains, says offline, exits 0
        assert old.wait(20) == 0
        c.start("bureau")
        await c.wait_idle(parties=("bank", "bureau"), online=("bank", "bureau"))
        # the retained left-overs reach bureau after presence, at most the broker's queue
        # for a client (the rest the broker drops), and bureau drops them unread
        dropped = (await c.status("bureau"))["dropped"]
        assert 0 < dropped <= MAX_INFLIGHT + MAX_QUEUED + 8, dropped
        print(f"flood: RSS KiB before {rss_before}, peak {rss_peak}; bureau dropped {dropped}")

        c.start("telco")
        await c.wait_idle()
        out = await score_request(c.config("bank"), ["A0191"], reveal="score", timeout=30)
        assert out.rows == expected_scores(["A0191"])
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), (codes, c.errors)


def _closed(sock: socket.socket, wait: float) -> bool:
    """Whether the broker closed `sock` (an idle TCP connection) within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@needs_mosquitto
async def test_idle_connections_fill_the_listener_only_up_to_max_connections(tmp_path) -> None:
    """MAX_CONNECTIONS idle TCP connections (no TLS handshake) fill the listener: the broker
    closes every connection beyond at once instead of running out of file descriptors; a party
    cannot connect meanwhile. Per-address limits are the firewall's (docs/deployment.md):
    mosquitto keeps idle connections open. Once they are closed, a party connects again at
    once (the broker logs to a file: a full stderr pipe would stop it, docs/deployment.md)."""
    c, _ = mosquitto_cluster(tmp_path)
    idle: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS):  # bounded: the listener's limit, then one more
            idle.append(socket.create_connection(("127.0.0.1", c.broker_port), timeout=5))
        await asyncio.sleep(0.5)
        assert not any(_closed(s, 0.01) for s in idle[-8:])  # those within the limit stay
        extra = socket.create_connection(("127.0.0.1", c.broker_port), timeout=5)
        assert _closed(extra, 5), "a connection over max_connections stayed open"
        extra.close()
        with pytest.raises(aiomqtt.MqttError):  # a party too, while the listener is full
            async with client(c.broker_port, party_tls(c.root / "bank"), "bank"):
                pass
        for s in idle:
            s.close()
        await asyncio.sleep(0.5)
        async with client(c.broker_port, party_tls(c.root / "bank"), "bank"):
            pass  # the listener has room again: the TLS handshake and CONNECT succeed
    finally:
        for s in idle:
            s.close()
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
