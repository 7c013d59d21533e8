"""A party that tries to exhaust another's memory over the MPC links, over loopback TLS.

Each party is its own OS process running the daemons' link code (tests/attacks/mpc_parties.py);
the victim reports its resident memory (VmRSS at the start, or once connected with its
VmHWM restarted there, and VmHWM at the end, from /proc/self/status) and the test reads the
victim's VmRSS from /proc/PID/status too. The attacks: idle TCP connections to an MPC port
while the session connects (no certificate needed), one oversized share array (under the
ceilings, and under a small session's limits), a flood of empty messages with distinct
labels, messages of varied sizes up to a small session's per-peer cap, and an aborted
session followed by a good one in the same victim process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.hostile import flood_empty_messages, memory_kb
from tests.attacks.mpc_parties import RUNNING, SID, TIMEOUT, outcomes, spawn, watch
from tests.conftest import OWNERS

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

BOUND_MB = 50  # what an attack may add to the victim's resident memory
IDLE = 2000  # idle TCP connections opened to the victim's MPC port
TINY = 3_000_000  # empty messages with distinct labels
BIG = 255 << 20  # bytes of the oversized share array
NEAR_MB = 4  # what a message refused from its header may add to the victim's peak
MARGIN_MB = 8  # the allocator's and the TLS layer's own, over a bound computed from the limits
RELEASE_MB = 16  # how far above its start the victim's VmRSS may stay after an aborted session
FILL_SIZES = (0, 100, 4096, 65_535, 65_536, 300_000, 1 << 20, 700_000)  # bytes, in turn


def _oversized_dumps(*args: Any, **kwargs: Any) -> bytes:
    """A well-formed share array of BIG bytes, whatever MPyC asked to send."""
    from mpc_credit.engine import sharewire

    n = BIG // 8
    return sharewire._HEAD.pack(sharewire.MAGIC, b"O", 1, 1) + struct.pack("<Q", n) + bytes(8 * n)


async def _party(role: str, pid: int, folder: str, ports: list[int], opts: dict[str, Any]) -> int:
    """One party's session; opts["small"]: its links held to a small session's limits (the
    floors); opts["restart"]: its peak memory measured from its start once connected (START)."""
    import numpy as np

    from mpc_credit.engine.exchange import agree_session, shutdown_runtime
    from mpc_credit.engine.links import LinkLimits, install_mpc_guard, start_runtime
    from mpc_credit.engine.runtime import make_runtime

    mpc = make_runtime(pid, [("127.0.0.1", p) for p in ports])
    install_mpc_guard()
    go = Path(folder, "go")
    while role == "late" and not go.exists():  # until the test's attack is over
        await asyncio.sleep(0.05)
    limits = LinkLimits.for_session(0) if opts.get("small") else None
    await start_runtime(mpc, folder, names=OWNERS, limits=limits)
    RUNNING.append(mpc)
    await agree_session(mpc, SID, OWNERS)
    if opts.get("restart"):
        START.append(_restart_peak())
    if role == "fill":
        await _fill(mpc, 1)
    if role == "flood":
        await flood_empty_messages(mpc, 1, TINY)
    if role == "big-share":
        import mpyc.runtime

        from mpc_credit.engine import sharewire

        def loads(data: bytes) -> Any:  # its own share of its input is one of them too
            return np.zeros(2, dtype=object) if len(data) > BIG else sharewire.loads(data)

        fake = {"dumps": staticmethod(_oversized_dumps), "loads": staticmethod(loads)}
        mpyc.runtime.pickle = type("OversizedPickle", (), fake)
    secint = mpc.SecInt(32)
    xs = mpc.input(secint.array(np.array([pid + 1, 10 * (pid + 1)])), senders=list(range(3)))
    total = (xs[0] + xs[1] + xs[2]) * xs[0]
    result = int(sum(int(v) for v in await mpc.output(total)))
    RUNNING.clear()
    await shutdown_runtime(mpc)
    return result


START: list[int] = []  # VmRSS in KiB once connected, where the peak was restarted


def _restart_peak() -> int:
    """Reset this process's VmHWM to its VmRSS (clear_refs 5); that VmRSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return memory_kb()["VmRSS"]


