"""Adverse-action reason statements: each feature's public reason code and statement.

A model file may give every feature a `reason` object, `{"code": "R07", "statement":
"Length of employment too short"}`: what a lender tells a declined applicant when the
feature is among the applicant's top reasons. They are public model metadata, like feature
names: every owner's part of the model carries them, and the model digest covers them. A
feature without one has its name as code and statement (older model files).

The secure computation opens only which features are the top reasons; the receiver maps
each to its code and statement from the model. There is no statement per bin: it would
tell the receiver the applicant's bin of another owner's feature (docs/scoring.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CODE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,16}")
MAX_STATEMENT = 200


@dataclass(frozen=True)
class Reason:
    """A feature's reason code and adverse-action statement."""

    code: str
    statement: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "statement": self.statement}


def code_problem(code: Any) -> str | None:
    """Why `code` is not a reason code (a short safe token), or None when it is one."""
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        return "must be 1 to 16 letters, digits or '-', '_', '.'"
    return None


def statement_problem(statement: Any) -> str | None:
    """Why `statement` is not a statement (one line of printable text), or None."""
    if not isinstance(statement, str) or not statement.strip():
        return "must be a non-empty string"
    if len(statement) > MAX_STATEMENT:
        return f"has {len(statement)} characters, at most {MAX_STATEMENT}"
    if not statement.isprintable():
        return "must be a single line of printable text"
    if statement != statement.strip():
        return "must not start or end with spaces"
    return None


def reason_problem(value: Any) -> tuple[str, str] | None:
    """(field, why) when `value` is not a model file's `reason` object, else None."""
    if not isinstance(value, dict) or set(value) != {"code", "statement"}:
        return "", 'must be an object with exactly "code" and "statement"'
    for key, check in (("code", code_problem), ("statement", statement_problem)):
        why = check(value[key])
        if why is not None:
            return f".{key}", why
    return None


def duplicate_code(reasons: Sequence[Reason]) -> tuple[int, int] | None:
    """(first, second) indices of two features given the same code, or None."""
    seen: dict[str, int] = {}
    for i, r in enumerate(reasons):
        if r.code in seen:
            return seen[r.code], i
        seen[r.code] = i
    return None


def reasons_from_fields(value: Any, names: Sequence[str]) -> tuple[Reason, ...]:
    """The `reasons` of a result's JSON fields ([[code, statement], ...] per feature);
    absent (an older daemon): the feature names. ValueError when malformed."""
    if value is None:
        return tuple(Reason(n, n) for n in names)
    ok = isinstance(value, list) and len(value) == len(names)
    if not ok or not all(_is_pair(v) for v in value):
        raise ValueError("reasons must give a code and a statement per feature")
    return tuple(Reason(c, s) for c, s in value)


def _is_pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
