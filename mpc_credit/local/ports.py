"""Free TCP ports on the loopback interface, for local consortia and tests."""

from __future__ import annotations

import random
import socket


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


def free_port_blocks(n: int, width: int, lo: int = 20000, hi: int = 60000) -> list[int]:
    """Bases of n consecutive blocks of `width` free ports each, in [lo, hi) (best effort)."""
    for _ in range(100):
        start = random.randrange(lo, hi - n * width)
        if all(_is_free(p) for p in range(start, start + n * width)):
            return [start + i * width for i in range(n)]
    raise RuntimeError(f"no block of {n * width} free ports between {lo} and {hi}")