async def _fill(mpc: Any, target: int) -> None:
    """Messages of FILL_SIZES bytes in turn to `target`, each with a label no step uses,
    until the link drops (at most 64 MiB)."""
    link = mpc.parties[target].protocol
    sent = 0
    for i in range(1 << 16):
        if link.transport is None or link.transport.is_closing() or sent > 64 << 20:
            return
        size = FILL_SIZES[i % len(FILL_SIZES)]
        link.transport.write(struct.pack("<qI", (1 << 40) + i, size) + bytes(size))
        sent += 12 + size
        await asyncio.sleep(0.001)


async def _run(role: str, pid: int, folder: str, ports: list[int], opts: Any) -> dict[str, Any]:
    import mpc_credit.engine.links  # noqa: F401  (imported before the start, MPyC after it)

    base = memory_kb()["VmRSS"]
    if role == "twice":
        return await _twice(pid, folder, ports, opts["then"])
    out = await watch(_party(role, pid, folder, ports, opts))
    if opts.get("linger"):  # keep its links up until the test stops it
        await asyncio.sleep(TIMEOUT)
    return {**out, "base_kb": START[0] if START else base, "hwm_kb": memory_kb()["VmHWM"]}


async def _twice(pid: int, folder: str, ports: list[int], then: list[int]) -> dict[str, Any]:
    """An honest party's session (a peer attacks it), then its next session with other peers,
    as a daemon runs them: its memory at the start, at its peak, after the aborted session is
    torn down (collected, then trimmed), and after the next session."""
    from mpc_credit.engine.links import MPC_FAILURES, reclaim_memory, teardown_runtime

    first = await watch(_party("honest", pid, folder, ports, {"restart": True}))
    figures = {"start_kb": START[0], "hwm_kb": memory_kb()["VmHWM"]}
    teardown_runtime(RUNNING[0], reclaim=False)
    RUNNING.clear()
    gc.collect()
    figures["collected_kb"] = memory_kb()["VmRSS"]
    reclaim_memory()
    figures["trimmed_kb"] = memory_kb()["VmRSS"]
    MPC_FAILURES.clear()
    second = await watch(_party("honest", pid, folder, then, {}))
    return {"first": first, **second, **figures, "end_kb": memory_kb()["VmRSS"]}


def main(argv: list[str]) -> None:
    role, pid, folder, ports, opts = argv
    out = asyncio.run(_run(role, int(pid), folder, json.loads(ports), json.loads(opts)))
    print(json.dumps(out), flush=True)


def _start(role: str, pid: int, folder: Path, ports: list[int], **opts: Any) -> Any:
    args = [role, str(pid), str(folder), json.dumps(ports), json.dumps(opts)]
    return spawn("tests.attacks.test_mpc_exhaustion", *args)


def _grown_mb(out: dict[str, Any]) -> float:
    grown = (out["hwm_kb"] - out["base_kb"]) / 1024
    print(f"victim peak - start: {grown:.1f} MB ({out})")  # the figures docs/security.md gives
    return grown


