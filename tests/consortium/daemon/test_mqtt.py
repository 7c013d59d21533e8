"""The daemon's broker link outlives its message handler: a handler that raises costs only
that message, logged in one line without the payload."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mpc_credit.consortium.config import load_consortium, load_party_config
from mpc_credit.consortium.create import init_consortium
from mpc_credit.consortium.daemon.mqtt import MqttLink
from mpc_credit.consortium.messages import Topics
from mpc_credit.consortium.signing import load_signing_key
from tests.conftest import MODEL

SECRET = "payload-that-must-not-be-logged"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mqtt")
    init_consortium(out, MODEL)
    return out


def link(root: Path, handler) -> MqttLink:  # type: ignore[no-untyped-def]
    cfg = load_party_config(root / "bank" / "party.toml")
    cons = load_consortium(cfg.consortium_file)
    return MqttLink(cfg, cons, load_signing_key(cfg.signing_key), handler, lambda: None)


@pytest.mark.parametrize("error", [ValueError, KeyError, RecursionError, AssertionError])
def test_a_failing_handler_loses_one_message(root: Path, error, caplog) -> None:  # type: ignore[no-untyped-def]
    got: list[bytes] = []

    def handler(topic: str, payload: bytes) -> None:
        if payload.startswith(b"bad"):
            raise error(payload.decode())
        got.append(payload)

    lk = link(root, handler)
    topic = Topics(lk.cons.topic_prefix).request
    with caplog.at_level(logging.WARNING, logger="mpc_credit.daemon"):
        lk._deliver(topic, b"bad " + SECRET.encode())
        lk._deliver(topic, b"good")
    assert got == [b"good"]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"dropped a request message: {error.__name__} in its handler"]
    assert SECRET not in caplog.text


async def test_the_incoming_queue_drops_and_counts_what_exceeds_it() -> None:
    """A flood faster than the daemon handles it costs at most MAX_INCOMING messages of
    memory; the rest are dropped, counted (party status `dropped`), and not logged one by one."""
    from mpc_credit.consortium.daemon.mqtt import _Incoming

    q = _Incoming(maxsize=3)
    before = _Incoming.overflow
    for i in range(10):
        q.put_nowait(i)
    assert q.qsize() == 3 and [q.get_nowait() for _ in range(3)] == [0, 1, 2]
    assert _Incoming.overflow - before == 7
