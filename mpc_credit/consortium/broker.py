"""The control-plane broker: an embedded amqtt broker for local use, and a mosquitto 2
configuration generator (TLS client certificates bound to client ids, per-party ACLs, a
message size limit, a revocation list) for real deployments.

The broker carries control messages only (requests, acknowledgements, progress,
presence). It never sees a feature value, a share or a result: those travel over the
parties' mutually authenticated TLS links and the receiver's local control socket.

amqtt enforces neither client certificates nor ACLs, and is MQTT 3.1.1 only: the embedded
broker therefore listens on loopback only, without TLS; a network needs mosquitto. amqtt
also replays retained messages regardless of ACLs, so the only retained messages are
presence states, which are public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpc_credit.consortium.config import PARTY_NAME, TOPIC_PREFIX, Consortium, load_consortium
from mpc_credit.consortium.registry import publishers
from mpc_credit.errors import UsageError
from mpc_credit.jsonwire import MAX_BYTES

log = logging.getLogger("mpc_credit.broker")
PACKET_HEADROOM = 1024  # bytes of an MQTT packet besides its payload (topic, header)
# mosquitto's resource limits (docs/deployment.md, "The broker's limits"):
MAX_CONNECTIONS = 1024  # clients at once on the listener; keep LimitNOFILE well above it
MAX_INFLIGHT = 20  # QoS 1 messages on their way to one client, unacknowledged
MAX_QUEUED = 1000  # QoS 1 messages queued for one client beyond those; more are dropped
MAX_QUEUED_BYTES = 8 * 1024 * 1024  # the same queue's bytes
MAX_KEEPALIVE = 60  # seconds: the longest keep-alive the broker grants (MQTT 5 clients)
PERSISTENT_EXPIRY = "1h"  # a clean_session=false session left behind is dropped after this


def check_loopback(host: str) -> str:
    """`host` if it is a loopback address: the embedded broker serves this machine only."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"--host {host}: the embedded broker listens on loopback only (it enforces no client "
            "certificates or ACLs); for a network use mosquitto: mpc-credit broker mosquitto-config"
        )
    return host


