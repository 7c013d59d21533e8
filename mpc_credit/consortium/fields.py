"""Checked fields: what every message parser is built from (exact field sets, exact types, bounds).

A parser takes a payload through `load` (mpc_credit.jsonwire's strict decoder: size, UTF-8,
depth, NaN/Infinity, duplicate keys), checks the object has exactly its fields, and reads each
one with a checker that knows its type and bounds: `integer` (a bool is not an int), `real`
(a JSON number with a fraction or exponent, finite: the signed fields keep their exact type so
a signature checked later covers what was parsed), `token` (a pattern), `choice` (a closed
vocabulary), `name` (the consortium's party names), `identifier` (an applicant id),
`safe_name` (a model id, a training job's name, a label column: mpc_credit.names' rule, as
anything that may become a file name),
`text` (free text from another party, stripped of control characters by `clean_text`).

Every failure is a `MessageError` whose text names the field and what was expected, never the
value: it goes into logs that an attacker may want to fill or forge lines in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from mpc_credit.consortium.config import PARTY_NAME
from mpc_credit.jsonwire import MAX_BYTES, MAX_DEPTH, WireError, decode_object
from mpc_credit.names import name_problem

MAX_ID_CHARS = 64  # an applicant id or a model id
MAX_TEXT = 300  # a reason or a progress message from another party
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX64 = re.compile(r"[0-9a-f]{64}")
SIGNATURE = re.compile(r"[A-Za-z0-9+/]{86}==")  # base64 of 64 bytes (Ed25519)
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -~]?)")
_KEY_SHOWN = 32  # characters of an unknown field's name shown in an error


class MessageError(WireError):
    """A message outside its schema; the text is a short reason, never the payload.

    A subclass of WireError (so of ValueError) rather than of MpcCreditError: it is a fact
    about bytes from outside, like a decoding failure, and one `except WireError` covers both;
    no user is behind a broker message to show an exit code to (the control socket answers
    its local client with kind "input" itself).
    """


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text` without ANSI escape sequences and control characters (C0, C1, format, bidi),
    line breaks and tabs made spaces, at most `limit` characters: safe to print and to log."""
    text = _ANSI.sub("", text[: 4 * limit + 64])
    kept = (ch if ch.isprintable() else " " if ch in "\t\n\r" else "" for ch in text)
    return "".join(kept)[:limit]


def shown(key: str) -> str:
    """A field name from outside, safe to quote in an error."""
    return repr(clean_text(key, _KEY_SHOWN))


def load(
    payload: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """The JSON object in `payload`; any decoding failure as MessageError."""
    try:
        return decode_object(payload, max_bytes=max_bytes, max_depth=max_depth)
    except MessageError:
        raise
    except WireError as exc:
        raise MessageError(str(exc)) from None


def exact(d: Mapping[str, Any], required: Collection[str], optional: Collection[str] = ()) -> None:
    """`d` has every required field and no field outside required and optional."""
    for key in d:
        if key not in required and key not in optional:
            raise MessageError(f"unknown field {shown(key)}")
    for key in required:
        if key not in d:
            raise MessageError(f"missing field {key!r}")


def constant(d: Mapping[str, Any], key: str, value: str) -> str:
    if d[key] != value:
        raise MessageError(f"field {key!r}: expected {value!r}")
    return value


def integer(d: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    """An int in [lo, hi]; a bool or a float is not an int."""
    v = d[key]
    if type(v) is not int or not lo <= v <= hi:
        raise MessageError(f"field {key!r}: expected an integer from {lo} to {hi}")
    return v


def real(d: Mapping[str, Any], key: str, lo: float, hi: float, *, exact_type: bool = True) -> float:
    """A finite number in [lo, hi]: a JSON float (an int too unless `exact_type`)."""
    v = d[key]
    kinds = (float,) if exact_type else (float, int)
    if type(v) not in kinds or not math.isfinite(v) or not lo <= v <= hi:
        what = "a number with a fraction" if exact_type else "a number"
        raise MessageError(f"field {key!r}: expected {what} from {lo:g} to {hi:g}")
    return float(v)


def token(d: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str:
    """A string matching `pattern` (`what` says what it is, for the error)."""
    v = d[key]
    if not isinstance(v, str) or not pattern.fullmatch(v):
        raise MessageError(f"field {key!r}: expected {what}")
    return v


def choice(d: Mapping[str, Any], key: str, choices: Collection[str]) -> str:
    v = d[key]
    if not isinstance(v, str) or v not in choices:
        raise MessageError(f"field {key!r}: expected one of {', '.join(sorted(choices))}")
    return v


def name(d: Mapping[str, Any], key: str, names: Collection[str] | None) -> str:
    """A party name: one of `names`, or (no consortium at hand) of config's safe character set."""
    v = d[key]
    if names is not None:
        if not isinstance(v, str) or v not in names:
            raise MessageError(f"field {key!r}: not a party of the consortium")
        return v
    return token(d, key, PARTY_NAME, "a party name")


def safe_name(d: Mapping[str, Any], key: str, *, at: bool = False) -> str:
    """A name that may become a file name (mpc_credit.names): a model id (`at`: or a model
    version ID@VERSION), a job's model name, a label column; the error names the field and
    the rule broken, never the value."""
    v = d[key]
    problem = name_problem(v, at=at)
    if problem is not None:
        raise MessageError(f"field {key!r}: not a safe name: {problem}")
    return v  # type: ignore[no-any-return]


def is_identifier(v: object) -> bool:
    """1 to MAX_ID_CHARS printable characters (no control, format or line-break character)."""
    return isinstance(v, str) and 0 < len(v) <= MAX_ID_CHARS and v.isprintable()


def identifier(d: Mapping[str, Any], key: str) -> str:
    v = d[key]
    if not is_identifier(v):
        raise MessageError(f"field {key!r}: expected 1 to {MAX_ID_CHARS} printable characters")
    return v  # type: ignore[no-any-return]


def identifiers(d: Mapping[str, Any], key: str, max_count: int) -> tuple[str, ...]:
    """A non-empty list of at most `max_count` distinct identifiers."""
    v = d[key]
    if not isinstance(v, list) or not 0 < len(v) <= max_count:
        raise MessageError(f"field {key!r}: expected a list of 1 to {max_count} ids")
    if not all(is_identifier(a) for a in v):
        raise MessageError(f"field {key!r}: an id is not 1 to {MAX_ID_CHARS} printable characters")
    if len(set(v)) != len(v):
        raise MessageError(f"field {key!r}: an id is listed twice")
    return tuple(v)


def text(d: Mapping[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    """Free text from another party, at most `limit` characters, returned cleaned."""
    v = d[key]
    if not isinstance(v, str) or len(v) > limit:
        raise MessageError(f"field {key!r}: expected text of at most {limit} characters")
    return clean_text(v, limit)
