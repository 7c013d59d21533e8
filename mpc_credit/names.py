"""Names from outside that may become file names: one rule, checked in one place.

A model id, a training job's (model's) name, a label column, a party name or an API client
name can reach a path (a model part `NAME.shared-part.json`, a ledger `PARTY.json`, a party's
folder, an audit or report file), a broker topic or a log line. `name_problem` says what is
wrong with one, `check_name` refuses it naming the field: 1 to MAX_NAME_CHARS characters,
each a letter, a digit or one of `_ . -` (`@` where a caller allows it), starting with a letter
or a digit, no `..`. So no `/`, `\\`, NUL or other control character, no absolute path, no
leading dot, no Windows drive letter (`:`) and no parent directory. `join` is the only way a
name becomes a file under a folder: checked, and the result must stay inside the folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from mpc_credit.errors import UsageError

MAX_NAME_CHARS = 64
NAME_RULE = (
    f"1 to {MAX_NAME_CHARS} of A-Z a-z 0-9 _ . -, starting with a letter or a digit, no '..'"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME_AT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")


def name_problem(value: object, *, at: bool = False) -> str | None:
    """Why `value` is not a safe name (a short reason that never quotes it), or None."""
    if not isinstance(value, str):
        return "expected a string"
    if not 0 < len(value) <= MAX_NAME_CHARS:
        return f"expected 1 to {MAX_NAME_CHARS} characters"
    if "\x00" in value or not value.isprintable():
        return "control character"
    if "/" in value or "\\" in value:
        return "path separator"
    if ":" in value:
        return "drive letter or colon"
    if ".." in value:
        return "parent directory ('..')"
    if value.startswith("."):
        return "leading dot"
    if not (_NAME_AT if at else _NAME).fullmatch(value):
        return f"not {NAME_RULE}" + (" (or @)" if at else "")
    return None


def is_name(value: object, *, at: bool = False) -> bool:
    return name_problem(value, at=at) is None


def check_name(
    value: object, field: str, *, at: bool = False, error: type[Exception] = UsageError
) -> str:
    """`value` if it is a safe name; otherwise `error` naming `field` and the rule broken
    (the value is not quoted: it may be anything an attacker sent)."""
    problem = name_problem(value, at=at)
    if problem is not None:
        raise error(f"{field}: not a safe name: {problem} ({NAME_RULE})")
    return value  # type: ignore[return-value]


def join(folder: Path, name: str, suffix: str, field: str, *, at: bool = False) -> Path:
    """`folder / (name + suffix)` for a checked `name`; never outside `folder`."""
    check_name(name, field, at=at)
    path = folder / f"{name}{suffix}"
    if path.resolve().parent != folder.resolve():
        raise UsageError(f"{field}: the file would not be in {folder}")
    return path
