"""Attacks on the MPC links between party processes, over loopback TLS.

Each party is its own OS process running the daemons' link code (`make_runtime`,
`connect_runtime`, `agree_session`, `share_ids`, a secure computation on arrays, the closing
barrier); one process is the attacker. A crafted pickle sent where MPyC used to unpickle
(the session-id exchange, the id list, array shares) aborts the session and its code never
runs; telco's certificate announcing bank is refused by bureau and by telco.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.mpc_parties import RUNNING, SID, outcomes, spawn, watch
from tests.conftest import OWNERS

IDS = ["a-1", "a-2", "a-3"]


@pytest.fixture(autouse=True)
def restore_mpyc_globals() -> Iterator[None]:
    """make_runtime points MPyC's modules at the newest runtime (this process makes fake
    ones); other tests expect theirs."""
    saved = {
        name: mod.runtime
        for name, mod in list(sys.modules.items())
        if name.startswith("mpyc.") and name != "mpyc.runtime" and hasattr(mod, "runtime")
    }
    yield
    for name, runtime in saved.items():
        sys.modules[name].runtime = runtime  # type: ignore[attr-defined]


class Marker:
    """A pickle whose loading creates a directory: proof that a peer's code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.path,))


async def _steps(mpc: Any, role: str, marker: str) -> int:
    """The daemons' session steps on small data; an attacker role replaces one of them."""
    import numpy as np

    from mpc_credit.engine.exchange import agree_session, broadcast, share_ids

    crafted = pickle.dumps(Marker(marker))
    if role == "pickle-sid":  # answers the session-id exchange with a crafted pickle
        await broadcast(mpc, crafted, range(3))
    else:
        await agree_session(mpc, SID, OWNERS)
    if role == "pickle-ids":  # bank sends a crafted pickle as its list of ids
        await broadcast(mpc, crafted, [0])
    else:
        assert await share_ids(mpc, 0, IDS if mpc.pid == 0 else None, 3, "bank") == IDS
    if role == "pickle-shares":  # its MPyC sends array shares the old way: pickled
        import mpyc.runtime

        from mpc_credit.engine import sharewire

        fake = {"dumps": staticmethod(lambda _: crafted), "loads": sharewire.loads}
        mpyc.runtime.pickle = type("CraftingPickle", (), fake)
    secint = mpc.SecInt(32)
    mine = secint.array(np.array([mpc.pid + 1, 10 * (mpc.pid + 1)]))
    xs = mpc.input(mine, senders=list(range(3)))
    total = (xs[0] + xs[1] + xs[2]) * xs[0]  # a product: shares are re-shared too
    return int(sum(int(v) for v in await mpc.output(total)))


async def _party(role: str, pid: int, folder: str, ports: list[int], marker: str) -> Any:
    from mpc_credit.engine.exchange import shutdown_runtime
    from mpc_credit.engine.links import install_mpc_guard, start_runtime
    from mpc_credit.engine.runtime import make_runtime

    mpc = make_runtime(pid, [("127.0.0.1", p) for p in ports])
    install_mpc_guard()
    await start_runtime(mpc, folder, names=OWNERS)
    RUNNING.append(mpc)
    result = await _steps(mpc, role, marker)
    RUNNING.clear()  # links close from here on
    await shutdown_runtime(mpc)
    return result


async def announce(claimed: int, target: int, address: tuple[str, int], stolen: Any) -> Any:
    """One connection to party `target` at `address`, announcing party `claimed` the way
    MPyC's own client does, with the client certificate of TLS contexts `stolen`."""
    from mpyc import asyncoro

    from mpc_credit.engine.runtime import make_runtime

    fake = make_runtime(claimed, [address] * 3)
    loop = fake._loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        lambda: asyncoro.MessageExchanger(fake, target),
        *address,
        ssl=stolen.client,
        server_hostname=f"MPyC party {target}",
    )
    return transport