def amqtt_config(host: str = "127.0.0.1", port: int = 1883) -> dict[str, Any]:
    """An amqtt broker configuration: one plain TCP listener on a loopback address."""
    listener = {"type": "tcp", "bind": f"{check_loopback(host)}:{port}", "max_connections": 0}
    return {
        "listeners": {"default": listener},
        "timeout_disconnect_delay": 0,
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def start_embedded_broker(host: str = "127.0.0.1", port: int = 1883) -> Any:
    """Start an amqtt broker in this event loop; call `await broker.shutdown()` to stop it."""
    from amqtt.broker import Broker

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(amqtt_config(host, port))
    await broker.start()
    return broker


async def serve_embedded(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Run the embedded broker until SIGINT or SIGTERM."""
    broker = await start_embedded_broker(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mpc-credit broker (amqtt) listening on {host}:{port}", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await broker.shutdown()


# ---------------------------------------------------------------- mosquitto 2


def mosquitto_acl(cons: Consortium) -> str:
    """Per-party ACLs: each party writes only its own presence, registry and status topics;
    only the requesters the policy names may publish requests, only its trainers training
    requests, only its model owners publish requests."""
    p = cons.topic_prefix
    if not TOPIC_PREFIX.fullmatch(p):
        raise UsageError(f"refusing to write an ACL for the unsafe topic prefix {p!r}")
    lines = ["# mosquitto ACL for an mpc-credit consortium (generated)", ""]
    for party in cons.parties:
        n = party.name
        if not PARTY_NAME.fullmatch(n):
            raise UsageError(f"refusing to write an ACL for the unsafe party name {n!r}")
        lines += [
            f"user {n}",
            f"topic readwrite {p}/presence/{n}",
            f"topic read {p}/presence/+",
            f"topic read {p}/request",
            f"topic read {p}/train",
            f"topic read {p}/publish",
            f"topic readwrite {p}/registry/{n}",
            f"topic read {p}/registry/+",
        ]
        if n in cons.policy.requesters:
            lines.append(f"topic write {p}/request")
        if n in cons.policy.trainers:
            lines.append(f"topic write {p}/train")
        if n in publishers(cons):
            lines.append(f"topic write {p}/publish")
        lines += [f"topic write {p}/session/+/{n}", f"topic read {p}/session/+/+", ""]
    return "\n".join(lines)


# mosquitto 2's ACLs cannot tell a retained publish from another: a member may leave retained
# messages on the session topics it writes. Daemons retain presence only, subscribe to presence
# before anything else (so a queue full of retained junk cannot push presence out) and drop a
# retained message on any other topic unread (mpc_credit.consortium.daemon.mqtt).


def _line_safe(value: object, what: str) -> str:
    """`value` as text fit for one configuration line: no newline or control character."""
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise UsageError(f"refusing to write {what} {text!r} into a mosquitto configuration")
    return text


def mosquitto_conf(
    cons: Consortium,
    *,
    acl_file: str | Path,
    port: int = 8883,
    bind: str = "0.0.0.0",
    tls: bool = True,
    cafile: str | Path | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    crlfile: str | Path | None = None,
    user: str | None = None,
    log_file: str | Path | None = None,
    extra: Sequence[str] = (),
) -> str:
    """A mosquitto 2 configuration for the consortium.

    With `tls`, clients must present a certificate from the control-plane CA; the
    certificate's common name (the party name) is their user name for the ACL and their
    client id, so no certificate can take over another party's connection; `crlfile`
    lists revoked client certificates. Payloads over jsonwire.MAX_BYTES are dropped, and a
    client sending a packet much larger than that is disconnected before it is read. The
    listener takes at most MAX_CONNECTIONS clients; each client's outgoing messages are
    bounded (MAX_INFLIGHT in flight, MAX_QUEUED and MAX_QUEUED_BYTES queued, the rest
    dropped), keep-alives are at most MAX_KEEPALIVE seconds, and a persistent session left
    behind expires after PERSISTENT_EXPIRY.

    mosquitto logs to stderr unless `log_file` is given, and it is single-threaded: a log
    write that blocks (a pipe nobody reads, once full) stops the whole broker. Every connection
    that closes before its TLS handshake logs about 220 bytes, so an idle-connection flood
    fills a 64 KiB pipe; hence `log_dest file` where stderr is not read continuously (systemd's
    journal reads it; a test harness's pipe may not).
    """
    lines = [
        "# mosquitto 2 configuration for an mpc-credit consortium (generated)",
        "# Control messages only: no feature value, share or result ever passes here.",
        "per_listener_settings false",
        "persistence false",
        "set_tcp_nodelay true",
        f"max_keepalive {MAX_KEEPALIVE}",
        "retain_available true",  # presence only (see above)
        f"max_inflight_messages {MAX_INFLIGHT}",
        f"max_queued_messages {MAX_QUEUED}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"persistent_client_expiration {PERSISTENT_EXPIRY}",
        f"message_size_limit {MAX_BYTES}",
        f"max_packet_size {MAX_BYTES + PACKET_HEADROOM}",
    ]
    if user:
        lines.append(f"user {_line_safe(user, 'user')}")
    if log_file:
        lines.append(f"log_dest file {_line_safe(log_file, 'log_dest')}")
    lines += [f"acl_file {_line_safe(acl_file, 'acl_file')}", ""]
    lines.append(f"listener {int(port)} {_line_safe(bind, 'bind')}")
    lines.append(f"max_connections {MAX_CONNECTIONS}")
    if tls:
        if not (cafile and certfile and keyfile):
            raise ValueError("a TLS listener needs cafile, certfile and keyfile")
        lines += [
            "allow_anonymous false",
            f"cafile {_line_safe(cafile, 'cafile')}",
            f"certfile {_line_safe(certfile, 'certfile')}",
            f"keyfile {_line_safe(keyfile, 'keyfile')}",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            "tls_version tlsv1.2",
        ]
        if crlfile:
            lines.append(f"crlfile {_line_safe(crlfile, 'crlfile')}")
    else:
        lines += [
            "# Plain TCP: for a closed test network only; anyone can connect and publish.",
            "allow_anonymous true",
        ]
    lines += [_line_safe(x, "a line") for x in extra]
    return "\n".join(lines) + "\n"


def write_mosquitto_files(
    cons: Consortium,
    out: str | Path,
    broker_dir: str | Path,
    *,
    port: int = 8883,
    bind: str = "0.0.0.0",
    tls: bool = True,
    crlfile: str | Path | None = None,
    user: str | None = None,
    log_file: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write `mosquitto.conf` and `acl` into `out`; returns both paths. `log_file`: where
    mosquitto logs instead of stderr (see `mosquitto_conf`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bdir = Path(broker_dir).resolve()
    acl = out / "acl"
    acl.write_text(mosquitto_acl(cons) + "\n", encoding="utf-8")
    conf = out / "mosquitto.conf"
    conf.write_text(
        mosquitto_conf(
            cons,
            acl_file=acl.resolve(),
            port=port,
            bind=bind,
            tls=tls,
            cafile=bdir / "ca.crt",
            certfile=bdir / "server.crt",
            keyfile=bdir / "server.key",
            crlfile=Path(crlfile).resolve() if crlfile else None,
            user=user,
            log_file=Path(log_file).resolve() if log_file else None,
        ),
        encoding="utf-8",
    )
    return conf, acl


def write_loopback_mosquitto_files(
    cons_dir: str | Path,
    out: str | Path,
    port: int,
    *,
    crlfile: str | Path | None = None,
    log_file: str | Path | None = None,
) -> tuple[Path, Path]:
    """`write_mosquitto_files` for the consortium created in `cons_dir` on this machine (`pki
    init`: its `broker/` folder), listening on loopback: tests, benchmarks and soaks. Started
    by root, mosquitto stays root (else it would drop to user mosquitto, who cannot read the
    broker key there)."""
    cons_dir = Path(cons_dir)
    return write_mosquitto_files(
        load_consortium(cons_dir / "consortium.json"),
        out,
        cons_dir / "broker",
        port=port,
        bind="127.0.0.1",
        crlfile=crlfile,
        user="root" if os.geteuid() == 0 else None,
        log_file=log_file,
    )
