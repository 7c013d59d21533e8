"""Error types: every user-facing failure is one of these, with a one-line message."""


class MpcCreditError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback.

    `exit_code` is what the command line exits with: 2 bad input or usage, 3 a failed
    session, 4 a refused request, 5 a session whose deadline passed.
    """

    exit_code = 2


class ModelError(MpcCreditError):
    """A model file is missing, malformed, or inconsistent."""


class DataError(MpcCreditError):
    """An institution's CSV file or an id list is missing or invalid (names file, row, column)."""


class UsageError(MpcCreditError):
    """The command's arguments do not fit together."""


class SessionError(MpcCreditError):
    """A secure session failed: a party died, a link dropped, a party reported failure."""

    exit_code = 3


class RefusedError(SessionError):
    """A party (or the consortium policy) refused the request."""

    exit_code = 4


class TimedOutError(SessionError):
    """The session's deadline passed."""

    exit_code = 5