async def connect_as(claimed: int, target: int, addresses: list[Any], stolen: Any) -> Any:
    """`announce`, retried until `target` listens; the transport."""
    while True:
        try:
            return await announce(claimed, target, addresses[target], stolen)
        except OSError:
            await asyncio.sleep(0.01)


async def _impostor(target: int, folder: str, ports: list[int]) -> Any:
    """Party 0 announced with the certificate in `folder` (telco's); once `target` drops it."""
    from mpc_credit.engine.tls import TlsContexts

    addresses = [("127.0.0.1", p) for p in ports]
    transport = await connect_as(0, target, addresses, TlsContexts.load(Path(folder), 2))
    while not transport.is_closing():
        await asyncio.sleep(0.01)
    return "dropped"


async def _run(role: str, pid: int, folder: str, ports: list[int], marker: str) -> dict[str, Any]:
    if role.startswith("impostor-at-"):
        return await watch(_impostor(int(role[-1]), folder, ports))
    return await watch(_party(role, pid, folder, ports, marker))


def main(argv: list[str]) -> None:
    role, pid, folder, ports, marker = argv
    out = asyncio.run(_run(role, int(pid), folder, json.loads(ports), marker))
    print(json.dumps(out), flush=True)


def _start(role: str, pid: int, folder: Path, ports: list[int], marker: Path) -> Any:
    args = [role, str(pid), str(folder), json.dumps(ports), str(marker)]
    return spawn("tests.attacks.test_mpc_links", *args)


def _session(
    roles: list[str], folders: list[Path], marker: Path, honest: list[int] | None = None
) -> list[dict[str, Any]]:
    """One process per role (pid = position; an impostor uses telco's folder)."""
    from mpc_credit.local.ports import free_ports

    ports = free_ports(3)
    procs = []
    for pid, role in enumerate(roles):
        folder = folders[2] if role.startswith("impostor") else folders[pid]
        procs.append(_start(role, pid, folder, ports, marker))
    return outcomes(procs, honest if honest is not None else list(range(len(roles))))


def test_honest_parties_compute(folders: list[Path], tmp_path: Path) -> None:
    outs = _session(["honest"] * 3, folders, tmp_path / "pwned")
    assert outs == [{"ok": 606}] * 3  # (1+2+3) * 1 + (10+20+30) * 10 at every party


@pytest.mark.parametrize(
    "attacker, role, expected",
    [
        (2, "pickle-sid", "party telco joined the MPC link for another session"),
        (0, "pickle-ids", "party bank sent a malformed list of applicant ids"),
        (2, "pickle-shares", "not a share message"),
    ],
)
def test_a_crafted_pickle_aborts_and_never_runs(
    folders: list[Path], tmp_path: Path, attacker: int, role: str, expected: str
) -> None:
    marker = tmp_path / "pwned"
    roles = ["honest"] * 3
    roles[attacker] = role
    honest = [p for p in range(3) if p != attacker]
    outs = _session(roles, folders, marker, honest)
    for p in honest:
        assert "ok" not in outs[p], outs
        assert expected in outs[p]["error"], outs
    assert not marker.exists()
    pickle.loads(pickle.dumps(Marker(str(marker))))  # the payload is live: loading runs it
    assert marker.is_dir()


@pytest.mark.parametrize("target", [1, 2])
def test_telcos_certificate_claiming_bank_is_refused(
    folders: list[Path], tmp_path: Path, target: int
) -> None:
    """At bureau and at telco, each in its own run (the first refusal aborts the refusing
    party; the daemons then abort the others through the control plane, which this test has
    not: the third party is stopped once the target has answered)."""
    roles = [f"impostor-at-{target}", "honest", "honest"]
    outs = _session(roles, folders, tmp_path / "m", honest=[0, target])
    assert outs[0] == {"ok": "dropped"}
    refusal = "a peer claiming to be party bank presented the certificate of party telco"
    assert outs[target] == {"error": refusal, "session_error": True}
    assert "ok" not in outs[3 - target]


