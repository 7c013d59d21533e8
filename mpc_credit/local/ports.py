"""Free TCP ports on the loopback interface, for local consortia and tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n distinct ports the system reports free right now (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_floor() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_blocks(n: int, width: int, lo: int = 20000, hi: int | None = None) -> list[int]:
    """Bases of n consecutive blocks of `width` free ports each, in [lo, hi) (best effort).

    `hi` defaults to the bottom of the kernel's ephemeral range: a port above it may be free
    now and taken a moment later as the local port of some outgoing connection, which a
    daemon that binds its MPC port only when a session starts would then find in use.
    """
    hi = ephemeral_floor() if hi is None else hi
    if hi - lo <= n * width:
        raise RuntimeError(f"no room for {n * width} ports between {lo} and {hi}")
    for _ in range(100):
        start = random.randrange(lo, hi - n * width)
        if all(_is_free(p) for p in range(start, start + n * width)):
            return [start + i * width for i in range(n)]
    raise RuntimeError(f"no block of {n * width} free ports between {lo} and {hi}")