def _listening(port: int, deadline: float) -> None:
    """Wait until something accepts on `port` (the probe takes no handshake slot for long:
    it is closed at once)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listened on port {port}")


def test_idle_connections_to_an_mpc_port_cost_the_victim_little(folders: list[Path]) -> None:
    """Telco (pid 2) listens for bank and bureau; bureau joins at once, bank once the
    attack is over. Meanwhile IDLE plain TCP connections (no TLS, no certificate) are opened to
    telco's MPC port and held: telco closes all but one at once and that one at its
    handshake deadline, its memory stays within BOUND_MB, and bank, connecting afterwards,
    still gets in: the session computes at every party."""
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    procs = [_start(role, pid, folders[pid], ports) for pid, role in enumerate(OWNERS)]
    procs[0].kill()
    procs[0].wait()
    procs[0] = _start("late", 0, folders[0], ports)
    victim = procs[2]
    idle: list[socket.socket] = []
    try:
        _listening(ports[2], time.monotonic() + 20)
        before = memory_kb(victim.pid)["VmRSS"]
        t0 = time.monotonic()
        for _ in range(IDLE):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", ports[2]), 2.0))
        took = time.monotonic() - t0
        time.sleep(0.5)
        assert victim.poll() is None, (took, victim.communicate())
        after = memory_kb(victim.pid)["VmRSS"]
    except BaseException:
        for p in procs:
            p.kill()
            p.communicate()
        raise
    finally:
        for s in idle:
            s.close()
        (folders[0] / "go").touch()
    outs = outcomes(procs, [0, 1, 2])
    print(f"{len(idle)} idle connections in {took:.1f} s: VmRSS {before} -> {after} KiB")
    assert len(idle) > IDLE // 2, "the attack barely connected"
    assert (after - before) / 1024 < BOUND_MB, (before, after)
    assert [o.get("ok") for o in outs] == [606] * 3, outs
    assert _grown_mb(outs[2]) < BOUND_MB, outs[2]


def test_an_oversized_share_array_is_refused_before_it_is_built(folders: list[Path]) -> None:
    """Without session limits (the ceilings), telco sends every share array as BIG bytes of a
    well-formed array; bank and bureau buffer it once (the payload is the link's buffer, not
    a copy) and refuse it from its share header (this step expects 2 elements) without
    building it."""
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    roles = ["honest", "honest", "big-share"]
    procs = [_start(r, p, folders[p], ports) for p, r in enumerate(roles)]
    outs = outcomes(procs, [0, 1])
    refusal = "a share array of 33423360 elements of 1 limbs where this step expects 2 of"
    assert any(refusal in out["error"] for out in outs[:2]), outs  # the other: a knock-on
    for out in outs[:2]:
        assert "ok" not in out, out
        assert _grown_mb(out) < (BIG >> 20) + BOUND_MB, out  # buffered once, never an array


def test_a_flood_of_empty_messages_hits_the_cap(folders: list[Path]) -> None:
    """Bank sends bureau TINY empty messages with labels no step uses; each counts its floor,
    so bureau drops the link at MAX_UNCLAIMED and aborts with a public reason."""
    from mpc_credit.engine.links import MAX_UNCLAIMED
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    procs = [_start(r, p, folders[p], ports) for p, r in enumerate(["flood", "honest", "honest"])]
    outs = outcomes(procs, [1])
    assert f"party bank sent over {MAX_UNCLAIMED} bytes nobody asked for" in outs[1]["error"]
    assert _grown_mb(outs[1]) < BOUND_MB, outs[1]


def test_a_message_over_the_session_bound_is_refused_from_its_header(folders: list[Path]) -> None:
    """Every party's links are held to a small session's limits (`LinkLimits.for_session`:
    SMALL_MESSAGE a message); telco sends a BIG share array: bank and bureau refuse it from
    its header, and their peaks stay within NEAR_MB of their start once connected."""
    from mpc_credit.engine.links import SMALL_MESSAGE
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    roles = ["honest", "honest", "big-share"]
    procs = [_start(r, p, folders[p], ports, small=True, restart=True) for p, r in enumerate(roles)]
    outs = outcomes(procs, [0, 1])
    refusal = f"party telco sent an MPC message over {SMALL_MESSAGE} bytes"
    assert any(refusal in out["error"] for out in outs[:2]), outs  # the other: a knock-on
    for out in outs[:2]:
        assert "ok" not in out, out
        assert _grown_mb(out) < NEAR_MB, out


def test_a_peer_filling_its_cap_with_varied_messages(folders: list[Path]) -> None:
    """Small-session limits at every party; bank sends bureau messages of FILL_SIZES bytes in
    turn (up to the message bound) with labels no step uses, until bureau drops the link at
    its cap. Bureau's peak over its start stays under the per-peer bound of its limits (what
    it holds for the peer, `held`, and one payload handed on, `message`) plus MARGIN_MB."""
    from mpc_credit.engine.links import LinkLimits
    from mpc_credit.local.ports import free_ports

    limits = LinkLimits.for_session(0)
    ports = free_ports(3)
    roles = ["fill", "honest", "honest"]
    procs = [_start(r, p, folders[p], ports, small=True, restart=True) for p, r in enumerate(roles)]
    outs = outcomes(procs, [1])
    assert f"party bank sent over {limits.held} bytes nobody asked for" in outs[1]["error"]
    bound_mb = (limits.held + limits.message) / (1 << 20)
    print(f"per-peer bound {bound_mb:.0f} MiB + {MARGIN_MB} MB")
    assert _grown_mb(outs[1]) < bound_mb + MARGIN_MB, outs[1]


def test_after_an_aborted_session_memory_returns_and_the_next_runs(folders: list[Path]) -> None:
    """Bureau runs two sessions in one process, as a daemon does. In the first (the
    ceilings: no session limits) telco sends a BIG share array, which bureau buffers and then
    refuses; once that session is torn down bureau's VmRSS is back within RELEASE_MB of its
    start, and its next session, with honest peers, computes."""
    from mpc_credit.local.ports import free_ports

    ports, then = free_ports(3), free_ports(3)
    procs = [
        _start("honest", 0, folders[0], ports, linger=True),  # its links stay up meanwhile
        _start("twice", 1, folders[1], ports, then=then),
        _start("big-share", 2, folders[2], ports),
        _start("honest", 0, folders[0], then),
        _start("honest", 2, folders[2], then),
    ]
    out = outcomes(procs, [1, 3, 4])[1]
    held, collected, kept = (
        (out[k] - out["start_kb"]) / 1024 for k in ("hwm_kb", "collected_kb", "trimmed_kb")
    )
    print(
        f"victim start {out['start_kb']} KiB, peak +{held:.1f} MB, after the abort "
        f"+{collected:.1f} MB collected, +{kept:.1f} MB trimmed; next session {out.get('ok')}, "
        f"then VmRSS {out['end_kb']} KiB"
    )
    assert "33423360 elements" in out["first"]["error"], out
    assert held > (BIG >> 21), out  # it did hold the message
    assert kept < RELEASE_MB, out
    assert out.get("ok") == 606, out


async def test_idle_connections_to_a_running_daemons_mpc_port(tmp_path: Path) -> None:
    """Real daemons and broker. Bank's daemon is given wrong addresses for bureau and telco
    (as in test_mpc_links), so a session stays in its connecting phase until its deadline;
    meanwhile IDLE plain TCP connections are opened to telco's MPC ports. Telco's memory stays
    within BOUND_MB, the session aborts with a public reason, and with bank's true addresses
    back the next request succeeds."""
    from mpc_credit.consortium.requester import score_request
    from mpc_credit.errors import SessionError
    from tests.attacks.test_mpc_links import _running
    from tests.cluster import Cluster, expected_scores

    ids = ["A0191", "A0922"]
    c = Cluster(tmp_path / "consortium", reveals=("score",))
    toml = c.config("bank")
    honest_toml = toml.read_text()
    lost = json.loads((c.root / "consortium.json").read_text())
    for p in lost["parties"]:
        if p["name"] != "bank":
            p["host"] = "127.0.0.2"  # nothing listens there: bank's links never come up
    (c.root / "bank" / "lost.json").write_text(json.dumps(lost))
    toml.write_text(
        honest_toml.replace('consortium = "../consortium.json"', 'consortium = "lost.json"')
    )
    telco = c.cons.party("telco")
    ports = [telco.mpc_port + k for k in range(telco.mpc_ports)]
    idle: list[socket.socket] = []

    def attack() -> tuple[int, int]:
        """Once one of telco's MPC ports listens, IDLE connections to it; telco's VmRSS
        before and after, in KiB."""
        pid = c.daemons["telco"].pid
        deadline = time.monotonic() + 20
        port = None
        while port is None and time.monotonic() < deadline:
            for p in ports:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", p), 0.5):
                    port = p
                    break
            time.sleep(0.01)
        assert port is not None, "telco's MPC port never listened"
        before = memory_kb(pid)["VmRSS"]
        for _ in range(IDLE):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", port), 2.0))
        return before, memory_kb(pid)["VmRSS"]

    async with _running(c):
        try:
            request = asyncio.ensure_future(
                score_request(c.config("bank"), ids, reveal="score", timeout=20)
            )
            before, after = await asyncio.to_thread(attack)
            print(f"{len(idle)} idle connections to a daemon: VmRSS {before} -> {after} KiB")
            with pytest.raises(SessionError):
                await request
        finally:
            for s in idle:
                s.close()
        assert len(idle) > IDLE // 2, "the attack barely connected"
        assert (after - before) / 1024 < BOUND_MB, (before, after)
        c.signal("bank", signal.SIGTERM)
        assert c.wait("bank") == 0
        toml.write_text(honest_toml)
        c.start("bank")
        await c.wait_idle()
        out = await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        assert out.rows == expected_scores(ids)
