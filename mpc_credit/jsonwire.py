"""JSON on the wire: one strict decoder for every byte another process sends, and JSON lines.

Whatever arrives from a peer, the broker, a local client or a child process is hostile until
parsed: `decode` refuses payloads over a size limit, invalid UTF-8, lone surrogates (text no
encoder can write back), NaN and Infinity (also as an overflowing literal such as 1e999),
integers of more than MAX_INT_DIGITS digits, nesting deeper than a bound (checked before the
parser runs, so a 100,000-deep array cannot exhaust the stack) and duplicate keys, and raises
`WireError` with a short reason that never quotes the payload. `encode` writes compact JSON
and refuses non-finite numbers. Schemas for particular messages build on `decode_object`
(mpc_credit.consortium.fields).

JSON lines carry events between processes: `{"event": NAME, ...}` one per line (a worker to
its launcher, a daemon to its local client, a daemon's ready line to whoever started it).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
from typing import Any, TextIO

MAX_BYTES = 64 * 1024  # control-plane messages; batches of ids travel over the MPC links
MAX_DEPTH = 8
MAX_INT_DIGITS = 20  # beyond 64 bits: no field of any message needs more
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class WireError(ValueError):
    """A payload that is not acceptable JSON; the message is a short reason, not the data."""


def _reject_constant(name: str) -> Any:
    raise WireError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WireError("number out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise WireError(f"integer of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a decoded value holds a string with an unpaired UTF-16 surrogate."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if any("\ud800" <= ch <= "\udfff" for ch in v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise WireError("duplicate key")
        out[k] = v
    return out


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text, brackets inside strings not counted.

    An unterminated string's brackets count as brackets: the estimate errs high, never low.
    """
    if "[" not in text and "{" not in text:
        return 0
    depth = deepest = 0
    for m in _STRING_OR_BRACKET.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def decode(payload: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in `payload`, or WireError naming what is wrong with it."""
    size = len(payload)
    if size > max_bytes:
        raise WireError(f"{size} bytes, over the limit of {max_bytes}")
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("not valid UTF-8") from None
    else:
        text = payload
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise WireError("not valid Unicode text") from None
    if nesting_depth(text) > max_depth:
        raise WireError(f"nested deeper than {max_depth} levels")
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise WireError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise WireError("nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise WireError("a string with an unpaired surrogate")
    return value


def decode_object(payload: bytes | str, **limits: int) -> dict[str, Any]:
    """`decode`, and the value must be a JSON object."""
    value = decode(payload, **limits)
    if not isinstance(value, dict):
        raise WireError(f"expected a JSON object, got {type(value).__name__}")
    return value


def encode(value: Any) -> bytes:
    """Compact JSON, UTF-8; NaN and Infinity are refused (ValueError)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


def event_line(event: str, **fields: Any) -> bytes:
    """One JSON-lines event: `{"event": event, ...}` and a newline."""
    return encode({"event": event, **fields}) + b"\n"


def emit(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one event line to a text stream (stdout by default) and flush it."""
    out = sys.stdout if stream is None else stream
    out.write(event_line(event, **fields).decode("utf-8"))
    out.flush()


def parse_event(line: bytes, *, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """A received event line: a JSON object with a string `event`, else WireError."""
    msg = decode_object(line.strip(), max_bytes=max_bytes)
    if not isinstance(msg.get("event"), str):
        raise WireError("an event line without a string 'event'")
    return msg


async def read_event(
    reader: asyncio.StreamReader, *, max_bytes: int = MAX_BYTES
) -> dict[str, Any] | None:
    """The next event from a stream, None at its end; WireError for a bad or long line."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError):
        raise WireError(f"a line over the stream's limit of {max_bytes} bytes") from None
    if not line:
        return None
    return parse_event(line, max_bytes=max_bytes)
