"""The words a session is described in: scoring modes and reveal policies.

Free of dependencies, so that the `score` command's start-up path can use them.
"""

from typing import Literal

Mode = Literal["shared", "secret"]
MODES: tuple[Mode, ...] = ("shared", "secret")

Reveal = Literal["score", "decision", "reasons", "pd"]
REVEALS: tuple[Reveal, ...] = ("score", "decision", "reasons", "pd")
