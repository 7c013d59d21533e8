"""Error types: every user-facing failure is one of these, with a one-line message."""

from pathlib import Path


class MpcCreditError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback."""


class ModelError(MpcCreditError):
    """A model file is missing, malformed, or inconsistent."""


class DataError(MpcCreditError):
    """An institution's CSV file or an id list is missing or invalid (names file, row, column)."""


class UsageError(MpcCreditError):
    """The command's arguments do not fit together."""


class SessionError(MpcCreditError):
    """A secure session failed: a party died, timed out or refused."""


def read_text(path: Path, what: str, error: type[MpcCreditError]) -> str:
    """A UTF-8 text file's content; a missing or unreadable file raises `error` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
