"""What a daemon knows of every party's presence, and how it keeps its own true on the broker.

Presence messages are signed and dated by their party (mpc_credit.consortium.messages); a
daemon keeps each party's newest, so an old one replayed (a retained `offline` of yesterday)
says nothing. Its own retained presence may still be overwritten on a broker without ACLs
(junk, a cleared or a replayed message, all ignored by the others): daemons connecting later
would then not read it, so the daemon announces itself again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from mpc_credit.consortium.daemon.mqtt import MqttLink
from mpc_credit.consortium.messages import Presence

log = logging.getLogger("mpc_credit.daemon")
REASSERT_AFTER = 0.5  # seconds before announcing again a presence someone overwrote


class PresenceBook:
    """Every party's state as its newest signed message says; this party's own upkeep."""

    def __init__(self, link: MqttLink, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.link, self.spawn = link, spawn
        self.states: dict[str, str] = {}  # party -> online, draining or offline
        self._ts: dict[str, float] = {}  # party -> its newest presence message's time
        self._own_seen = False  # our own announce of this connection came back
        self._reasserting = False  # an announce of our presence is pending
        link.announced = self._announced

    def _announced(self, state: str) -> None:
        """Our own state is what we just announced, whether or not its echo comes back (a
        broker whose queue for us is full of retained junk drops the echo)."""
        self.states[self.link.party] = state

    def update(self, p: Presence) -> bool:
        """Take `p` if it is the party's newest; False for a replay (ignored)."""
        if not p.ts > self._ts.get(p.party, -1.0):
            return False
        self._ts[p.party] = p.ts
        self.states[p.party] = p.state
        return True

    def lost(self) -> None:
        """The broker connection dropped: the next one announces anew."""
        self._own_seen = False

    def own_topic(self, msg: Presence | None, *, stopping: bool) -> None:
        """What arrived on our own presence topic (None: a payload that failed decoding).

        Something else than we say: announce again REASSERT_AFTER seconds later (one pending
        at a time). What arrives before our own announce of this connection came back is the
        previous connection's, which that announce replaces.
        """
        link = self.link
        if msg is not None and msg.state == link.state and msg.ts >= link.since:
            self._own_seen = True
            return
        if stopping or not self._own_seen or not link.connected.is_set() or self._reasserting:
            return
        log.warning("our retained presence was overwritten; announcing it again")
        self._reasserting = True
        self.spawn(self._announce_again())

    async def _announce_again(self) -> None:
        try:
            await asyncio.sleep(REASSERT_AFTER)
            await self.link.announce()
        finally:
            self._reasserting = False
