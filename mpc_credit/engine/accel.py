"""Vectorized randomness for MPyC's secret sharing: same protocol, fewer Python loops.

MPyC draws Shamir coefficients with one `secrets.randbelow` call per field element
and turns PRF output into field elements one at a time. For batches of millions of
shares these loops, not the arithmetic, dominate. `install()` replaces them with
numpy code that reads the same randomness in bulk:

- `np_random_split`: coefficients c = (128 + bit_length(p))-bit random integer mod p,
  drawn from one os.urandom call (statistical distance to uniform below 2^-128, the
  bound MPyC's own PRF uses); for p < 2^47 (the fields of every SecInt a scorecard
  needs) the shares f(1..m) are evaluated in uint64 by Horner's rule;
- `PRF.__call__`: the very same values as MPyC's (little-endian chunks of the shake-128
  output mod the bound), computed by viewing the output as 64-bit words.

Both are checked against MPyC's originals in tests/test_accel.py. Parties must run
the same implementation of the PRF, so every party process calls `install()`.
"""

from __future__ import annotations

import os
from hashlib import shake_128
from math import prod
from typing import Any

import numpy as np

_MIN_BATCH = 32  # below this, MPyC's own code is as fast
_installed: dict[str, Any] = {}


def _words_to_ints(words: np.ndarray) -> np.ndarray:
    """Rows of little-endian 64-bit words -> one Python int per row (object array)."""
    acc = words[:, 0].astype(object)
    for g in range(1, words.shape[1]):
        acc = acc + (words[:, g].astype(object) << (64 * g))
    return acc


def _bytes_to_ints(raw: bytes, n: int, width: int) -> np.ndarray:
    """n little-endian integers of `width` bytes each, read from raw."""
    w = (width + 7) // 8
    buf = np.zeros((n, 8 * w), dtype=np.uint8)
    buf[:, :width] = np.frombuffer(raw, dtype=np.uint8, count=n * width).reshape(n, width)
    return _words_to_ints(buf.view("<u8"))


_SMALL_MODULUS = 1 << 47  # r * 2^16 + limb stays below 2^64 for r < 2^47


def _bytes_mod(raw: bytes, n: int, width: int, bound: int) -> np.ndarray:
    """from_bytes(chunk, 'little') % bound for n chunks of `width` bytes, as Python ints."""
    if bound >= _SMALL_MODULUS:
        return _bytes_to_ints(raw, n, width) % bound
    return _bytes_mod_u64(raw, n, width, bound).astype(object)


def _bytes_mod_u64(raw: bytes, n: int, width: int, bound: int) -> np.ndarray:
    """The same for bound < 2^47, as uint64: Horner's rule over 16-bit limbs, most
    significant first, where r <- (r * 2^16 + limb) mod bound never overflows."""
    b = np.frombuffer(raw, dtype=np.uint8, count=n * width).reshape(n, width).astype(np.uint64)
    m = np.uint64(bound)
    r = np.zeros(n, dtype=np.uint64)
    top = width - 1
    if width % 2:  # an odd top byte is a limb of its own
        r = b[:, top] % m
        top -= 1
    for j in range(top, 0, -2):  # limb = bytes j-1 (low) and j (high)
        limb = b[:, j - 1] | (b[:, j] << np.uint64(8))
        r = ((r << np.uint64(16)) | limb) % m
    return r


def uniform_below(bound: int, n: int) -> np.ndarray:
    """n integers in range(bound), within 2^-128 of uniform, from one urandom call."""
    width = (bound.bit_length() + 128 + 7) // 8
    return _bytes_mod(os.urandom(n * width), n, width, bound)


def np_random_split(field: Any, s: Any, t: int, m: int) -> np.ndarray:
    """MPyC's thresha.np_random_split with bulk coefficient sampling (prime fields)."""
    p = field.modulus
    if not isinstance(p, int):
        return _installed["np_random_split"](field, s, t, m)
    if isinstance(s, field.array):
        s = s.value
    n = len(s)
    if p < _SMALL_MODULUS and m < 1 << 16:
        return _split_u64(s, t, m, p)
    coeffs = uniform_below(field.order, t * n).reshape(t, n)
    vander = np.vander(np.arange(1, m + 1, dtype=object), N=t + 1, increasing=True)
    return (vander @ np.concatenate((s.reshape(1, n), coeffs))) % p


def _split_u64(s: np.ndarray, t: int, m: int, p: int) -> np.ndarray:
    """Shamir shares f(1..m) of f(x) = s + c_1 x + ... + c_t x^t in uint64 (p < 2^47).

    Horner's rule y <- (y * i + c) mod p stays below 2^64 for party numbers i < 2^16;
    coefficients c_k are drawn like `uniform_below` (128 extra random bits, reduced).
    """
    n = len(s)
    width = (p.bit_length() + 128 + 7) // 8
    coeffs = _bytes_mod_u64(os.urandom(t * n * width), t * n, width, p).reshape(t, n)
    secret = np.asarray(s, dtype=object).astype(np.uint64)  # field values: 0 <= s < p
    mod = np.uint64(p)
    shares = np.empty((m, n), dtype=np.uint64)
    for i in range(1, m + 1):
        x = np.uint64(i)
        y = np.zeros(n, dtype=np.uint64)
        for k in range(t - 1, -1, -1):
            y = (y * x + coeffs[k]) % mod
        shares[i - 1] = (y * x + secret) % mod
    return shares.astype(object)


def prf_call(self: Any, s: bytes, n: Any = None) -> Any:
    """MPyC's PRF.__call__, vectorized: identical outputs for batches."""
    shape = n if isinstance(n, tuple) else None
    count = prod(shape) if shape is not None else n
    width = self.byte_length
    if count is None or count < _MIN_BATCH or not width:
        return _installed["prf_call"](self, s, n)
    digest = shake_128(self.key + s).digest(count * width)
    x = _bytes_mod(digest, count, width, self.max)
    return x.reshape(shape) if shape is not None else list(x)


def install() -> None:
    """Patch MPyC (idempotent); call before the runtime starts, at every party."""
    if _installed:
        return
    from mpyc import thresha

    _installed["np_random_split"] = thresha.np_random_split
    _installed["prf_call"] = thresha.PRF.__call__
    thresha.np_random_split = np_random_split
    thresha.PRF.__call__ = prf_call
