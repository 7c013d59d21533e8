"""A party that tries to exhaust another's memory over the MPC links, over loopback TLS.

Each party is its own OS process running the daemons' link code (as in test_mpc_links.py);
the victim reports its resident memory (VmRSS at the start, VmHWM at the end, from
/proc/self/status) and the test reads the victim's VmRSS from /proc/PID/status too. Three
attacks: idle TCP connections to an MPC port while the session connects (no certificate
needed), one oversized share array, and a flood of empty messages with distinct labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.test_mpc_links import SID, TIMEOUT, _outcomes
from tests.conftest import OWNERS, ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

BOUND_MB = 50  # what an attack may add to the victim's resident memory
IDLE = 2000  # idle TCP connections opened to the victim's MPC port
TINY = 3_000_000  # empty messages with distinct labels
BIG = 255 << 20  # bytes of the oversized share array


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def _flood(mpc: Any, target: int) -> None:
    """TINY empty messages to `target`, each with its own label no step uses."""
    import numpy as np

    link = mpc.parties[target].protocol
    step = 500_000
    for start in range(0, TINY, step):
        msgs = np.zeros(step, dtype=[("pc", "<i8"), ("size", "<u4")])
        msgs["pc"] = np.arange(start, start + step) + (1 << 40)
        if link.transport is None or link.transport.is_closing():
            return
        link.transport.write(msgs.tobytes())
        await asyncio.sleep(0.05)


def _oversized_dumps(*args: Any, **kwargs: Any) -> bytes:
    """A well-formed share array of BIG bytes, whatever MPyC asked to send."""
    from mpc_credit.engine import sharewire

    n = BIG // 8
    return sharewire._HEAD.pack(sharewire.MAGIC, b"O", 1, 1) + struct.pack("<Q", n) + bytes(8 * n)


async def _party(role: str, pid: int, folder: str, ports: list[int]) -> int:
    import numpy as np

    from mpc_credit.engine.exchange import agree_session, shutdown_runtime
    from mpc_credit.engine.links import install_mpc_guard, start_runtime
    from mpc_credit.engine.runtime import make_runtime

    mpc = make_runtime(pid, [("127.0.0.1", p) for p in ports])
    install_mpc_guard()
    go = Path(folder, "go")
    while role == "late" and not go.exists():  # until the test's attack is over
        await asyncio.sleep(0.05)
    await start_runtime(mpc, folder, names=OWNERS)
    RUNNING.append(mpc)
    await agree_session(mpc, SID, OWNERS)
    if role == "flood":
        await _flood(mpc, 1)
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


RUNNING: list[Any] = []


async def _run(role: str, pid: int, folder: str, ports: list[int]) -> dict[str, Any]:
    from mpc_credit.engine.links import MPC_FAILURES, lost_peers
    from mpc_credit.errors import SessionError

    base = memory_kb()["VmRSS"]
    task = asyncio.ensure_future(_party(role, pid, folder, ports))
    out: dict[str, Any]
    t0 = time.monotonic()
    lost: list[int] = []
    while not task.done() and not MPC_FAILURES and not lost and time.monotonic() - t0 < TIMEOUT:
        await asyncio.sleep(0.05)
        lost = lost_peers(RUNNING[0]) if RUNNING else []
    if not task.done():
        task.cancel()
        if MPC_FAILURES:
            out = {"error": str(MPC_FAILURES[0])}
        else:
            out = {"error": f"lost the MPC link to {lost}" if lost else "timeout"}
    elif task.exception() is not None:
        exc = task.exception()
        out = {"error": str(exc), "session_error": isinstance(exc, SessionError)}
    else:
        out = {"ok": task.result()}
    return {**out, "base_kb": base, "hwm_kb": memory_kb()["VmHWM"]}


def main(argv: list[str]) -> None:
    role, pid, folder, ports = argv
    out = asyncio.run(_run(role, int(pid), folder, json.loads(ports)))
    print(json.dumps(out), flush=True)


def _start(role: str, pid: int, folder: Path, ports: list[int]) -> Any:
    code = "import sys; from tests.attacks.test_mpc_exhaustion import main; main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, role, str(pid), str(folder), json.dumps(ports)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


@pytest.fixture()
def folders(tmp_path: Path) -> list[Path]:
    from mpc_credit.consortium import pki

    return pki.ephemeral_consortium(tmp_path / "tls", 3)


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
    outs = _outcomes(procs, [0, 1, 2])
    print(f"{len(idle)} idle connections in {took:.1f} s: VmRSS {before} -> {after} KiB")
    assert len(idle) > IDLE // 2, "the attack barely connected"
    assert (after - before) / 1024 < BOUND_MB, (before, after)
    assert [o.get("ok") for o in outs] == [606] * 3, outs
    assert _grown_mb(outs[2]) < BOUND_MB, outs[2]


def test_an_oversized_share_array_is_refused_before_it_is_built(folders: list[Path]) -> None:
    """Telco sends every share array as BIG bytes of a well-formed array; bank and bureau
    refuse it from its header (this step expects 2 elements) without building it."""
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    roles = ["honest", "honest", "big-share"]
    procs = [_start(r, p, folders[p], ports) for p, r in enumerate(roles)]
    outs = _outcomes(procs, [0, 1])
    refusal = "a share array of 33423360 elements of 1 limbs where this step expects 2 of"
    assert any(refusal in out["error"] for out in outs[:2]), outs  # the other: a knock-on
    for out in outs[:2]:
        assert "ok" not in out, out
        assert _grown_mb(out) < 3 * (BIG >> 20), out  # the message buffered, never an array


def test_a_flood_of_empty_messages_hits_the_cap(folders: list[Path]) -> None:
    """Bank sends bureau TINY empty messages with labels no step uses; each counts its floor,
    so bureau drops the link at MAX_UNCLAIMED and aborts with a public reason."""
    from mpc_credit.engine.links import MAX_UNCLAIMED
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    procs = [_start(r, p, folders[p], ports) for p, r in enumerate(["flood", "honest", "honest"])]
    outs = _outcomes(procs, [1])
    assert f"party bank sent over {MAX_UNCLAIMED} bytes nobody asked for" in outs[1]["error"]
    assert _grown_mb(outs[1]) < BOUND_MB, outs[1]


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
