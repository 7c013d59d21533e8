"""Failures say why without saying what: the public reason a party puts on the broker.

A party's own log and audit line keep the full message (file, row, column, value, clock
offset); the broker, which every member reads, gets only `public_reason(error, party)`: the
party and a category such as "telco: input error in its data file", "bureau: MPC link lost"
or "bank: refused: daily budget exceeded". The category follows from the error's type (or the
first typed error in its chain of causes), never from its text. A policy refusal is a
`Refusal`: the full reason as a string, carrying its public category.
"""

from __future__ import annotations

import asyncio
import ssl

from mpc_credit.errors import (
    DataError,
    ModelError,
    RefusedError,
    SessionError,
    TimedOutError,
    UsageError,
)
from mpc_credit.jsonwire import WireError

# Refusal categories (the public half of a policy refusal)
UNKNOWN_REQUESTER = "unknown requester"
BAD_SIGNATURE = "bad signature"
NOT_ALLOWED = "not allowed by the consortium policy"
BATCH_TOO_LARGE = "batch too large"
DAILY_BUDGET = "daily budget exceeded"
PER_APPLICANT = "per-applicant limit reached"
REPLAYED = "replayed request"
CLOCK = "timestamp outside the window"
DEADLINE = "deadline out of bounds"
MALFORMED = "malformed request"
MODEL = "model not available"
NO_TRAINING_DATA = "no training data configured"
NO_DP_NOT_ALLOWED = "no-DP training not allowed"
REGISTRY = "refused by the model registry"


def run_limit(limit: int) -> str:
    """The public category of a training run past a party's daily run limit, naming it."""
    return f"training run limit reached ({limit} per day)"


def stalled(requester: str, count: int, minutes: int) -> str:
    """The public category of a request from a requester that keeps stalling, naming it."""
    return f"requester {requester} left {count} sessions stalled in the last {minutes} min"


def requester_full(requester: str, cap: int) -> str:
    """The public category of a request past its requester's share of a party's queue."""
    return f"requester {requester} has {cap} sessions queued or running (its share)"


def over_budget(budget: float) -> str:
    """The public category of a training run past a party's privacy budget, naming it."""
    return f"privacy budget exceeded (its budget: epsilon {budget:g} at delta 1e-06)"


# by type, most specific first; the first match along the chain of causes wins
_CATEGORIES: tuple[tuple[type[BaseException], str], ...] = (
    (DataError, "input error in its data file"),
    (ModelError, "input error in its model file"),
    (UsageError, "configuration error"),
    (TimedOutError, "deadline passed"),
    (RefusedError, "refused"),
    (WireError, "malformed message from a peer"),
    (ssl.SSLError, "MPC link refused"),
    (asyncio.IncompleteReadError, "MPC link lost"),
    (ConnectionError, "MPC link lost"),
    (OSError, "system error"),
    (SessionError, "session failed"),
)
_BY_KIND = {"timeout": "deadline passed", "refused": "refused", "input": "input error"}
_CHAIN = 8  # causes looked at, at most


class Refusal(str):
    """Why a party refuses a request (the full, local text), with its public `category`."""

    category: str

    def __new__(cls, text: str, category: str) -> Refusal:
        self = super().__new__(cls, text)
        self.category = category
        return self


def _category(error: BaseException) -> str:
    seen: BaseException | None = error
    for _ in range(_CHAIN):
        if seen is None:
            break
        for kind, category in _CATEGORIES:
            if isinstance(seen, kind):
                return category
        seen = seen.__cause__ or seen.__context__
    kind = getattr(error, "kind", None)
    return _BY_KIND.get(kind, "session failed") if isinstance(kind, str) else "internal error"


def public_reason(error: BaseException | str, party: str) -> str:
    """`party: category` for a status message: why, without file, line, column or value."""
    if isinstance(error, Refusal):
        return f"{party}: refused: {error.category}"
    if isinstance(error, str):
        return f"{party}: session failed"
    return f"{party}: {_category(error)}"
