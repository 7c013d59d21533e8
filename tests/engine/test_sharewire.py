"""The share-array codec that stands in for pickle inside MPyC: exact round trips, and any
other bytes refused with ValueError (never code, never a partial array)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc_credit.engine import sharewire
from tests.attacks.test_mpc_links import Marker


def _obj(values: list[int], shape: tuple[int, ...]) -> np.ndarray:
    a = np.empty(len(values), dtype=object)
    a[:] = values
    return a.reshape(shape)


@given(
    st.lists(st.integers(0, (1 << 200) - 1), max_size=30),
    st.sampled_from(["flat", "rows"]),
)
def test_object_arrays_round_trip(values: list[int], layout: str) -> None:
    shape = (len(values),) if layout == "flat" or len(values) % 2 else (2, len(values) // 2)
    x = _obj(values, shape)
    y = sharewire.loads(sharewire.dumps(x))
    assert y.dtype == object and y.shape == x.shape
    assert [int(v) for v in y.reshape(-1)] == values
    assert all(type(v) is int for v in y.reshape(-1))


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_machine_integer_arrays_round_trip(dtype: type) -> None:
    x = np.arange(-5 if dtype is np.int64 else 0, 7, dtype=dtype).reshape(-1, 1)
    y = sharewire.loads(sharewire.dumps(x))
    assert y.dtype == dtype and np.array_equal(x, y)


@pytest.mark.parametrize(
    "x",
    [
        5,
        [1, 2],
        np.array([1.5]),
        _obj([-1, 2], (2,)),
        _obj([-(1 << 70), 2], (2,)),
        _obj([1 << 5000], (1,)),
    ],
)
def test_anything_else_is_refused_on_sending(x: object) -> None:
    with pytest.raises(sharewire.RefusedTransfer):
        sharewire.dumps(x)


def test_a_pickle_is_not_a_share_message(tmp_path) -> None:
    marker = tmp_path / "pwned"

    with pytest.raises(ValueError):
        sharewire.loads(pickle.dumps(Marker(str(marker))))
    with pytest.raises(ValueError):
        sharewire.loads(pickle.dumps(np.arange(3)))
    assert not marker.exists()


def test_lengths_must_match_the_header() -> None:
    good = sharewire.dumps(_obj([1, 2, 3], (3,)))
    for bad in (good[:-1], good + b"\0", good[:5], good[:4] + b"X" + good[5:]):
        with pytest.raises(ValueError):
            sharewire.loads(bad)
    at = sharewire._HEAD.size
    huge = good[:at] + (1 << 62).to_bytes(8, "little") + good[at + 8 :]  # shape over the data
    with pytest.raises(ValueError):
        sharewire.loads(huge)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_give_an_array_or_value_error(data: bytes) -> None:
    try:
        out = sharewire.loads(sharewire.MAGIC + data)
    except ValueError:
        return
    assert isinstance(out, np.ndarray)
