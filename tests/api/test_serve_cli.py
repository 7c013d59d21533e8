"""`mpc-credit serve` and `serve token` as commands: where the server may listen, the token
contract, and mutual TLS with a client certificate (no daemon needed: /v1/models)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from mpc_credit.api.tokens import token_hash
from mpc_credit.client import Client
from mpc_credit.client.errors import UnavailableError
from mpc_credit.consortium import pki
from tests.api.serving import Server, cli
from tests.api.stub import consortium_files


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return consortium_files(tmp_path_factory.mktemp("serve-cli"))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "mpc.bank.example"])
def test_no_plain_http_beyond_loopback(config: Path, host: str) -> None:
    done = cli("serve", "--config", str(config), "--host", host, "--port", "0", timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a loopback address" in lines[0] and "TLS" in lines[0]


def test_bad_serve_options_are_one_line(config: Path) -> None:
    for args in (
        ["--tls-cert", "nope.pem"],
        ["--host", "0.0.0.0", "--tls-cert", "a.pem", "--tls-key", "b.pem"],
        ["--max-inflight", "0"],
    ):
        done = cli("serve", "--config", str(config), "--port", "0", *args, timeout=30)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert cli("serve", timeout=30).returncode == 2


def test_the_token_is_the_last_line_and_only_its_hash_is_kept(config: Path) -> None:
    done = cli("serve", "token", "--config", str(config), "--name", "loans", "--reveal",
               "decision,reasons")  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.splitlines()[-1]
    assert token.startswith("mpcc_") and len(token) > 40
    file = config.parent / "serve-tokens.json"
    assert file.stat().st_mode & 0o777 == 0o600
    text = file.read_text()
    assert token not in text and token_hash(token) in text
    (entry,) = [c for c in json.loads(text)["clients"] if c["name"] == "loans"]
    assert entry["reveal"] == ["decision", "reasons"] and entry["rate_per_minute"] == 600
    again = cli("serve", "token", "--config", str(config), "--name", "loans")
    assert again.returncode == 2 and "--rotate" in again.stderr
    rotated = cli("serve", "token", "--config", str(config), "--name", "loans", "--rotate")
    assert rotated.returncode == 0
    assert token_hash(token) not in file.read_text()
    bad = cli("serve", "token", "--config", str(config), "--name", "x", "--reveal", "all")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def _tls_files(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate named `branch-7`."""
    ca = pki.new_authority("bank API CA")
    files = {"ca": folder / "ca.crt"}
    files["ca"].write_bytes(pki.pem(ca.cert))
    for stem, cn, kw in (
        ("server", "127.0.0.1", {"server": True}),
        ("client", "branch-7", {"client": True}),
        ("stranger", "nobody", {"client": True}),
    ):
        key, cert = pki.issue_cert(ca, cn, **kw)  # type: ignore[arg-type]
        files[stem] = folder / f"{stem}.crt"
        files[stem].write_bytes(pki.pem(cert))
        files[f"{stem}.key"] = folder / f"{stem}.key"
        pki.write_private(files[f"{stem}.key"], pki.key_pem(key))
    return files


def _context(f: dict[str, Path], client: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(f["ca"]))
    if client is not None:
        ctx.load_cert_chain(str(f[client]), str(f[f"{client}.key"]))
    return ctx


def test_mutual_tls_names_the_client_by_its_certificate(config: Path, tmp_path: Path) -> None:
    f = _tls_files(tmp_path)
    done = cli("serve", "token", "--config", str(config), "--name", "branch-7")
    assert done.returncode == 0
    server = Server(
        config,
        *("--tls-cert", str(f["server"]), "--tls-key", str(f["server.key"])),
        *("--client-ca", str(f["ca"])),
        scheme="https",
        verify=_context(f, "client"),
    )
    try:
        # no token: the certificate names the client, so it gets past 401 to the models,
        # which need the daemon (not running here)
        with (
            Client(server.url, verify=_context(f, "client")) as api,
            pytest.raises(UnavailableError, match="daemon does not answer"),
        ):
            api.models()
        other = httpx.get(server.url + "/v1/models", verify=_context(f, "stranger"))
        assert other.status_code == 401 and "nobody" in other.json()["detail"]
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            httpx.get(server.url + "/v1/models", verify=_context(f))  # no client certificate
    finally:
        assert server.stop() == 0
    log = [json.loads(x) for x in (config.parent / "serve-access.jsonl").read_text().splitlines()]
    assert any(x["client"] == "branch-7" and x["via"] == "certificate" for x in log)
