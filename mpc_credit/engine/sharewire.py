"""MPyC's share arrays on the wire as plain numbers: what it pickles, without pickle.

MPyC 0.10/0.11 sends numpy arrays of shares (secure-array input, output and re-sharing) with
`pickle.dumps` and reads what a peer sends with `pickle.loads`, which runs any code a peer
puts in the bytes. `install()` puts this module's `dumps`/`loads` in place of `pickle` inside
`mpyc.runtime`: an array of integers becomes a short header and fixed-width little-endian
64-bit limbs, and `loads` accepts exactly that (a known element kind, at most 8 dimensions,
the length the header implies, and inside MPyC's steps exactly the element count and at most
the limbs of the receiving step's own array, checked before any array is built) or raises
ValueError. Nothing else can be sent this way:
`Runtime.transfer` (arbitrary objects) raises instead; engine/exchange.py carries the rest.
MPyC's own `mix32_64bit` format does the same job element by element in Python, about five
times slower on secret-mode batches.
"""

from __future__ import annotations

import os
import struct
import sys
from math import prod
from typing import Any

import numpy as np

MAGIC = b"MCS1"
_HEAD = struct.Struct("<4scBB")  # magic, kind, ndim, limbs
_KINDS = {b"O": object, b"q": np.int64, b"Q": np.uint64}
MAX_NDIM = 8
MAX_LIMBS = 64  # 4096-bit field elements
_MASK = (1 << 64) - 1


class RefusedTransfer(TypeError):
    """An attempt to send something other than an integer array through MPyC's pickle slot."""


def dumps(x: Any, *args: Any, **kwargs: Any) -> bytes:
    """An integer array (object dtype of ints >= 0, int64 or uint64) as header and limbs."""
    if not isinstance(x, np.ndarray):
        raise RefusedTransfer(f"MPyC tried to pickle a {type(x).__name__} for a peer")
    if x.dtype == object:
        words = _limbs(x.reshape(-1))
        kind = b"O"
    elif x.dtype in (np.int64, np.uint64):
        words = x.reshape(-1, 1).astype(x.dtype.newbyteorder("<"), copy=False)
        kind = b"q" if x.dtype == np.int64 else b"Q"
    else:
        raise RefusedTransfer(f"MPyC tried to pickle an array of {x.dtype} for a peer")
    if x.ndim > MAX_NDIM:
        raise RefusedTransfer(f"MPyC tried to send an array of {x.ndim} dimensions")
    head = _HEAD.pack(MAGIC, kind, x.ndim, words.shape[1])
    return head + struct.pack(f"<{x.ndim}Q", *x.shape) + words.tobytes()


def encoded_size(elements: int, limbs: int, ndim: int = MAX_NDIM) -> int:
    """Bytes of an array of `elements` shares of `limbs` limbs each as `dumps` writes it."""
    return _HEAD.size + 8 * ndim + 8 * limbs * elements


def _limbs(flat: np.ndarray) -> np.ndarray:
    """Non-negative Python ints as rows of little-endian 64-bit limbs."""
    if flat.size == 0:
        return np.zeros((0, 1), dtype="<u8")
    try:
        return flat.astype("<u8").reshape(-1, 1)  # every value below 2^64: one limb
    except OverflowError:
        pass
    if int(flat.min()) < 0:
        raise RefusedTransfer("MPyC tried to send negative integers as shares")
    top = int(flat.max())
    n = max(1, (top.bit_length() + 63) // 64)
    if n > MAX_LIMBS:
        raise RefusedTransfer(f"MPyC tried to send integers of {top.bit_length()} bits")
    cols = [((flat >> (64 * k)) & _MASK).astype("<u8") for k in range(n)]
    return np.stack(cols, axis=1)


def loads(data: bytes, *args: Any, **kwargs: Any) -> np.ndarray:
    """The array `dumps` wrote; ValueError for any other bytes. A link's bytearray is read in
    place (no copy of a large payload)."""
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    if len(data) < _HEAD.size:
        raise ValueError("share message shorter than its header")
    magic, kind, ndim, limbs = _HEAD.unpack_from(data)
    if magic != MAGIC or kind not in _KINDS or ndim > MAX_NDIM or not 1 <= limbs <= MAX_LIMBS:
        raise ValueError("not a share message")
    if kind != b"O" and limbs != 1:
        raise ValueError("not a share message")
    at = _HEAD.size + 8 * ndim
    if len(data) < at:
        raise ValueError("share message shorter than its header")
    shape = struct.unpack_from(f"<{ndim}Q", data, _HEAD.size)
    n = prod(shape)
    expected = _expected()
    if expected is not None and (n != expected[0] or limbs > expected[1]):
        raise ValueError(
            f"a share array of {n} elements of {limbs} limbs where this step expects "
            f"{expected[0]} of at most {expected[1]}"
        )
    if len(data) != at + 8 * limbs * n:
        raise ValueError("share message length does not match its shape")
    words = np.frombuffer(data, dtype="<u8", offset=at).reshape(n, limbs)
    if kind == b"q":
        return words.view("<i8").astype(np.int64).reshape(shape)
    if kind == b"Q":
        return words.astype(np.uint64).reshape(shape)
    out = words[:, 0].astype(object)
    for k in range(1, limbs):
        out = out + (words[:, k].astype(object) << (64 * k))
    return out.reshape(shape)


_STEPS = frozenset({"_distribute", "output", "_reshare"})  # MPyC's steps receiving arrays
_RUNTIME_FILE = os.path.join("mpyc", "runtime.py")


def _expected() -> tuple[int, int] | None:
    """What the receiving MPyC step expects: (elements, at most limbs each), from its own
    array's `shape` and `field`, locals of `Runtime._distribute` (input), `output` and
    `_reshare` in MPyC 0.10/0.11, which call `loads` directly or from a comprehension; None
    elsewhere."""
    try:
        frame = sys._getframe(2)
    except ValueError:  # called from the top of a stack: no MPyC step
        return None
    for _ in range(3):
        if frame is None:
            return None
        code = frame.f_code
        if code.co_name in _STEPS and code.co_filename.endswith(_RUNTIME_FILE):
            local = frame.f_locals
            shape, field = local.get("shape"), local.get("field")
            if shape is None or field is None:
                return None
            bits = int(getattr(field, "order", 0)).bit_length()
            return prod(shape), max(1, (bits + 63) // 64)
        frame = frame.f_back
    return None


def install() -> None:
    """Replace `pickle` inside mpyc.runtime by this module (idempotent)."""
    rt = sys.modules.get("mpyc.runtime")
    if rt is None:
        raise RuntimeError("mpyc.runtime is not loaded yet (make a runtime first)")
    rt.pickle = sys.modules[__name__]  # type: ignore[attr-defined]
