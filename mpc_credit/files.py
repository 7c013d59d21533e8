"""Reading the user's files: a missing or malformed file is one error line naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mpc_credit.errors import MpcCreditError


def read_text(path: Path, what: str, error: type[MpcCreditError]) -> str:
    """A UTF-8 text file's content; a missing or unreadable file raises `error` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None


def read_json(path: Path, what: str, error: type[MpcCreditError]) -> Any:
    """A JSON file's content; errors name the file, and the line and column of bad JSON."""
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def write_durably(path: Path, text: str) -> None:
    """Write `text` to `path` complete or not at all (a staged file, fsynced, renamed into
    place, the folder fsynced): a crash leaves the old file or the new one, never a torn one."""
    staged = path.with_name(f".{path.name}.tmp")
    try:
        with open(staged, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a new or renamed entry in `folder` durable (a file's fsync does not cover it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