@contextlib.asynccontextmanager
async def _running(c: Any) -> AsyncIterator[None]:
    """A cluster's broker and daemons, idle, for the block; every daemon must exit cleanly."""
    c.start_broker()
    c.start()
    try:
        await c.wait_idle()
        yield
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(code == 0 for code in codes.values()), c.errors


async def test_running_daemons_refuse_a_revoked_party(tmp_path: Path) -> None:
    """Real daemons and broker: after `pki revoke telco` writes the CRL into every party's
    folder, the next session's links refuse telco's certificate; once the list is lifted, a
    request succeeds again (the daemons read the CRL before every session, no restart)."""
    from mpc_credit.consortium.requester import score_request
    from mpc_credit.consortium.revoke import PARTY_CRL, revoke_party
    from mpc_credit.errors import SessionError
    from tests.cluster import Cluster, expected_scores

    ids = ["A0191", "A0922"]
    c = Cluster(tmp_path / "consortium", reveals=("score",))
    async with _running(c):
        revoke_party(c.root, "telco")
        with pytest.raises(SessionError, match="certificate was refused: certificate revoked"):
            await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        for name in OWNERS:
            (c.root / name / PARTY_CRL).unlink()
        await c.wait_idle()
        out = await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        assert out.rows == expected_scores(ids)


async def _scan_as_bank(ports: list[tuple[int, int]], stolen: Any, stop: asyncio.Event) -> int:
    """Connect to every (target pid, port) announcing bank, again and again until `stop`;
    how many links were made (each then refused by its target)."""
    made = 0
    while not stop.is_set():
        for target, port in ports:
            with contextlib.suppress(OSError):
                await announce(0, target, ("127.0.0.1", port), stolen)
                made += 1
        await asyncio.sleep(0.005)
    return made


async def test_running_daemons_refuse_telcos_certificate_claiming_bank(tmp_path: Path) -> None:
    """Real daemons and broker. Bank's daemon is given wrong addresses for bureau and telco
    (its own copy of consortium.json), so during a session it never reaches them; meanwhile an
    attacker holding telco's MPC certificate connects to bureau's and telco's MPC ports
    announcing bank. The session aborts at every party, and the party the attacker reached
    first records the refusal by name; with bank's true addresses back, the next request
    succeeds."""
    from mpc_credit.consortium.requester import score_request
    from mpc_credit.engine.tls import TlsContexts
    from mpc_credit.errors import SessionError
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
    assert 'consortium = "../consortium.json"' in honest_toml
    toml.write_text(
        honest_toml.replace('consortium = "../consortium.json"', 'consortium = "lost.json"')
    )
    stolen = TlsContexts.load(c.root / "telco", 2)
    ports = [
        (c.cons.party(n).pid, c.cons.party(n).mpc_port + k)
        for n in ("bureau", "telco")
        for k in range(c.cons.party(n).mpc_ports)
    ]
    async with _running(c):
        stop = asyncio.Event()
        attack = asyncio.ensure_future(_scan_as_bank(ports, stolen, stop))
        refusal = "a peer claiming to be party bank presented the certificate of party telco"
        with pytest.raises(SessionError, match="MPC link"):
            await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        stop.set()
        # the requester hears the first abort; every party audits its own end soon after
        ends = {
            n: await c.audited(n, lambda r: r.get("outcome") in ("aborted", "done")) for n in OWNERS
        }
        lines = {n: found[-1] for n, found in ends.items()}
        assert all(x["outcome"] == "aborted" for x in lines.values()), lines
        assert len({x["session"] for x in lines.values()}) == 1
        # whichever of bureau and telco the attacker reached first refused it by name; the
        # other then lost that party's link (the requester hears whoever reported first)
        assert refusal in (lines["bureau"]["reason"], lines["telco"]["reason"]), lines
        assert await attack > 0
        c.signal("bank", signal.SIGTERM)
        assert c.wait("bank") == 0
        toml.write_text(honest_toml)
        c.start("bank")
        await c.wait_idle()
        out = await score_request(c.config("bank"), ids, reveal="score", timeout=30)
        assert out.rows == expected_scores(ids)
