"""Checks of command-line values shared by the `mpc-credit` commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import typer

from mpc_credit.vocabulary import MODES, REVEALS, Mode, Reveal

T = TypeVar("T", bound=str)

REVEAL_HELP = " | ".join(REVEALS)
MODE_HELP = " | ".join(MODES)


def choice(value: str, options: Sequence[T], flag: str) -> T:
    """`value` if it is one of `options`; otherwise a usage error naming `flag`."""
    for option in options:
        if value == option:
            return option
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(options)}", param_hint=flag)


def mode(value: str) -> Mode:
    return choice(value, MODES, "--mode")


def reveal(value: str) -> Reveal:
    return choice(value, REVEALS, "--reveal")


def positive(value: int, flag: str) -> int:
    if value < 1:
        raise typer.BadParameter("must be at least 1", param_hint=flag)
    return value
