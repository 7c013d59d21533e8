"""Helpers for the daemon tests: a consortium of real daemon processes and a broker.

Imported by the daemon, mosquitto and attack tests; it holds no tests itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiomqtt

from mpc_credit.consortium.config import load_consortium
from mpc_credit.consortium.create import PartyPlan, init_consortium
from mpc_credit.consortium.messages import Topics
from mpc_credit.jsonwire import parse_event
from mpc_credit.local.consortium import daemon_argv
from mpc_credit.local.ports import free_port_blocks, free_ports
from tests.conftest import MODEL, OWNERS, PARTIES, ROOT

NAMES = OWNERS


def wait_port(port: int, timeout: float = 10.0) -> None:
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


class Cluster:
    """A consortium folder, a broker process and one daemon process per party."""

    def __init__(
        self,
        root: Path,
        *,
        broker_tls: bool = False,
        reveals: Sequence[str] = (),
        **options: Any,
    ) -> None:
        """`options`: more of `init_consortium`'s (requesters, per_applicant_daily, ...)."""
        self.root = root
        (self.broker_port,) = free_ports(1)
        bases = free_port_blocks(len(NAMES), 4, lo=30000)  # above any credit amount
        plans = [
            PartyPlan(n, "127.0.0.1", b, PARTIES / n / "applicants.csv")
            for n, b in zip(NAMES, bases)
        ]
        kwargs: dict[str, Any] = dict(options)
        if reveals:
            kwargs["reveals"] = reveals
        init_consortium(
            root,
            MODEL,
            parties=plans,
            broker_port=self.broker_port,
            broker_tls=broker_tls,
            mpc_ports=4,
            force=True,
            **kwargs,
        )
        self.cons = load_consortium(root / "consortium.json")
        self.broker: subprocess.Popen[bytes] | None = None
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.errors: dict[str, str] = {}  # stderr tails of daemons that exited non-zero
        # each process's stderr goes to a file: a pipe read only at the end fills (64 KiB of
        # log lines) and then blocks the process on its next log line
        self.logs = root / "logs"
        self.logfiles: dict[str, Path] = {}  # a daemon's log since its last start

    @contextlib.contextmanager
    def running(self, broker: Sequence[str] | None = None) -> Iterator[Cluster]:
        """The broker (`broker`'s command, default the embedded one) and every daemon for
        the block; then every daemon must have exited 0 on SIGTERM."""
        self.start_broker(broker)
        try:
            self.start()
            yield self
        finally:
            codes = self.stop()
            self.stop_broker()
        assert all(code == 0 for code in codes.values()), f"exit codes {codes}: {self.errors}"

    def config(self, party: str) -> Path:
        return self.root / party / "party.toml"

    def start_broker(self, argv: Sequence[str] | None = None) -> None:
        argv = argv or [
            sys.executable,
            "-m",
            "mpc_credit",
            "broker",
            "--port",
            str(self.broker_port),
        ]
        with self._logfile("broker").open("ab") as err:
            self.broker = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=err)
        wait_port(self.broker_port)

    def stop_broker(self) -> None:
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()
                self.broker.wait()
        self.broker = None

    def start(self, *parties: str) -> None:
        """Start daemons and wait until each is connected to the broker."""
        names = parties or NAMES
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for n in names:
            self.logfiles[n] = self._logfile(n)
            with self.logfiles[n].open("ab") as err:
                self.daemons[n] = subprocess.Popen(
                    daemon_argv(self.config(n)), stdout=subprocess.PIPE, stderr=err, env=env
                )
        for n in names:
            p = self.daemons[n]
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line:
                p.wait(10)
                raise RuntimeError(f"daemon {n} did not start: {self.log(n)[-2000:]}")
            assert parse_event(line)["event"] == "ready"

    def _logfile(self, name: str) -> Path:
        """A new log file for process `name` under root/logs/."""
        self.logs.mkdir(exist_ok=True)
        n = sum(1 for _ in self.logs.glob(f"{name}.*.log"))
        return self.logs / f"{name}.{n}.log"

    def log(self, party: str) -> str:
        """What the party's daemon wrote to stderr since its last start."""
        path = self.logfiles.get(party)
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def signal(self, party: str, sig: int) -> None:
        self.daemons[party].send_signal(sig)

    def wait(self, party: str, timeout: float = 20.0) -> int:
        return self.daemons[party].wait(timeout)

    def stop(self) -> dict[str, int]:
        """SIGTERM every daemon; their exit codes."""
        codes = {}
        for p in self.daemons.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in self.daemons.items():
            try:
                codes[n] = p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[n] = p.wait()
            if codes[n] != 0:
                self.errors[n] = self.log(n)[-3000:]
        self.daemons.clear()
        return codes

    def audit(self, party: str) -> list[dict[str, Any]]:
        """The party's audit records (each with its line's seq, ts and party)."""
        from mpc_credit.consortium.audit import read_records

        return read_records(self.root / party / "audit.jsonl")

    async def status(self, party: str) -> dict[str, Any]:
        from mpc_credit.consortium.requester import daemon_status

        return await daemon_status(self.config(party))

    async def wait_idle(
        self,
        timeout: float = 15.0,
        parties: Sequence[str] = NAMES,
        online: Sequence[str] = NAMES,
    ) -> None:
        """Until every daemon of `parties` is connected, idle, and sees `online` online."""
        t = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < t:
            ok = True
            for n in parties:
                try:
                    st = await self.status(n)
                except Exception:
                    ok = False
                    break
                last[n] = st
                seen = all(st["presence"].get(x) == "online" for x in online)
                if not (st["connected"] and not st["busy"] and st["queued"] == 0 and seen):
                    ok = False
            if ok:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"daemons not idle: {last}")

    def client(self, **kw: Any) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", self.broker_port, **kw)

    # ---------------------------------------------------------- hand-made broker traffic

    def request(self, signer: str = "bank", **kw: Any) -> dict[str, Any]:
        """A request body signed with `signer`'s key (kw: new_request's, e.g. ids, reveal)."""
        from mpc_credit.consortium.messages import new_request
        from mpc_credit.consortium.signing import load_signing_key

        info = self.cons.models[0]
        args: dict[str, Any] = dict(
            requester=signer,
            model_id=info.id,
            model_digest=info.digest,
            mode="shared",
            reveal="score",
            ids=["A0191"],
            timeout=20.0,
        )
        args.update(kw)
        return new_request(load_signing_key(self.root / signer / "signing.key"), **args).body()

    def resign(self, body: dict[str, Any], signer: str = "bank") -> dict[str, Any]:
        """`body` signed again by `signer` (after a test changed it)."""
        from mpc_credit.consortium.messages import REQUEST_LABEL
        from mpc_credit.consortium.signing import load_signing_key, sign

        return sign(REQUEST_LABEL, body, load_signing_key(self.root / signer / "signing.key"))

    @contextlib.asynccontextmanager
    async def sniffing(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every (topic, payload) the broker forwards during the block."""
        captured: list[tuple[str, bytes]] = []
        ready = asyncio.Event()

        async def sniff() -> None:
            async with self.client(identifier=f"sniffer-{time.monotonic_ns()}") as c:
                await c.subscribe("#", qos=1)
                ready.set()
                async for m in c.messages:
                    captured.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]

        task = asyncio.create_task(sniff())
        try:
            await asyncio.wait_for(ready.wait(), 5)
            yield captured
            await asyncio.sleep(0.3)  # what is still on its way
        finally:
            task.cancel()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        async with self.client(identifier=f"test-{time.monotonic_ns()}") as c:
            await c.publish(topic, payload, qos=1, retain=retain)

    async def collect(
        self,
        body: dict[str, Any],
        payload: bytes | None = None,
        wait: float = 5.0,
        *,
        topic: str = "request",
    ) -> dict[str, dict[str, Any]]:
        """Publish a request (`payload`, or `body` as JSON) straight to the broker on `topic`
        (request or train); each party's first status report about `body`'s session, within
        `wait` seconds."""
        topics = Topics(self.cons.topic_prefix)
        sid = body["session"]
        got: dict[str, dict[str, Any]] = {}
        async with self.client(identifier=f"test-{time.monotonic_ns()}") as c:
            await c.subscribe(f"{topics.prefix}/session/{body['session']}/+", qos=1)
            await c.publish(getattr(topics, topic), payload or json.dumps(body).encode(), qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    async for m in c.messages:
                        if not str(m.topic).startswith(f"{topics.prefix}/session/{sid}/"):
                            continue  # amqtt also replays other topics' retained messages
                        d = json.loads(m.payload)  # type: ignore[arg-type]
                        got.setdefault(d["party"], d)
                        if len(got) == len(NAMES):
                            break
        return got

    async def session_records(
        self, party: str, sid: str, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The party's audit records of session `sid`, once its end (done or aborted) is in:
        a result reaches the requester before every other party has audited its end."""
        await self.audited(
            party,
            lambda r: r.get("session") == sid and r.get("outcome") in ("done", "aborted"),
            timeout,
        )
        return [r for r in self.audit(party) if r.get("session") == sid]

    async def audited(
        self, party: str, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The party's audit records that `match`, once there is one (TimeoutError if not)."""
        t = time.monotonic() + timeout
        while True:
            found = [r for r in self.audit(party) if match(r)]
            if found:
                return found
            if time.monotonic() > t:
                raise TimeoutError(f"no such audit record at {party}")
            await asyncio.sleep(0.05)


def csv_rows(party: str) -> dict[str, dict[str, str]]:
    import csv

    with (PARTIES / party / "applicants.csv").open(newline="") as fh:
        return {r["applicant_id"]: r for r in csv.DictReader(fh)}


def expected_scores(
    ids: Sequence[str], reveal: str = "score", model_file: Path = MODEL
) -> list[list[str]]:
    """The plaintext reference result rows for `ids` (with the demo's model, or another)."""
    from mpc_credit.scorecard.data import load_owner_csv
    from mpc_credit.scorecard.model import load_model
    from mpc_credit.scorecard.reference import reference

    model = load_model(model_file)
    tables = {n: load_owner_csv(PARTIES / n / "applicants.csv", model, n) for n in NAMES}
    return reference(model, tables, list(ids), reveal).rows()  # type: ignore[arg-type]
