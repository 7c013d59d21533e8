"""A daemon's link to the MQTT broker: connect, subscribe, publish, report, presence.

It connects with TLS and a client certificate when configured, Nagle off, and a retained last
will saying `offline`; it announces the party with a retained presence message and hands every
message to the daemon's handler. Every status report carries the party's audit head (`head`, the
seq and hash of its audit log's last line), which the others record; a requester's refusals are
reported at most REFUSALS_BURST per REFUSALS_PERIOD seconds, the rest counted (`unreported`), so
a flood of refused requests cannot flood the broker. Presence messages are signed with the
party's key and carry the time they were signed; the others keep a party's newest one, so a
replayed old message says nothing. The `online` of a connection is signed just before its last
will, so the will (sent by the broker when the connection is lost) is newer than that `online`,
and older than the next connection's. A handler that raises loses only that message (logged in
one line, without the payload); a lost connection is retried with backoff until the daemon
stops.

Only presence and each party's registry snapshot (every registry record it authored, so a
party that connects learns the registry) are retained. The daemon subscribes to presence
first, in a SUBSCRIBE of its own, so the broker queues the retained presence messages before
anything a later subscription brings; a retained message on any other topic (mosquitto's
ACLs cannot forbid a member to leave some on its own session topics) is dropped unread.
Messages received but not yet handled are at most MAX_INCOMING (aiomqtt drops the rest), so
a flood bounds the daemon's memory instead of growing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_credit.consortium.config import Consortium, PartyConfig
from mpc_credit.consortium.daemon.audit import Throttle
from mpc_credit.consortium.messages import OFFLINE, ONLINE, Topics, presence, status

log = logging.getLogger("mpc_credit.daemon")
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 3.0  # seconds between reconnection attempts
MAX_INCOMING = 1000  # messages received from the broker and not yet handled
YIELD_EVERY = 50  # messages handled before the loop lets other tasks run
REFUSALS_BURST, REFUSALS_PERIOD = 20, 10.0  # refuse reports per requester: 20 per 10 s


class _Incoming(asyncio.Queue):
    """aiomqtt's queue of received messages: at most MAX_INCOMING; beyond, a message is
    dropped and counted here, silently (aiomqtt would log a line for each one)."""

    overflow = 0  # messages dropped by every such queue of this process

    def put_nowait(self, item: Any) -> None:
        if self.full():
            type(self).overflow += 1
            return
        super().put_nowait(item)


class MqttLink:
    """The broker connection of one party's daemon."""

    def __init__(
        self,
        cfg: PartyConfig,
        cons: Consortium,
        key: Ed25519PrivateKey,
        on_message: Callable[[str, bytes], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.cfg, self.cons, self.key = cfg, cons, key
        self.party = cfg.party
        self.topics = Topics(cons.topic_prefix)
        self.on_message, self.on_lost = on_message, on_lost
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.state = ONLINE  # what `announce` says: online or draining
        self._hello: bytes | None = None  # this connection's `online`, signed before its will
        self.since = 0.0  # when this connection's presence messages began (their ts are later)
        self.stale = 0  # retained messages on a topic other than presence, dropped unread
        self.head: Callable[[], tuple[int, str]] | None = None  # the party's audit head
        self.snapshot: Callable[[], bytes | None] | None = None  # its registry records
        self.announced: Callable[[str], None] | None = None  # told each state it announced
        self._refusals = Throttle(REFUSALS_PERIOD, REFUSALS_BURST)
        self.unreported = 0  # refusals not published: over a requester's REFUSALS_BURST

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish with QoS 1; False when not connected."""
        client = self.client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain)
            return True
        except aiomqtt.MqttError as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False

    async def report(self, sid: str, phase: str, **fields: Any) -> None:
        """This party's signed status report about session `sid`, with its audit head."""
        if self.head is not None:
            fields["head"] = self.head()
        payload = status(self.key, sid, self.party, phase, **fields)
        await self.publish(self.topics.session(sid, self.party), payload)

    def may_refuse(self, requester: str) -> bool:
        """Whether a refusal of `requester`'s request may be reported: at most REFUSALS_BURST
        per REFUSALS_PERIOD seconds per requester; the others are counted (`unreported`)."""
        if self._refusals.allow(requester) is None:
            self.unreported += 1
            return False
        return True

    async def announce(self, state: str | None = None) -> None:
        """The retained presence message: online or draining, with the MPC address."""
        if state is not None:
            self.state = state
        payload, self._hello = self._hello, None
        if payload is None or self.state != ONLINE:
            payload = self._presence(self.state)
        sent = await self.publish(self.topics.presence(self.party), payload, retain=True)
        if sent and self.announced is not None:
            self.announced(self.state)

    async def announce_registry(self) -> None:
        """The retained registry snapshot: every record this party authored (none: nothing)."""
        payload = self.snapshot() if self.snapshot is not None else None
        if payload is not None:
            await self.publish(self.topics.registry(self.party), payload, retain=True)

    def _presence(self, state: str, **fields: Any) -> bytes:
        """This party's signed presence message, signed now."""
        if state != OFFLINE:
            me = self.cons.party(self.party)
            fields.update(pid=me.pid, host=me.host)
        return presence(self.key, self.party, state, **fields)

    async def say_offline(self, reason: str) -> None:
        """The retained presence `offline`, when stopping on purpose (best effort)."""
        client = self.client
        if client is not None:
            with contextlib.suppress(Exception):
                payload = self._presence(OFFLINE, reason=reason)
                await client.publish(self.topics.presence(self.party), payload, qos=1, retain=True)

    def _client(self) -> aiomqtt.Client:
        b = self.cfg.broker
        tls = None
        if b.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(b.ca) if b.ca else None,
                certfile=str(b.cert) if b.cert else None,
                keyfile=str(b.key) if b.key else None,
            )
        self.since = time.time()
        self._hello = self._presence(ONLINE)
        will = aiomqtt.Will(
            self.topics.presence(self.party),
            self._presence(OFFLINE, reason="connection lost"),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            b.host,
            b.port,
            identifier=f"mpc-credit-{self.cons.name}-{self.party}",
            username=b.username,
            password=b.password(),
            will=will,
            clean_session=True,
            keepalive=b.keepalive,
            tls_params=tls,
            socket_options=NODELAY,
            timeout=5,
            queue_type=_Incoming,
            max_queued_incoming_messages=MAX_INCOMING,
        )

    def _deliver(self, topic: str, payload: bytes) -> None:
        """Hand one message to the daemon; its failure costs only this message."""
        try:
            self.on_message(topic, payload)
        except Exception as exc:
            kind = (self.topics.parse(topic) or ("foreign",))[0]
            log.warning("dropped a %s message: %s in its handler", kind, type(exc).__name__)

    async def _session(self) -> None:
        """One connection: subscribe, announce, deliver until it drops."""
        async with self._client() as client:
            # presence first, on its own: its retained messages are queued before any other
            await client.subscribe(self.topics.presence_all, qos=1)
            await client.subscribe(self.topics.registry_all, qos=1)
            await client.subscribe(
                [
                    (self.topics.request, 1),
                    (self.topics.train, 1),
                    (self.topics.publish, 1),
                    (self.topics.session_all, 1),
                ]
            )
            self.client = client
            await self.announce()
            await self.announce_registry()
            self.connected.set()
            log.info("connected to broker %s:%s", self.cfg.broker.host, self.cfg.broker.port)
            handled = 0
            async for msg in client.messages:
                handled += 1
                if handled % YIELD_EVERY == 0:  # a queue that never empties must not starve
                    await asyncio.sleep(0)  # the other tasks (control socket, sessions)
                topic = str(msg.topic)
                if msg.retain and not self._is_retained(topic):
                    self.stale += 1  # presence and registries only: anything else is left-over
                    continue
                self._deliver(topic, bytes(msg.payload))  # type: ignore[arg-type]

    @property
    def overflow(self) -> int:
        """Messages dropped because MAX_INCOMING were waiting to be handled."""
        return _Incoming.overflow

    def _is_retained(self, topic: str) -> bool:
        """A topic whose retained message means something: presence, a party's registry."""
        kind = self.topics.parse(topic)
        return bool(kind) and kind[0] in ("presence", "registry")

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set; reconnect with backoff when the link drops."""
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                log.warning("broker connection: %s; retrying in %.1f s", exc, backoff)
            except Exception as exc:  # the loop must outlive anything a message can cause
                log.warning("broker link: %s; reconnecting in %.1f s", type(exc).__name__, backoff)
            finally:
                was = self.connected.is_set()
                self.client = None
                self.connected.clear()
                if was:
                    self.on_lost()
                    backoff = BACKOFF_FIRST
            if stop.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(2 * backoff, BACKOFF_MAX)
