"""The strict JSON decoder: every hostile payload is a WireError with a short reason, never
another exception, never a value outside JSON's finite numbers and valid Unicode."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc_credit.jsonwire import MAX_DEPTH, WireError, decode, encode, nesting_depth

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"count": NaN}', "non-finite number NaN"),
        (b'{"count": Infinity}', "non-finite number Infinity"),
        (b"[-Infinity]", "non-finite number -Infinity"),
        (b'{"count": 1e999}', "number out of range"),
        (b"-1e400", "number out of range"),
        (b"1" * 5000, "integer of more than 20 digits"),
        (b'{"a": "\\ud800"}', "unpaired surrogate"),
        (b'["\\udc00x"]', "unpaired surrogate"),
        (b'{"\\ud800": 1}', "unpaired surrogate"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[" * 30_000 + b"]" * 30_000, f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": 1', "not valid JSON"),
        (b"x" * 70_000, "over the limit"),
    ],
)
def test_hostile_payloads_are_refused_with_a_short_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason) as err:
        decode(payload)
    assert len(str(err.value)) < 80


def test_a_str_payload_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(WireError, match="not valid Unicode"):
        decode('"\ud800"')


def test_paired_surrogates_and_brackets_inside_strings_are_fine() -> None:
    assert decode(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert decode(b'{"a": "[[[[[[[[[[[[[[[["}') == {"a": "[" * 16}
    assert decode(b'["\\"[[[[[[[[[[[[["]') == ['"' + "[" * 13]
    assert decode(b"12345678901234567890") == 12345678901234567890


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_valid_json_round_trips_and_its_depth_is_measured_exactly(value: Any) -> None:
    text = encode(value)
    assert nesting_depth(text.decode()) == depth(value)
    if depth(value) <= MAX_DEPTH:
        assert decode(text) == value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_random_bytes_give_a_value_or_a_wire_error(payload: bytes) -> None:
    try:
        value = decode(payload)
    except WireError:
        return
    assert json.loads(payload) == value or value != value
    assert all(math.isfinite(v) for v in _numbers(value))


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    return []


def test_encode_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        encode({"ts": math.nan})
