"""Rich output shared by the commands: one way to make a console, one way to print plain text.

In a terminal rich fits tables to its width. Through a pipe or into a file rich would assume
80 columns and crop or fold every wider table, so there the width is `PIPE_WIDTH` (unless
COLUMNS is set, which rich honours): a table keeps its natural width, and no line is padded.

Rich reads `[...]` in a string as markup (`pip install 'mpc-credit[optbinning]'` would lose
its extra) and colours numbers: text that is not the program's own markup (install hints,
file names, a model's or another party's words) goes through `plain`, or a table cell as
`rich.text.Text`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

PIPE_WIDTH = 1000


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, or `PIPE_WIDTH` when not a tty."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        tty = False
    wide = not tty and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=PIPE_WIDTH if wide else None)


def plain(out: Console, text: str) -> None:
    """Print `text` as it is: no markup, no highlighting."""
    out.print(text, markup=False, highlight=False)
