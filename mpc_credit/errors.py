"""Error types: every user-facing failure is one of these, with a one-line message.

Each type knows its `kind` (the word it travels as between processes: a worker to its
launcher, a daemon to its local client, a party's status report) and the `exit_code` the
command line ends with. `error_of_kind` turns a kind back into its type, so a failure keeps
its meaning across a process boundary without flags or string matching.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["input", "failed", "refused", "timeout"]
KINDS: tuple[Kind, ...] = ("input", "failed", "refused", "timeout")


class MpcCreditError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback.

    `kind` input / failed / refused / timeout; `exit_code` 2 bad input or usage, 3 a failed
    session, 4 a refused request, 5 a session whose deadline passed, 6 an audit log that
    does not verify.
    """

    kind: Kind = "input"
    exit_code = 2


class ModelError(MpcCreditError):
    """A model file is missing, malformed, or inconsistent."""


class DataError(MpcCreditError):
    """An institution's CSV file or an id list is missing or invalid (names file, row, column)."""


class UsageError(MpcCreditError):
    """The command's arguments do not fit together, or a configuration file is invalid."""


class SessionError(MpcCreditError):
    """A secure session failed: a party died, a link dropped, a party reported failure."""

    kind: Kind = "failed"
    exit_code = 3


class RefusedError(SessionError):
    """A party (or the consortium policy) refused the request.

    `reason`: the refusal's public category (mpc_credit.consortium.reasons, e.g. "daily budget
    exceeded") when known, so that a caller (the HTTP API: 403 or 429) can tell refusals
    apart without reading the message.
    """

    kind: Kind = "refused"
    exit_code = 4

    def __init__(self, message: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class TimedOutError(SessionError):
    """The session's deadline passed."""

    kind: Kind = "timeout"
    exit_code = 5


class AuditIntegrityError(MpcCreditError):
    """An audit log does not verify: a line is altered, missing, out of order or incomplete.

    Exit code 6, distinct from bad input (2) and failed sessions (3), for monitoring scripts.
    """

    kind: Kind = "failed"
    exit_code = 6


_BY_KIND: dict[str, type[MpcCreditError]] = {
    "input": UsageError,
    "failed": SessionError,
    "refused": RefusedError,
    "timeout": TimedOutError,
}


def error_of_kind(kind: object, message: str) -> MpcCreditError:
    """The error for a kind received from another process; an unknown kind is a failure."""
    return _BY_KIND.get(kind if isinstance(kind, str) else "", SessionError)(message)
