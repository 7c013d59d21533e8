"""Secure top-k by a public comparator network over sorted runs.

The k largest of several descending runs are found by merging the runs pairwise with
Batcher's odd-even merge. The network is compiled in the clear (it depends only on the
run lengths and k): comparators against padding are resolved publicly, comparators that
cannot reach the first k outputs are pruned, and the rest are scheduled in layers so
that each layer is one vectorized secure comparison over the whole batch.

A comparator (a, b) leaves max at slot a and min at slot b; keys are distinct, and each
key carries a label that moves with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Network:
    """A compiled top-k network over `width` physical slots."""

    width: int
    layers: tuple[tuple[tuple[int, int], ...], ...]
    outputs: tuple[int | None, ...]  # slot holding the i-th largest, None: nothing there

    @property
    def comparators(self) -> int:
        return sum(len(layer) for layer in self.layers)


def _oddeven_merge(lo: int, n: int, r: int, out: list[tuple[int, int]]) -> None:
    """Batcher's merge of positions lo..lo+n-1 whose two halves are sorted (n a power of 2)."""
    step = 2 * r
    if step < n:
        _oddeven_merge(lo, n, step, out)
        _oddeven_merge(lo + r, n, step, out)
        out.extend((i, i + r) for i in range(lo + r, lo + n - r, step))
    else:
        out.append((lo, lo + r))


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def compile_topk(run_lengths: Sequence[int], k: int) -> Network:
    """Network giving the k largest of descending runs laid out one after another.

    Slots 0..sum(run_lengths)-1 hold the runs in order; the result lists the slots of
    the k largest, largest first.
    """
    width = sum(run_lengths)
    is_pad: list[bool] = [False] * width
    runs: list[list[int]] = []
    start = 0
    for n in run_lengths:
        runs.append(list(range(start, start + n)))
        start += n
    comparators: list[tuple[int, int]] = []
    while len(runs) > 1:
        runs.sort(key=len)
        a, b = runs.pop(0), runs.pop(0)
        runs.append(_merge_runs(a, b, k, is_pad, comparators))
    top = runs[0][:k] if runs else []
    outputs = tuple(None if is_pad[s] else s for s in top) + (None,) * (k - len(top))
    kept = _prune(comparators, {s for s in outputs if s is not None})
    return Network(width, _schedule(kept), outputs)


def _merge_runs(
    a: list[int], b: list[int], k: int, is_pad: list[bool], comparators: list[tuple[int, int]]
) -> list[int]:
    """Merge two runs of slots, padding both to a power of two; returns the merged run."""
    n = _pow2(max(len(a), len(b)))
    pads = []
    for run in (a, b):
        while len(run) < n:
            is_pad.append(True)
            run.append(len(is_pad) - 1)
            pads.append(run[-1])
    pos = a + b  # position -> physical slot
    merge: list[tuple[int, int]] = []
    _oddeven_merge(0, 2 * n, 1, merge)
    for i, j in merge:
        sa, sb = pos[i], pos[j]
        if is_pad[sb]:
            continue  # the pad is smallest: nothing moves
        if is_pad[sa]:
            pos[i], pos[j] = sb, sa  # public swap
            continue
        comparators.append((sa, sb))
    real = [s for s in pos if not is_pad[s]]
    return real[:k]


def _prune(comparators: list[tuple[int, int]], needed: set[int]) -> list[tuple[int, int]]:
    """Drop comparators whose slots never reach a needed output (walking backwards)."""
    kept = []
    for a, b in reversed(comparators):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    kept.reverse()
    return kept


def _schedule(comparators: list[tuple[int, int]]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Group comparators into layers, each as early as its slots allow."""
    ready: dict[int, int] = {}
    layers: list[list[tuple[int, int]]] = []
    for a, b in comparators:
        d = max(ready.get(a, 0), ready.get(b, 0))
        if d == len(layers):
            layers.append([])
        layers[d].append((a, b))
        ready[a] = ready[b] = d + 1
    return tuple(tuple(layer) for layer in layers)


def apply_plain(net: Network, keys: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Reference execution in the clear: labels of the top k per row (0 where none)."""
    keys, labels = keys.copy(), labels.copy()
    for layer in net.layers:
        a = np.array([p[0] for p in layer])
        b = np.array([p[1] for p in layer])
        swap = keys[:, a] < keys[:, b]
        for arr in (keys, labels):
            hi = np.where(swap, arr[:, b], arr[:, a])
            lo = np.where(swap, arr[:, a], arr[:, b])
            arr[:, a], arr[:, b] = hi, lo
    zero = np.zeros(len(labels), dtype=labels.dtype)
    return np.stack([labels[:, s] if s is not None else zero for s in net.outputs], axis=1)


def apply_secure(mpc: Any, net: Network, keys: Any, labels: Any, bits: int) -> list[Any]:
    """Run the network on secure (N, width) arrays; returns the top-k label columns.

    Each layer costs one secure comparison of `bits` bits and one secure
    multiplication per comparator, vectorized over all rows. Keys and labels travel
    as one (N, 2 * width) array so that a layer is a handful of array operations. An
    output with nothing behind it (fewer real keys than k) is None.
    """
    width = net.width
    kl = np.hstack((keys, labels))
    for layer in net.layers:
        n = len(layer)
        a = [p[0] for p in layer]
        b = [p[1] for p in layer]
        hi, lo = kl[:, a + [width + i for i in a]], kl[:, b + [width + i for i in b]]
        diff = hi - lo
        ge = 1 - mpc.np_sgn(diff[:, :n], l=bits, LT=True)  # [key_a >= key_b]
        moved = np.hstack((ge, ge)) * diff
        new_hi, new_lo = lo + moved, hi - moved  # (max, its label), (min, its label)
        perm = list(range(2 * width))
        for i, (sa, sb) in enumerate(layer):
            base = 2 * width
            perm[sa], perm[width + sa] = base + i, base + n + i
            perm[sb], perm[width + sb] = base + 2 * n + i, base + 3 * n + i
        kl = np.hstack((kl, new_hi, new_lo))[:, perm]
    return [kl[:, width + s] if s is not None else None for s in net.outputs]
