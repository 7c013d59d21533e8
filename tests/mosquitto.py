"""Helpers for tests against a real mosquitto running the generated configuration.

Imported by the mosquitto, enrollment and broker attack tests; it holds no tests itself.
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import pytest

from mpc_credit.consortium import pki
from mpc_credit.consortium.broker import write_loopback_mosquitto_files
from tests.cluster import Cluster

HARDENED = (  # what every generated mosquitto configuration must say
    "set_tcp_nodelay true",
    "require_certificate true",
    "use_identity_as_username true",
    "use_username_as_clientid true",
    "message_size_limit 65536",
    "max_packet_size 66560",
    "max_keepalive 60",
    "max_connections 1024",
    "max_inflight_messages 20",
    "max_queued_messages 1000",
    "max_queued_bytes 8388608",
    "persistent_client_expiration 1h",
)

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None, reason="the mosquitto binary is absent (apt-get install mosquitto)"
)
OBSERVER = "observer"  # a test-only client certificate that may read every topic


def write_config(
    cons_dir: Path,
    out: Path,
    port: int,
    *,
    crlfile: Path | None = None,
    observer: bool = False,
) -> Path:
    """The generated mosquitto configuration for the consortium in `cons_dir`, listening
    on loopback; `observer`: the ACL also lets OBSERVER read everything (tests only)."""
    from mpc_credit.consortium.config import load_consortium

    cons = load_consortium(cons_dir / "consortium.json")
    # to a file: Cluster reads the broker's stderr only at the end, and a full pipe would stop
    # mosquitto (mpc_credit.consortium.broker.mosquitto_conf)
    log_file = out / "mosquitto.log"
    conf, acl = write_loopback_mosquitto_files(
        cons_dir, out, port, crlfile=crlfile, log_file=log_file
    )
    if observer:
        with acl.open("a", encoding="utf-8") as fh:
            fh.write(f"user {OBSERVER}\ntopic read {cons.topic_prefix}/#\n")
    return conf


def mosquitto_cluster(
    tmp_path: Path, *, crlfile: Path | None = None, observer: bool = False, **kw: object
) -> tuple[Cluster, Path]:
    """A consortium with broker TLS, and mosquitto running the generated configuration."""
    c = Cluster(tmp_path / "consortium", broker_tls=True, **kw)  # type: ignore[arg-type]
    conf = write_config(
        c.root, tmp_path / "mosquitto", c.broker_port, crlfile=crlfile, observer=observer
    )
    c.start_broker([MOSQUITTO, "-c", str(conf)])  # type: ignore[list-item]
    return c, conf


def party_tls(folder: Path) -> ssl.SSLContext:
    """The broker client TLS context of the party whose folder is `folder`."""
    ctx = ssl.create_default_context(cafile=str(folder / "mqtt" / "ca.crt"))
    ctx.load_cert_chain(str(folder / "mqtt" / "client.crt"), str(folder / "mqtt" / "client.key"))
    return ctx


def observer_tls(cons_dir: Path, work: Path) -> ssl.SSLContext:
    """A client certificate named OBSERVER from the consortium's control-plane CA."""
    ca = pki.load_authority(cons_dir / "ca", "mqtt-ca")
    key, cert = pki.issue_cert(ca, OBSERVER, client=True)
    work.mkdir(parents=True, exist_ok=True)
    (work / "observer.crt").write_bytes(pki.pem(cert))
    pki.write_private(work / "observer.key", pki.key_pem(key))
    ctx = ssl.create_default_context(cafile=str(cons_dir / "broker" / "ca.crt"))
    ctx.load_cert_chain(str(work / "observer.crt"), str(work / "observer.key"))
    return ctx


def client(port: int, tls: ssl.SSLContext, identifier: str, **kw: object) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", port, tls_context=tls, identifier=identifier, timeout=5, **kw
    )  # type: ignore[arg-type]


def topics(messages: Sequence[aiomqtt.Message]) -> list[str]:
    return [str(m.topic) for m in messages]
