"""The control-plane broker: an embedded amqtt broker for local use, and a mosquitto 2
configuration generator (TLS client certificates, per-party ACLs) for real deployments.

The broker carries control messages only (requests, acknowledgements, progress,
presence). It never sees a feature value, a share or a result: those travel over the
parties' mutually authenticated TLS links and the receiver's local control socket.

amqtt is MQTT 3.1.1 only and replays retained messages regardless of ACLs, so the only
retained messages are presence states, which are public.

`python -m mpc_credit.consortium.broker --port 1883` runs the embedded broker in the foreground.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpc_credit.consortium.config import Consortium

log = logging.getLogger("mpc_credit.broker")


def amqtt_config(
    host: str = "127.0.0.1",
    port: int = 1883,
    *,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    cafile: str | Path | None = None,
) -> dict[str, Any]:
    """An amqtt broker configuration: one TCP listener (TLS when a certificate is given)."""
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}
    if certfile is not None:
        listener.update(ssl=True, certfile=str(certfile), keyfile=str(keyfile))
        if cafile is not None:
            listener["cafile"] = str(cafile)
    return {
        "listeners": {"default": listener},
        "timeout_disconnect_delay": 0,
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def start_embedded_broker(host: str = "127.0.0.1", port: int = 1883, **tls: Any) -> Any:
    """Start an amqtt broker in this event loop; call `await broker.shutdown()` to stop it."""
    from amqtt.broker import Broker

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(amqtt_config(host, port, **tls))
    await broker.start()
    return broker


async def serve_embedded(
    host: str, port: int, ready: asyncio.Event | None = None, **tls: Any
) -> None:
    """Run the embedded broker until SIGINT or SIGTERM."""
    broker = await start_embedded_broker(host, port, **tls)
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
    """Per-party ACLs: each party writes only its own presence and status topics; only
    the requesters the policy names may publish requests."""
    p = cons.topic_prefix
    lines = [f"# mosquitto ACL for mpc-credit consortium {cons.name} (generated)", ""]
    for party in cons.parties:
        n = party.name
        lines += [
            f"user {n}",
            f"topic readwrite {p}/presence/{n}",
            f"topic read {p}/presence/+",
            f"topic read {p}/request",
        ]
        if n in cons.policy.requesters:
            lines.append(f"topic write {p}/request")
        lines += [f"topic write {p}/session/+/{n}", f"topic read {p}/session/+/+", ""]
    return "\n".join(lines)


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
    user: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """A mosquitto 2 configuration for the consortium.

    With `tls`, clients must present a certificate from the control-plane CA and the
    certificate's common name (the party name) is their user name for the ACL.
    """
    lines = [
        f"# mosquitto 2 configuration for mpc-credit consortium {cons.name} (generated)",
        "# Control messages only: no feature value, share or result ever passes here.",
        "per_listener_settings false",
        "persistence false",
        "set_tcp_nodelay true",
        "max_keepalive 60",
        "retain_available true",
    ]
    if user:
        lines.append(f"user {user}")
    lines += [f"acl_file {acl_file}", "", f"listener {port} {bind}"]
    if tls:
        if not (cafile and certfile and keyfile):
            raise ValueError("a TLS listener needs cafile, certfile and keyfile")
        lines += [
            "allow_anonymous false",
            f"cafile {cafile}",
            f"certfile {certfile}",
            f"keyfile {keyfile}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
        ]
    else:
        lines += [
            "# Plain TCP: for a closed test network only; anyone can connect and publish.",
            "allow_anonymous true",
        ]
    lines += list(extra)
    return "\n".join(lines) + "\n"


def write_mosquitto_files(
    cons: Consortium,
    out: str | Path,
    broker_dir: str | Path,
    *,
    port: int = 8883,
    bind: str = "0.0.0.0",
    tls: bool = True,
    user: str | None = None,
) -> tuple[Path, Path]:
    """Write `mosquitto.conf` and `acl` into `out`; returns both paths."""
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
            user=user,
        ),
        encoding="utf-8",
    )
    return conf, acl
