"""Helpers for the API tests: a consortium of real daemons, `mpc-credit serve` in front of the
bank's, and tokens made with `mpc-credit serve token`.

The broker is mosquitto with the generated TLS configuration when it is installed (as CI
does), else the embedded one, as the other daemon tests choose. Holds no tests itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from mpc_credit.local.ports import free_ports
from tests.cluster import Cluster
from tests.conftest import ROOT
from tests.mosquitto import MOSQUITTO, mosquitto_cluster

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mpc-credit ARGS` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "mpc_credit", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


@contextlib.contextmanager
def consortium(root: Path, **kw: object) -> Iterator[Cluster]:
    """Three daemons and a broker (mosquitto if installed, else the embedded one)."""
    if MOSQUITTO is None:
        with Cluster(root / "consortium", **kw).running() as c:  # type: ignore[arg-type]
            yield c
        return
    c, _ = mosquitto_cluster(root, **kw)
    try:
        c.start()
        yield c
    finally:
        codes = c.stop()
        c.stop_broker()
    assert all(v == 0 for v in codes.values()), (codes, c.errors)


def make_token(config: Path, name: str, reveal: str = "decision", *more: str) -> str:
    """A new client's token: the last line of `serve token`'s stdout (its contract)."""
    done = cli("serve", "token", "--config", str(config), "--name", name, "--reveal", reveal, *more)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


class Server:
    """`mpc-credit serve` as a subprocess on a free loopback port."""

    def __init__(self, config: Path, *extra: str, scheme: str = "http", **probe: object) -> None:
        """`probe`: httpx options for the /healthz probe (TLS: verify, cert)."""
        (self.port,) = free_ports(1)
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.probe = probe
        argv = [sys.executable, "-m", "mpc_credit", "serve", "--config", str(config)]
        argv += ["--port", str(self.port), *extra]
        self.proc = subprocess.Popen(
            argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.wait_up()

    def wait_up(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"serve exited {self.proc.returncode}: {err[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(self.url + "/healthz", timeout=1, **self.probe)  # type: ignore[arg-type]
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError("serve did not answer /healthz")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_ready(url: str, timeout: float = 20.0) -> None:
    """Until /readyz says 200 (every party online)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = httpx.get(url + "/readyz", timeout=5)
        if last.status_code == 200:
            return
        time.sleep(0.1)
    raise TimeoutError(f"not ready: {last.text if last is not None else ''}")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def reference_records(ids: Sequence[str], reveal: str) -> list[dict[str, object]]:
    """The plaintext reference's results for `ids`, as `score --json` records."""
    from mpc_credit.scorecard.data import load_owner_csv
    from mpc_credit.scorecard.model import load_model
    from mpc_credit.scorecard.reference import reference
    from tests.cluster import NAMES
    from tests.conftest import MODEL, PARTIES

    model = load_model(MODEL)
    tables = {n: load_owner_csv(PARTIES / n / "applicants.csv", model, n) for n in NAMES}
    return reference(model, tables, list(ids), reveal).records()  # type: ignore[arg-type]
