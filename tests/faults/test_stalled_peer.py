"""Whom a party names when its deadline passes mid-computation (`links.stalled_peer`).

A stopped party starves the others one after another, so a party may be waiting for two
peers at once: for the stopped one and for one that waits for the stopped one itself. The
fault test stops a party early in the computation; these cases pin down the choice on
runtimes built by hand, without processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from mpc_credit.engine.links import stalled_peer


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def link(loop: asyncio.AbstractEventLoop, heard: float, waits: int, have: int = 0) -> Any:
    """A peer's link: `waits` receives posted and unanswered, `have` messages not read yet."""
    buffers: dict[int, Any] = {pc: loop.create_future() for pc in range(waits)}
    buffers.update({100 + pc: b"share" for pc in range(have)})
    return SimpleNamespace(buffers=buffers, heard=heard)


def runtime(me: int, protocols: dict[int, Any]) -> Any:
    parties = [SimpleNamespace(pid=p, protocol=protocols.get(p)) for p in range(3)]
    return SimpleNamespace(pid=me, parties=parties)


def test_the_one_peer_waited_for(loop: asyncio.AbstractEventLoop) -> None:
    mpc = runtime(0, {1: link(loop, heard=10.0, waits=3), 2: link(loop, heard=9.0, waits=0)})
    assert stalled_peer(mpc) == 1


def test_of_two_peers_waited_for_the_one_silent_longest(loop: asyncio.AbstractEventLoop) -> None:
    """Bank waits for bureau (stopped at 10.0) and telco (waiting for bureau since 10.2)."""
    mpc = runtime(0, {1: link(loop, heard=10.0, waits=4), 2: link(loop, heard=10.2, waits=7)})
    assert stalled_peer(mpc) == 1


def test_receives_cancelled_with_the_session_still_count(loop: asyncio.AbstractEventLoop) -> None:
    """The runner cancels the computation before it asks whom it waited for."""
    stopped = link(loop, heard=10.0, waits=2)
    for f in stopped.buffers.values():
        f.cancel()
    mpc = runtime(2, {0: link(loop, heard=10.3, waits=0, have=4), 1: stopped})
    assert stalled_peer(mpc) == 1


def test_no_one_when_nothing_is_awaited(loop: asyncio.AbstractEventLoop) -> None:
    """Messages received and not read yet, a link never made, a link torn down (no buffers)."""
    mpc = runtime(1, {0: link(loop, heard=1.0, waits=0, have=2), 2: None})
    assert stalled_peer(mpc) is None
    assert stalled_peer(runtime(0, {1: SimpleNamespace(), 2: SimpleNamespace()})) is None
